"""The TrainingReport: the bounded, JSON-able dict the env builds and advisors read (schema in
``docs/architecture.md``).

The env builds it with :func:`build_report`; advisors never trust its shape and read it through
:func:`normalize_report`, which returns a dict with every documented key present, numbers as floats, lists capped
and strings bounded, and recomputes ``gap`` / ``slopes`` from the history only when they are missing. The limits
below bound both sides, so a report's size never grows with the episode length.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

REPORT_SCHEMA_VERSION = 1
HISTORY_KEYS: tuple[str, ...] = ("train_loss", "val_loss", "train_acc", "val_acc")
"""Series of the ``history`` block."""
SLOPE_KEYS: tuple[str, ...] = ("val_loss", "val_acc", "gap_loss")
"""Series of the ``slopes`` block (``gap_loss`` is val_loss - train_loss per step)."""
LAYER_FIELDS: tuple[str, ...] = (
    "grad_norm", "weight_change", "mean_abs_weight", "dead_fraction", "saturation", "error_share",
)
"""Per-layer summary statistics, in report and observation order (the env's NeuronLog fills them)."""
HPARAM_KEYS: tuple[str, ...] = ("lr", "weight_decay", "aug_level")
MAX_HISTORY = 8
"""History points kept per series (the newest)."""
MAX_LAYERS = 4
"""Hidden layers a report (and the observation's per-layer slots) describes: the first ones in forward order."""
SHORTCUT_Z = 4.0
"""Relevance z-score from which a token or an input feature is over-relevant (a shortcut candidate): the token and
input monitors flag at it (input features raise the alarm at a higher z, see
:mod:`traingym.envs.monitoring.input_relevance`) and the heuristic advisor reads it."""
MAX_FLAGGED_TOKENS = 5
MAX_FLAGGED_INPUTS = 5
MAX_RECENT_EVENTS = 8
MAX_NAME_CHARS = 64


def slope(values: Sequence[float]) -> float:
    """Least-squares slope per step of a short series (0 for fewer than two points or non-finite data)."""
    n = len(values)
    if n < 2:
        return 0.0
    x, xx = _centred_steps(n)
    y = np.asarray(values, dtype=np.float64)
    with np.errstate(all="ignore"):
        value = float((x * (y - y.mean())).sum() / xx)
    return value if math.isfinite(value) else 0.0


@functools.lru_cache(maxsize=128)
def _centred_steps(n: int) -> tuple[np.ndarray, float]:
    """``x = 0..n-1`` minus its mean, and ``sum(x * x)``: the same for every series of length ``n``."""
    x = np.arange(n, dtype=np.float64)
    x -= x.mean()
    x.setflags(write=False)
    return x, (x * x).sum()


def history_slopes(history: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """The ``slopes`` block of a history (keys :data:`SLOPE_KEYS`). The env computes it once per step and hands
    the same values to its ``training_stats`` observation and to :func:`build_report`."""
    gap = [v - t for v, t in zip(history["val_loss"], history["train_loss"])]
    return {"val_loss": slope(history["val_loss"]), "val_acc": slope(history["val_acc"]), "gap_loss": slope(gap)}


def finite(value: float, bound: float = 1e6) -> float:
    """A JSON-safe float: non-finite values become +-bound, everything clipped to [-bound, bound]."""
    value = float(value)  # plain Python: called ~40 times per report, where numpy's scalar overhead dominated
    if math.isnan(value):
        return float(bound)
    return float(min(max(value, -bound), bound))


def build_report(*, task: dict[str, Any], step: int, horizon: int, hparams: dict[str, float],
                 bounds: dict[str, list[float]], history: Mapping[str, Sequence[float]],
                 slopes: Mapping[str, float], layers: list[dict], flagged_neurons: list[dict],
                 flagged_tokens: list[dict], flagged_inputs: list[dict], event_counts: dict[str, int],
                 recent_events: list[dict], diverged: bool) -> dict[str, Any]:
    """Assemble a report; every list is capped so the size does not grow with the episode length.

    ``slopes`` is :func:`history_slopes` of ``history`` (passed in, so the caller computes it once per step).
    """
    hist = {k: [round(finite(v), 6) for v in vals] for k, vals in history.items()}
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
        "slopes": {k: round(finite(slopes[k]), 6) for k in SLOPE_KEYS},
        "layers": [{k: (round(finite(v), 6) if not isinstance(v, str) else v) for k, v in layer.items()}
                   for layer in layers[:MAX_LAYERS]],
        "flagged_neurons": flagged_neurons[:MAX_LAYERS],
        "flagged_tokens": flagged_tokens[:MAX_FLAGGED_TOKENS],
        "flagged_inputs": flagged_inputs[:MAX_FLAGGED_INPUTS],
        "events": {"counts": dict(event_counts), "recent": recent_events[-MAX_RECENT_EVENTS:]},
        "diverged": bool(diverged),
    }


def normalize_report(report: Mapping[str, Any]) -> dict[str, Any]:
    """Return a well-formed copy of ``report``; missing or ill-typed entries get neutral defaults.

    Numbers stay as given (non-finite values survive, they are evidence of divergence); missing hyperparameters
    are ``None``. Idempotent: normalising a normalised report returns an equal dict.

    Raises:
        TypeError: ``report`` is not a mapping.
    """
    if not isinstance(report, Mapping):
        raise TypeError(f"a TrainingReport must be a mapping (dict), got {type(report).__name__}")
    task = _mapping(report.get("task"))
    history_in = _mapping(report.get("history"))
    history = {k: _floats(history_in.get(k))[-MAX_HISTORY:] for k in HISTORY_KEYS}
    gap_in, slopes_in = _mapping(report.get("gap")), _mapping(report.get("slopes"))
    gap = {
        "loss": _float(gap_in.get("loss"), _last_diff(history["val_loss"], history["train_loss"])),
        "acc": _float(gap_in.get("acc"), _last_diff(history["train_acc"], history["val_acc"])),
    }
    slopes = {k: _float(slopes_in.get(k), None) for k in SLOPE_KEYS}
    if None in slopes.values():  # only a report without (valid) slopes pays for computing them
        computed = history_slopes(history)
        slopes = {k: computed[k] if v is None else v for k, v in slopes.items()}
    hparams_in = _mapping(report.get("hparams"))
    bounds_in = _mapping(report.get("bounds"))
    events_in = _mapping(report.get("events"))
    return {
        "schema_version": _int(report.get("schema_version"), REPORT_SCHEMA_VERSION),
        "task": {
            "env_id": _str(task.get("env_id")),
            "family": _str(task.get("family")),
            "modality": _str(task.get("modality")),
            "n_classes": max(0, _int(task.get("n_classes"), 0)),
            "model": _str(task.get("model")),
            "n_params": max(0, _int(task.get("n_params"), 0)),
        },
        "step": _int(report.get("step"), 0),
        "horizon": _int(report.get("horizon"), 0),
        "hparams": {k: _float(hparams_in.get(k), None) for k in HPARAM_KEYS},
        "bounds": {k: _bound(bounds_in.get(k)) for k in HPARAM_KEYS},
        "history": history,
        "gap": gap,
        "slopes": slopes,
        "layers": [_layer(x) for x in _list(report.get("layers"))[:MAX_LAYERS] if isinstance(x, Mapping)],
        "flagged_neurons": [
            {"layer": _str(x.get("layer")), "ids": [_int(i, 0) for i in _list(x.get("ids"))[:32]],
             "scores": _floats(x.get("scores"))[:32]}
            for x in _list(report.get("flagged_neurons"))[:MAX_LAYERS] if isinstance(x, Mapping)
        ],
        "flagged_tokens": [
            {"token": _str(x.get("token"), 32), "z": _float(x.get("z"), 0.0), "share": _float(x.get("share"), 0.0)}
            for x in _list(report.get("flagged_tokens"))[:MAX_FLAGGED_TOKENS] if isinstance(x, Mapping)
        ],
        "flagged_inputs": [
            {"feature": _str(x.get("feature"), 32), "z": _float(x.get("z"), 0.0), "share": _float(x.get("share"), 0.0)}
            for x in _list(report.get("flagged_inputs"))[:MAX_FLAGGED_INPUTS] if isinstance(x, Mapping)
        ],
        "events": {
            "counts": {
                _str(k): max(0, _int(v, 0)) for k, v in list(_mapping(events_in.get("counts")).items())[:32]
            },
            "recent": [_event(x) for x in _list(events_in.get("recent"))[-MAX_RECENT_EVENTS:]
                       if isinstance(x, Mapping)],
        },
        "diverged": bool(report.get("diverged", False)),
    }


# ---------------------------------------------------------------- coercion helpers (tolerant, never raise)

def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        return []
    return list(value)


def _float(value: object, default: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return default
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default


def _floats(value: object) -> list[float]:
    return [f for f in (_float(v, None) for v in _list(value)) if f is not None]


def _int(value: object, default: int) -> int:
    number = _float(value, None)
    return int(number) if number is not None and math.isfinite(number) else default


def _str(value: object, limit: int = MAX_NAME_CHARS) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _bound(value: object) -> list[float] | None:
    pair = _floats(value)
    return pair[:2] if len(pair) >= 2 else None


def _layer(layer: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": _str(layer.get("name"))}
    out.update({k: _float(layer.get(k), 0.0) for k in LAYER_FIELDS})
    return out


def _event(event: Mapping[str, Any]) -> dict[str, Any]:
    values = _mapping(event.get("values"))
    step = _float(event.get("step"), None)
    return {
        "step": int(step) if step is not None and math.isfinite(step) else None,
        "type": _str(event.get("type") or event.get("event")),
        "layer": _str(event.get("layer")) or None,
        "neuron_ids": [_int(i, 0) for i in _list(event.get("neuron_ids"))[:32]],
        "values": {_str(k): _float(v, 0.0) for k, v in list(values.items())[:16]},
    }


def _last_diff(a: list[float], b: list[float]) -> float:
    return a[-1] - b[-1] if a and b else 0.0
