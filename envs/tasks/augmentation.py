"""Batch augmentations whose strength grows with the augmentation level (1..4). All randomness from a Generator."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ImageAugmentation:
    """The random draws of one batch's image augmentation (see :func:`augment_images`)."""

    level: int
    shifts: torch.Tensor
    """``(2, B)`` row and column shifts."""
    noise: torch.Tensor
    """``(B, C, H, W)`` standard normal pixel noise."""
    top: torch.Tensor | None
    """``(B,)`` cutout rows (level >= 2, else None)."""
    left: torch.Tensor | None


def augment_images(x: torch.Tensor, level: int, shape: tuple[int, int, int], generator: torch.Generator
                   ) -> torch.Tensor:
    """Random shifts (zero padded), Gaussian pixel noise, and from level 2 on a random cutout square.

    ``x`` is a batch of flattened images in [0, 1]; the result has the same shape. Everything is drawn and
    computed on ``x``'s device (``generator`` must live there too).
    """
    draws = draw_image_augmentation(x.shape[0], level, shape, generator, x.device)
    return apply_image_augmentation(x, draws, shape)


def _max_shift(level: int, h: int) -> int:
    return max(1, math.ceil(level * h / 32))


def _cutout_size(level: int, h: int) -> int:
    return max(1, round(h * 0.125 * level))


def draw_image_augmentation(b: int, level: int, shape: tuple[int, int, int], generator: torch.Generator,
                            device: torch.device) -> ImageAugmentation:
    """Draw one batch's shifts, noise and cutout positions from ``generator``."""
    c, h, w = shape
    max_shift = _max_shift(level, h)
    shifts = torch.randint(-max_shift, max_shift + 1, (2, b), generator=generator, device=device)
    noise = torch.randn((b, c, h, w), generator=generator, device=device)
    top = left = None
    if level >= 2:
        size = _cutout_size(level, h)
        top = torch.randint(0, h - size + 1, (b,), generator=generator, device=device)
        left = torch.randint(0, w - size + 1, (b,), generator=generator, device=device)
    return ImageAugmentation(level, shifts, noise, top, left)


def apply_image_augmentation(x: torch.Tensor, draws: ImageAugmentation, shape: tuple[int, int, int]) -> torch.Tensor:
    """Augment one batch ``x`` ``(B, C*H*W)`` with its draws (:func:`draw_image_augmentation`).

    Shifts and cutouts are table lookups: every (row, column) shift has a row of source pixels and a 0/1 row of
    pixels shifted in from outside, every cutout (size, top, left) a 0/1 row of kept pixels; one gather and a few
    elementwise products then augment all ``B`` images (indexing with boolean masks costs several times more).
    """
    n, device = x.shape[0], x.device
    c, h, w = shape
    pad = _max_shift(draws.level, h)  # the shifts are within [-pad, pad]
    source, inside = _shift_tables(h, w, pad, str(device))
    shifts = draws.shifts + pad
    combo = shifts[0] * (2 * pad + 1) + shifts[1]
    img = x.reshape(n, c, h * w)
    img = img.gather(2, source.index_select(0, combo)[:, None, :].expand(n, c, h * w))
    img = img * inside.index_select(0, combo)[:, None, :]  # pixels in [0, 1]: x * 0 is +0, as zero padding
    img = img + 0.05 * draws.level * draws.noise.reshape(n, c, h * w)
    if draws.top is not None and draws.left is not None:
        size = _cutout_size(draws.level, h)
        keep, first = _cutout_tables(h, w, (size,), str(device))
        img = img * keep.index_select(0, draws.top * (w - size + 1) + draws.left + first[size])[:, None, :]
    return img.reshape(x.shape)


@functools.lru_cache(maxsize=16)
def _shift_tables(h: int, w: int, pad: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Per shift (row shift, column shift) in ``[-pad, pad]^2``, row-major: the flat source pixel of every output
    pixel (clamped into the image), and 1.0 where that source is inside the image, else 0.0."""
    d = torch.arange(-pad, pad + 1, device=device)
    rows = torch.arange(h, device=device)[None, :] + d[:, None]  # (S, H)
    cols = torch.arange(w, device=device)[None, :] + d[:, None]  # (S, W)
    source = rows.clamp(0, h - 1)[:, None, :, None] * w + cols.clamp(0, w - 1)[None, :, None, :]  # (S, S, H, W)
    inside = ((rows >= 0) & (rows < h))[:, None, :, None] & ((cols >= 0) & (cols < w))[None, :, None, :]
    return source.reshape(-1, h * w), inside.reshape(-1, h * w).float()


@functools.lru_cache(maxsize=16)
def _cutout_tables(h: int, w: int, sizes: tuple[int, ...], device: str) -> tuple[torch.Tensor, dict[int, int]]:
    """Row 0 keeps every pixel; then per cutout size, top and left (row-major) 0.0 inside the square, 1.0
    elsewhere. Returns the table and each size's first row."""
    r, q = torch.arange(h, device=device), torch.arange(w, device=device)
    tables, first = [torch.ones(1, h * w, device=device)], {}
    for size in sizes:
        first[size] = sum(t.shape[0] for t in tables)
        top, left = torch.arange(h - size + 1, device=device), torch.arange(w - size + 1, device=device)
        in_rows = (r[None, :] >= top[:, None]) & (r[None, :] < top[:, None] + size)  # (T, H)
        in_cols = (q[None, :] >= left[:, None]) & (q[None, :] < left[:, None] + size)  # (L, W)
        hole = in_rows[:, None, :, None] & in_cols[None, :, None, :]  # (T, L, H, W)
        tables.append((~hole).reshape(-1, h * w).float())
    return torch.cat(tables), first


DECORRELATE_PROB: tuple[float, ...] = (0.0, 1.0, 1.0, 1.0, 1.0)
"""Probability per augmentation level (0..4) that a flagged input feature of a row is decorrelated: always, from
level 1 on (the env's level k adds the family's own augmentation at level k - 1 while features are flagged:
``TrainingEnv.family_aug_level``). Partly decorrelated, a shortcut stays predictive
on the rest of the rows: on spurious train instances of DigitsPathologies the text families' 50/75/90/100% masking
table helped less than this one."""


def decorrelate_inputs(x: torch.Tensor, flagged: Sequence[int], level: int, generator: torch.Generator
                       ) -> torch.Tensor:
    """``x`` ``(K, B, F)`` (K batches of B rows) where each flagged feature of each row takes, with probability
    :data:`DECORRELATE_PROB` ``[level]``, the value of the same feature in a random other row of its batch.

    The image / table analogue of masking flagged tokens: it removes what the feature says about the label while
    keeping its distribution, so the network learns to ignore it. Zeroing instead teaches nothing about a feature
    that still varies at test time: on DigitsPathologies' spurious train instances, zeroing even every planted pixel
    (an oracle) did worse than not masking, while permuting them recovered most of the clean accuracy. Draws a
    ``(K, B)`` permutation key and ``(K, B, len(flagged))`` uniforms from ``generator``; level 0 or no flagged
    feature returns ``x`` itself, drawing nothing.
    """
    if level == 0 or not flagged:
        return x
    k, b, _ = x.shape
    device = generator.device
    permutation = torch.argsort(torch.rand((k, b), generator=generator, device=device), dim=1).to(x.device)
    columns = torch.as_tensor(list(flagged), dtype=torch.int64, device=x.device)
    u = torch.rand((k, b, columns.numel()), generator=generator, device=device).to(x.device)
    values = x[..., columns]
    shuffled = values.gather(1, permutation[:, :, None].expand_as(values))
    x = x.clone()
    x[..., columns] = torch.where(u < DECORRELATE_PROB[level], shuffled, values)
    return x


def augment_features(x: torch.Tensor, level: int, generator: torch.Generator) -> torch.Tensor:
    """Gaussian feature noise (0.15 std per level, features are standardised) and feature dropout (5% per level)."""
    noisy = x + 0.15 * level * torch.randn(x.shape, generator=generator, device=x.device)
    keep = torch.rand(x.shape, generator=generator, device=x.device) >= 0.05 * level
    return noisy * keep
