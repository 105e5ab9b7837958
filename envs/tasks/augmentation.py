"""Batch augmentations whose strength grows with the augmentation level (1..4). All randomness from a Generator."""

from __future__ import annotations

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
    return apply_image_augmentations(x[None], [draws], shape)[0]


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


def apply_image_augmentations(x: torch.Tensor, draws: Sequence[ImageAugmentation], shape: tuple[int, int, int]
                              ) -> torch.Tensor:
    """Augment ``M`` batches ``x`` ``(M, B, C*H*W)`` with their draws (each its own level) in one computation;
    equal, bit for bit, to augmenting each batch on its own."""
    m, b, device = x.shape[0], x.shape[1], x.device
    c, h, w = shape
    img = x.reshape(m * b, c, h, w)
    levels = [d.level for d in draws]
    pad = max(_max_shift(level, h) for level in levels)  # zero padding wide enough for every batch's shifts
    shifts = torch.cat([d.shifts for d in draws], 1)
    padded = torch.nn.functional.pad(img, (pad, pad, pad, pad))
    rows = torch.arange(h, device=device)[None, :] + pad + shifts[0][:, None]  # (M*B, H)
    cols = torch.arange(w, device=device)[None, :] + pad + shifts[1][:, None]  # (M*B, W)
    batch = torch.arange(m * b, device=device)[:, None, None]
    img = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    scale = torch.tensor([0.05 * level for level in levels], dtype=img.dtype, device=device)
    img = img + scale.repeat_interleave(b)[:, None, None, None] * torch.cat([d.noise for d in draws])
    cut = [i for i, d in enumerate(draws) if d.top is not None]
    if cut:
        size = torch.tensor([_cutout_size(levels[i], h) if i in cut else 0 for i in range(m)],
                            device=device).repeat_interleave(b)[:, None]
        zeros = torch.zeros(b, dtype=torch.int64, device=device)
        top = torch.cat([d.top if d.top is not None else zeros for d in draws])[:, None]
        left = torch.cat([d.left if d.left is not None else zeros for d in draws])[:, None]
        r = torch.arange(h, device=device)[None, :]
        q = torch.arange(w, device=device)[None, :]
        in_rows = (r >= top) & (r < top + size)
        in_cols = (q >= left) & (q < left + size)
        hole = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]
        img = img.masked_fill(hole, 0.0)
    return img.reshape(x.shape)


def augment_features(x: torch.Tensor, level: int, generator: torch.Generator) -> torch.Tensor:
    """Gaussian feature noise (0.15 std per level, features are standardised) and feature dropout (5% per level)."""
    noisy = x + 0.15 * level * torch.randn(x.shape, generator=generator, device=x.device)
    keep = torch.rand(x.shape, generator=generator, device=x.device) >= 0.05 * level
    return noisy * keep
