"""Batch augmentations whose strength grows with the augmentation level (1..4). All randomness from a Generator."""

from __future__ import annotations

import math

import torch


def augment_images(x: torch.Tensor, level: int, shape: tuple[int, int, int], generator: torch.Generator
                   ) -> torch.Tensor:
    """Random shifts (zero padded), Gaussian pixel noise, and from level 2 on a random cutout square.

    ``x`` is a batch of flattened images in [0, 1]; the result has the same shape. Everything is drawn and
    computed on ``x``'s device (``generator`` must live there too).
    """
    b, device = x.shape[0], x.device
    c, h, w = shape
    img = x.view(b, c, h, w)
    max_shift = max(1, math.ceil(level * h / 32))
    shifts = torch.randint(-max_shift, max_shift + 1, (2, b), generator=generator, device=device)
    padded = torch.nn.functional.pad(img, (max_shift, max_shift, max_shift, max_shift))
    rows = torch.arange(h, device=device)[None, :] + max_shift + shifts[0][:, None]  # (B, H)
    cols = torch.arange(w, device=device)[None, :] + max_shift + shifts[1][:, None]  # (B, W)
    batch = torch.arange(b, device=device)[:, None, None]
    img = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    img = img + 0.05 * level * torch.randn(img.shape, generator=generator, device=device)
    if level >= 2:
        size = max(1, round(h * 0.125 * level))
        top = torch.randint(0, h - size + 1, (b,), generator=generator, device=device)
        left = torch.randint(0, w - size + 1, (b,), generator=generator, device=device)
        r = torch.arange(h, device=device)[None, :]
        q = torch.arange(w, device=device)[None, :]
        in_rows = (r >= top[:, None]) & (r < top[:, None] + size)
        in_cols = (q >= left[:, None]) & (q < left[:, None] + size)
        hole = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]
        img = img.masked_fill(hole, 0.0)
    return img.reshape(b, -1)


def augment_features(x: torch.Tensor, level: int, generator: torch.Generator) -> torch.Tensor:
    """Gaussian feature noise (0.15 std per level, features are standardised) and feature dropout (5% per level)."""
    noisy = x + 0.15 * level * torch.randn(x.shape, generator=generator, device=x.device)
    keep = torch.rand(x.shape, generator=generator, device=x.device) >= 0.05 * level
    return noisy * keep
