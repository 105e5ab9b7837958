"""Seeded bootstrap confidence intervals for means and paired differences (numpy only)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

N_BOOTSTRAP = 10_000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """A mean with its percentile-bootstrap confidence interval."""

    mean: float
    low: float
    high: float

    def format(self, digits: int = 3, signed: bool = False) -> str:
        sign = "+" if signed else ""
        return f"{self.mean:{sign}.{digits}f} [{self.low:{sign}.{digits}f}, {self.high:{sign}.{digits}f}]"


def bootstrap_mean(values: Sequence[float] | np.ndarray, seed: int = 0, n_boot: int = N_BOOTSTRAP,
                   confidence: float = CONFIDENCE) -> Interval:
    """Mean of ``values`` with a percentile bootstrap CI (resampling the values with replacement)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return Interval(float(x.mean()), float(low), float(high))


def paired_difference(values: Sequence[float] | np.ndarray, reference: Sequence[float] | np.ndarray,
                      seed: int = 0, n_boot: int = N_BOOTSTRAP, confidence: float = CONFIDENCE) -> Interval:
    """Mean of ``values - reference`` (same instances, same order) with a bootstrap CI over instances."""
    a, b = np.asarray(values, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired samples need equal shapes, got {a.shape} and {b.shape}")
    return bootstrap_mean(a - b, seed, n_boot, confidence)
