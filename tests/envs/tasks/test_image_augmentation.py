"""Image augmentation (table lookups) against a straightforward per-image reference."""

from __future__ import annotations

import pytest
import torch
from traingym.envs.tasks.augmentation import (
    _cutout_size,
    _max_shift,
    augment_images,
    draw_image_augmentation,
)


def _reference(x: torch.Tensor, level: int, shape: tuple[int, int, int], generator: torch.Generator) -> torch.Tensor:
    """Image by image: zero padding and a shifted crop, then the pixel noise, then the cutout square set to 0."""
    c, h, w = shape
    draws = draw_image_augmentation(x.shape[0], level, shape, generator, x.device)
    pad = _max_shift(level, h)
    padded = torch.nn.functional.pad(x.reshape(-1, c, h, w), (pad, pad, pad, pad))
    out = []
    for i in range(x.shape[0]):
        dr, dc = int(draws.shifts[0, i]), int(draws.shifts[1, i])
        img = padded[i, :, pad + dr: pad + dr + h, pad + dc: pad + dc + w] + 0.05 * level * draws.noise[i]
        if draws.top is not None and draws.left is not None:
            size, top, left = _cutout_size(level, h), int(draws.top[i]), int(draws.left[i])
            img[:, top: top + size, left: left + size] = 0.0
        out.append(img.reshape(-1))
    return torch.stack(out)


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 6, 5)])
@pytest.mark.parametrize("level", [1, 2, 3, 4])
def test_augment_images_equals_the_reference(shape: tuple[int, int, int], level: int) -> None:
    c, h, w = shape
    x = torch.rand((64, c * h * w), generator=torch.Generator().manual_seed(1))
    out = augment_images(x, level, shape, torch.Generator().manual_seed(level))
    expected = _reference(x, level, shape, torch.Generator().manual_seed(level))
    assert out.shape == x.shape
    assert torch.equal(out, expected)  # bit for bit (a cut-out negative pixel is -0.0 there, +0.0 here: equal)
    if level >= 2:
        assert (out == 0).any()  # the cutout took effect
