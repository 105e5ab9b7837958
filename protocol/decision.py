"""What a diagnosis depends on: the decision key of a report, its stable hash, and its decision-relevant events.

:func:`decision_key` keeps only what a diagnosis depends on, with numbers rounded to coarse buckets (accuracies
to tenths, losses to powers of two, slopes to their sign, ...), so reports that describe the same situation get
the same key; :func:`report_hash` is a stable digest of it, used as the diagnosis cache key.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any

from traingym.protocol.events import DECISION_EVENTS
from traingym.protocol.report import HISTORY_KEYS, normalize_report

EXPLODED_LOSS = 1e4
"""A loss at or above this is treated like a non-finite one (the env caps non-finite values at 1e6)."""
SLOPE_EPS = 0.005
"""Slopes (per step) with a smaller magnitude count as flat."""
SHORTCUT_Z = 4.0
"""Relevance z-score from which a token or an input feature is flagged as over-relevant (a shortcut candidate):
the token and input monitors flag at it and the heuristic advisor reads it."""


def recent_event_types(report: Mapping[str, Any], within_steps: int = 1) -> tuple[str, ...]:
    """Sorted decision-relevant event types of a normalised report that happened in the last steps.

    An event counts as recent when its step is at least ``report["step"] - within_steps`` (or has no step).
    """
    step = report["step"]
    types = {
        e["type"] for e in report["events"]["recent"]
        if e["type"] in DECISION_EVENTS and (e["step"] is None or e["step"] >= step - within_steps)
    }
    return tuple(sorted(types))


def decision_key(report: Mapping[str, Any], *, normalized: bool = False) -> dict[str, Any]:
    """The decision-relevant content of a report, bucketed (see the module docstring). JSON-able.

    ``normalized=True``: ``report`` is already :func:`normalize_report`'s output (skips normalising again).
    """
    r = report if normalized else normalize_report(report)
    hist, hp = r["history"], r["hparams"]
    return {
        "task": [r["task"]["family"], r["task"]["modality"], r["task"]["n_classes"]],
        "hparams": [_log_bucket(hp["lr"], 2.0), _log_bucket(hp["weight_decay"], 10.0),
                    None if hp["aug_level"] is None else _safe_round(hp["aug_level"])],
        "last": {k: (_acc_bucket(hist[k][-1]) if k.endswith("acc") else _loss_bucket(hist[k][-1]))
                 if hist[k] else None for k in HISTORY_KEYS},
        "history_len": min(len(hist["val_acc"]), 4),
        "gap": [_linear_bucket(r["gap"]["acc"], 0.1), _linear_bucket(r["gap"]["loss"], 0.25)],
        "slopes": [_sign(r["slopes"][k]) for k in ("val_loss", "val_acc", "gap_loss")],
        "layers": [[x["name"], _linear_bucket(x["dead_fraction"], 0.1), _linear_bucket(x["saturation"], 0.1),
                    _log_bucket(x["grad_norm"], 10.0)] for x in r["layers"]],
        "tokens": sorted([t["token"], math.floor(t["z"])] for t in r["flagged_tokens"]
                         if math.isfinite(t["z"]) and t["z"] >= SHORTCUT_Z),
        "inputs": sorted([x["feature"], math.floor(x["z"])] for x in r["flagged_inputs"]
                         if math.isfinite(x["z"]) and x["z"] >= SHORTCUT_Z),
        "recent_events": list(recent_event_types(r)),
        "diverged": r["diverged"],
    }


def report_hash(report: Mapping[str, Any], *, normalized: bool = False) -> str:
    """A stable 16-hex-digit digest of :func:`decision_key` (same across processes and runs).

    The digest is BLAKE2b over the ``repr`` of the key: the key holds only ints, strings, bools and None in a
    fixed order (no floats, no sets), so the ``repr`` is canonical and cheaper than a sorted JSON dump.
    ``normalized=True``: ``report`` is already :func:`normalize_report`'s output.
    """
    canonical = repr(decision_key(report, normalized=normalized))
    return hashlib.blake2b(canonical.encode("utf-8"), digest_size=8).hexdigest()


def event_signature(report: Mapping[str, Any], *, normalized: bool = False) -> tuple[tuple[str, int], ...]:
    """The counts of decision-relevant events (sorted ``(type, count)`` pairs) of a report.

    ``normalized=True``: ``report`` is already :func:`normalize_report`'s output.
    """
    counts = (report if normalized else normalize_report(report))["events"]["counts"]
    return tuple(sorted((k, v) for k, v in counts.items() if k in DECISION_EVENTS and v > 0))


# ---------------------------------------------------------------- buckets

def _safe_round(value: float) -> int | str:
    return round(value) if math.isfinite(value) else "nonfinite"


def _linear_bucket(value: float, width: float) -> int | str:
    if not math.isfinite(value):
        return "nonfinite"
    return max(-1000, min(1000, math.floor(value / width + 1e-9)))


def _acc_bucket(value: float) -> int | str:
    return _linear_bucket(value, 0.1)


def _loss_bucket(value: float) -> int | str:
    if not math.isfinite(value) or value >= EXPLODED_LOSS:
        return "exploded"
    return round(math.log2(max(value, 1e-3)))


def _log_bucket(value: float | None, base: float) -> int | str | None:
    if value is None:
        return None
    if not math.isfinite(value):
        return "nonfinite"
    return round(math.log(max(value, 1e-12), base))


def _sign(value: float) -> int:
    if not math.isfinite(value) or abs(value) < SLOPE_EPS:
        return 0
    return 1 if value > 0 else -1
