"""The one range check of every config and CLI: a number (or an int) in a closed interval, one clear message."""

from __future__ import annotations

import math


def check_range(name: str, value: object, low: float, high: float, *, integer: bool = False) -> None:
    """Raise ValueError naming ``name`` unless ``value`` is a number (an int with ``integer``; never a bool) in
    ``[low, high]``: "``name`` must be in [low, high], got value" (or "must be an int in ..." for the wrong type).
    """
    kind = "an int" if integer else "a number"
    right_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not right_type:
        raise ValueError(f"{name} must be {kind} in [{low}, {high}], got {value!r}")
    if math.isnan(value) or not low <= value <= high:  # type: ignore[arg-type]
        raise ValueError(f"{name} must be in [{low}, {high}], got {value!r}")
