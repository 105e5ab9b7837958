"""The bounded, JSON-able training report an advisor reads (schema in docs/architecture.md)."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

REPORT_SCHEMA_VERSION = 1
MAX_RECENT_EVENTS = 8
MAX_FLAGGED_TOKENS = 5


def slope(values: Sequence[float]) -> float:
    """Least-squares slope per step of a short series (0 for fewer than two points)."""
    n = len(values)
    if n < 2:
        return 0.0
    x, xx = _centred_steps(n)
    y = np.asarray(values, dtype=np.float64)
    value = float((x * (y - y.mean())).sum() / xx)
    return value if math.isfinite(value) else 0.0


@functools.lru_cache(maxsize=128)
def _centred_steps(n: int) -> tuple[np.ndarray, float]:
    """``x = 0..n-1`` minus its mean, and ``sum(x * x)``: the same for every series of length ``n``."""
    x = np.arange(n, dtype=np.float64)
    x -= x.mean()
    x.setflags(write=False)
    return x, (x * x).sum()


def finite(value: float, bound: float = 1e6) -> float:
    """A JSON-safe float: non-finite values become +-bound, everything clipped to [-bound, bound]."""
    value = float(value)  # plain Python: called ~40 times per report, where numpy's scalar overhead dominated
    if math.isnan(value):
        return float(bound)
    return float(min(max(value, -bound), bound))


def build_report(*, task: dict[str, Any], step: int, horizon: int, hparams: dict[str, float],
                 bounds: dict[str, list[float]], history: dict[str, Sequence[float]], layers: list[dict],
                 flagged_neurons: list[dict], flagged_tokens: list[dict], event_counts: dict[str, int],
                 recent_events: list[dict], diverged: bool) -> dict[str, Any]:
    """Assemble a report; every list is capped so the size does not grow with the episode length."""
    hist = {k: [round(finite(v), 6) for v in vals] for k, vals in history.items()}
    gap_loss = [v - t for v, t in zip(hist["val_loss"], hist["train_loss"])]
    last = {k: (vals[-1] if vals else 0.0) for k, vals in hist.items()}
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "task": task,
        "step": int(step),
        "horizon": int(horizon),
        "hparams": hparams,
        "bounds": bounds,
        "history": hist,
        "gap": {"loss": round(last["val_loss"] - last["train_loss"], 6),
                "acc": round(last["train_acc"] - last["val_acc"], 6)},
        "slopes": {"val_loss": round(slope(hist["val_loss"]), 6), "val_acc": round(slope(hist["val_acc"]), 6),
                   "gap_loss": round(slope(gap_loss), 6)},
        "layers": [{k: (round(finite(v), 6) if not isinstance(v, str) else v) for k, v in layer.items()}
                   for layer in layers],
        "flagged_neurons": flagged_neurons,
        "flagged_tokens": flagged_tokens[:MAX_FLAGGED_TOKENS],
        "events": {"counts": dict(event_counts), "recent": recent_events[-MAX_RECENT_EVENTS:]},
        "diverged": bool(diverged),
    }
