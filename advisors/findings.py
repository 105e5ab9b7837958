"""The closed vocabulary of findings an advisor may report."""

from __future__ import annotations

import re
from enum import Enum


class Finding(str, Enum):
    """What an advisor concluded about the training run. The string value is what JSON answers carry."""

    HEALTHY = "healthy"
    """Nothing to fix: keep the current settings."""
    UNDERFITTING = "underfitting"
    """High bias: low train accuracy, no generalisation gap."""
    OVERFITTING = "overfitting"
    """High variance: train accuracy well above validation accuracy, gap large or growing."""
    DIVERGING = "diverging"
    """Learning rate too high (alias ``lr_too_high``): non-finite/spiking losses, huge gradients, divergence."""
    PLATEAU = "plateau"
    """Learning rate too low (alias ``lr_too_low``): validation loss and accuracy flat, not converged."""
    DEAD_UNITS = "dead_units"
    """A large fraction of hidden units never activate (or are saturated)."""
    SHORTCUT_TOKENS = "shortcut_tokens"
    """Text tasks: a few tokens carry an outlying share of the relevance (spurious shortcut)."""
    SHORTCUT_FEATURES = "shortcut_features"
    """Image and table tasks: a few input features (pixels, columns) carry an outlying share of the relevance on
    the validation errors (a spurious shortcut learned from the training data)."""
    NOISY_LABELS = "noisy_labels"
    """Train accuracy stalls below validation accuracy: the training labels are likely noisy."""


FINDINGS: tuple[Finding, ...] = tuple(Finding)
"""All findings, in the fixed order used by one-hot encodings and canonical sorting."""

FINDING_ALIASES: dict[str, Finding] = {
    "lr_too_high": Finding.DIVERGING,
    "lr_too_low": Finding.PLATEAU,
    "divergence": Finding.DIVERGING,
    "diverged": Finding.DIVERGING,
    "overfit": Finding.OVERFITTING,
    "underfit": Finding.UNDERFITTING,
}
"""Other spellings accepted when parsing untrusted answers."""


def parse_finding(name: object) -> Finding:
    """Map a (possibly sloppy) name to a :class:`Finding`; ``ValueError`` if it is not in the vocabulary.

    Case, surrounding whitespace, hyphens and spaces are normalised (``"Dead units"`` -> ``dead_units``).
    """
    if isinstance(name, Finding):
        return name
    if not isinstance(name, str):
        raise ValueError(f"finding must be a string, got {type(name).__name__}")
    key = re.sub(r"[\s\-]+", "_", name.strip().lower())
    if key in FINDING_ALIASES:
        return FINDING_ALIASES[key]
    try:
        return Finding(key)
    except ValueError:
        allowed = ", ".join(f.value for f in FINDINGS)
        raise ValueError(f"unknown finding {name[:40]!r}; allowed: {allowed}") from None
