"""A grid of cells over an image input: the targets among which an agent chooses what to decorrelate
(``TrainingEnvConfig.mask_grid``)."""

from __future__ import annotations

import numpy as np


def input_cells(shape: tuple[int, ...], grid: int) -> tuple[np.ndarray, ...]:
    """Flat feature ids of each cell of a ``grid`` x ``grid`` partition of a ``(C, H, W)`` input: cells row-major,
    each with its pixels in every channel.

    Raises:
        ValueError: naming ``mask_grid`` unless the input is an image whose height and width are multiples of
            ``grid``.
    """
    if len(shape) != 3 or grid < 1 or shape[1] % grid or shape[2] % grid:
        raise ValueError(f"mask_grid={grid} needs an image input (C, H, W) with H and W multiples of it, "
                         f"got input shape {tuple(shape)}")
    c, h, w = shape
    ids = np.arange(c * h * w).reshape(c, grid, h // grid, grid, w // grid)
    return tuple(ids[:, r, :, q, :].reshape(-1) for r in range(grid) for q in range(grid))


__all__ = ["input_cells"]
