"""Pathology instance sets: training runs with a planted, documented problem whose right remedy differs by cause.

Each instance of a pathology family names its problem in ``instance["pathology"]`` with a severity
``instance["strength"]`` in [0, 1] (ground truth for scoring advisors; the agent, advisors and controllers see
only what the env observes, and the report names the neutral base family):

- ``clean``: nothing planted (s = 0). Remedy: tune LR / WD.
- ``spurious``: a SpuCoMNIST / Colored-MNIST style shortcut (Arjovsky et al. 2019; Joshi et al. 2023): two
  label-coded pixels on the outer ring of a training image with probability s; in validation and test the same
  pixels of a *random* class with probability s (the correlation is broken there, as in those benchmarks).
  Remedy: mask the over-relevant input features (augmentation).
- ``label_noise``: a fraction 0.5 s of the training labels flipped to another class (Zhang et al. 2017). Remedy:
  a lower learning rate and more weight decay, so the network does not memorise the flips.
- ``small_data``: only a fraction 1 - 0.9 s of the training split kept (about 100 images at s = 1). Remedy: more
  weight decay and augmentation.
- ``dying_relu``: an initial learning rate 10^(0.3 s - 0.3) (0.7-1 with SGD momentum 0.9 for s in [0.5, 1]) that
  kills most hidden units in the first steps without diverging (Lu et al. 2019). Remedy: a lower LR at once.

The shortcut pixels are drawn per instance (from its split seed) among the image's outer ring, where the real
digits are blank, so no fixed rule can know them: which pixels carry the shortcut is the input relevance's business
(:mod:`traingym.envs.monitoring.input_relevance`).

:class:`DigitsPatchPathologies` (``TrainGym/DigitsPatchPathologies-v0``) is the same mixture with another carrier:
a SpuCo-style label-coded patch, one class code (a distinct 0/1 pattern) in the 2 x 2 pixels of one cell of a
4 x 4 grid, the cell drawn per instance anywhere in the image, strokes included. There the env lets the agent choose
which cell to decorrelate (``mask_grid``) instead of decorrelating the flagged pixels itself, so the *which* must
come from what the agent observes: a blind pick of the cell costs (``docs/results/region_masking.md``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from traingym.envs.tasks.base import Instance, Split, TaskFamily
from traingym.envs.tasks.digits import SHAPE, DigitsMLP
from traingym.envs.tasks.input_cells import input_cells

PATHOLOGIES: tuple[str, ...] = ("clean", "spurious", "label_noise", "small_data", "dying_relu")
"""Pathology names, in the order of :data:`PATHOLOGY_WEIGHTS`."""
PATHOLOGY_WEIGHTS: tuple[float, ...] = (0.2, 0.2, 0.2, 0.2, 0.2)
"""Probability of each pathology in the mixture's instance sets."""
STRENGTH_RANGE: tuple[float, float] = (0.5, 1.0)
"""Strength of a sampled pathological instance (clean instances have 0)."""
INITIAL_LR: tuple[float, float] = (0.01, 0.3)
"""Initial SGD learning rate of every pathology but ``dying_relu`` (log-uniform): within one decade of good
values, so that what differs between instances is the pathology, not a bad start."""
INITIAL_WD: tuple[float, float] = (1e-5, 1e-3)
"""Initial weight decay (log-uniform)."""
PIXELS_PER_CLASS = 2
SPURIOUS_VALUE = 1.0
"""Value of a planted pixel (digits are scaled to [0, 1])."""
PATCH_GRID = 4
"""Cells per side of the grid the patch carrier's cell is drawn from (2 x 2 pixels on 8 x 8 digits); the grid of
``TrainGym/DigitsPatchPathologies-v0``'s ``mask_grid`` too."""


def outer_ring(shape: tuple[int, int, int]) -> np.ndarray:
    """Flat indices of the outermost pixels of a ``(C, H, W)`` image's first channel, row-major."""
    _, h, w = shape
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    ring = (rows == 0) | (rows == h - 1) | (cols == 0) | (cols == w - 1)
    return np.flatnonzero(ring.reshape(-1))


def spurious_pixels(split_seed: int, n_classes: int, shape: tuple[int, int, int]) -> np.ndarray:
    """``(n_classes, PIXELS_PER_CLASS)`` flat pixel indices of each class's shortcut, disjoint between classes,
    drawn from the instance's split seed among the outer ring."""
    ring = outer_ring(shape)
    need = n_classes * PIXELS_PER_CLASS
    if need > ring.size:
        raise ValueError(f"{n_classes} classes need {need} ring pixels, the image has {ring.size}")
    rng = np.random.default_rng([split_seed, 0x5B0C])
    return rng.choice(ring, size=need, replace=False).reshape(n_classes, PIXELS_PER_CLASS)


def patch_cell(split_seed: int) -> int:
    """The grid cell (row-major, of :data:`PATCH_GRID` x :data:`PATCH_GRID`) of an instance's patch shortcut,
    drawn from its split seed."""
    return int(np.random.default_rng([split_seed, 0x9A7C]).integers(PATCH_GRID * PATCH_GRID))


def patch_codes(n_classes: int, size: int) -> np.ndarray:
    """``(n_classes, size)`` distinct non-zero 0/1 codes, class ``k`` showing the binary digits of ``k + 1``."""
    if n_classes > 2**size - 1:
        raise ValueError(f"a patch of {size} pixels codes at most {2**size - 1} classes, got {n_classes}")
    return np.array([[((k + 1) >> b) & 1 for b in range(size)] for k in range(n_classes)], dtype=np.float32)


def plant(x: torch.Tensor, codes: torch.Tensor, pixels: np.ndarray, values: np.ndarray, rate: float,
          rng: np.random.Generator) -> torch.Tensor:
    """A copy of ``x`` ``(N, features)`` where each row, with probability ``rate``, shows class ``codes[row]``'s
    shortcut: ``pixels`` ``(n_classes, P)`` flat indices set to ``values`` ``(n_classes, P)``."""
    x = x.clone()
    rows = np.flatnonzero(rng.random(x.shape[0]) < rate)
    if rows.size:
        classes = codes[rows].numpy()
        cols = torch.from_numpy(pixels[classes])  # (R, P)
        x[torch.from_numpy(rows)[:, None], cols] = torch.from_numpy(values[classes]).to(x.dtype)
    return x


class DigitsPathologies(DigitsMLP):
    """The digits MLP family (:class:`~traingym.envs.tasks.digits.DigitsMLP`) with one planted pathology per
    instance (see the module docstring); the mixture of ``TrainGym/DigitsPathologies-v0``."""

    name: ClassVar[str] = "digits_pathologies"
    report_name: ClassVar[str | None] = "digits_mlp"

    def sample_instance(self, rng: np.random.Generator, optimizer: str, split_seed: int) -> Instance:
        instance: Instance = {"family": self.name, "split_seed": int(split_seed)}
        instance.update(self.sample_architecture(rng))
        pathology = str(rng.choice(PATHOLOGIES, p=PATHOLOGY_WEIGHTS))
        strength = 0.0 if pathology == "clean" else float(rng.uniform(*STRENGTH_RANGE))
        instance["lr"] = float(10 ** rng.uniform(*np.log10(INITIAL_LR)))
        if pathology == "dying_relu":
            instance["lr"] = float(10 ** (0.3 * strength - 0.3))
        instance["weight_decay"] = float(10 ** rng.uniform(*np.log10(INITIAL_WD)))
        instance["aug_level"] = 0
        instance["label_noise"] = 0.5 * strength if pathology == "label_noise" else 0.0
        instance["pathology"] = pathology
        instance["strength"] = round(strength, 4)
        return instance

    def validate_instance(self, instance: Instance) -> None:
        super().validate_instance(instance)
        check_pathology(instance)

    def instance_fields(self) -> list[str]:
        return [*super().instance_fields(), "pathology", "strength"]

    def split(self, instance: Instance, val_size: int) -> Split:
        split = super().split(instance, val_size)
        pathology, strength = instance.get("pathology", "clean"), float(instance.get("strength", 0.0))
        if pathology == "small_data":
            keep = max(split.n_classes * 4, int(round((1.0 - 0.9 * strength) * split.x_train.shape[0])))
            return Split(split.x_train[:keep], split.y_train[:keep], split.x_val, split.y_val, split.x_test,
                         split.y_test, split.n_classes)
        if pathology != "spurious" or strength == 0.0:
            return split
        pixels, values = self.shortcut(int(instance["split_seed"]), split.n_classes)
        rng = np.random.default_rng([int(instance["split_seed"]), 0x5B0D])

        def decorrelated(x: torch.Tensor) -> torch.Tensor:  # the pixels of a random class: no label information
            classes = torch.from_numpy(rng.integers(split.n_classes, size=x.shape[0]))
            return plant(x, classes, pixels, values, strength, rng)

        return Split(plant(split.x_train, split.y_train, pixels, values, strength, rng), split.y_train,
                     decorrelated(split.x_val), split.y_val, decorrelated(split.x_test), split.y_test,
                     split.n_classes)

    def shortcut(self, split_seed: int, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
        """The spurious carrier of an instance: per class, the flat pixel indices ``(n_classes, P)`` and the values
        ``(n_classes, P)`` they are set to (here :data:`PIXELS_PER_CLASS` ring pixels per class, at
        :data:`SPURIOUS_VALUE`)."""
        pixels = spurious_pixels(split_seed, n_classes, SHAPE)
        return pixels, np.full(pixels.shape, SPURIOUS_VALUE, dtype=np.float32)


class DigitsPatchPathologies(DigitsPathologies):
    """The pathology mixture of :class:`DigitsPathologies` whose spurious carrier is a label-coded patch in one
    grid cell (see the module docstring); the mixture of ``TrainGym/DigitsPatchPathologies-v0``."""

    name: ClassVar[str] = "digits_patch_pathologies"

    def shortcut(self, split_seed: int, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
        cell = input_cells(SHAPE, PATCH_GRID)[patch_cell(split_seed)]
        return np.tile(cell, (n_classes, 1)), patch_codes(n_classes, cell.size)


def check_pathology(instance: dict[str, Any]) -> None:
    """Raise ValueError naming the field when ``pathology`` or ``strength`` is not a valid value."""
    pathology = instance.get("pathology", "clean")
    if pathology not in PATHOLOGIES:
        raise ValueError(f"instance['pathology'] must be one of {PATHOLOGIES}, got {pathology!r}")
    strength = instance.get("strength", 0.0)
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0.0 <= float(strength) <= 1.0:
        raise ValueError(f"instance['strength'] must be a number in [0, 1], got {strength!r}")


__all__ = ["PATCH_GRID", "PATHOLOGIES", "DigitsPatchPathologies", "DigitsPathologies", "TaskFamily", "check_pathology",
           "outer_ring", "patch_cell", "patch_codes", "spurious_pixels"]
