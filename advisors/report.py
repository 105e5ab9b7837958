"""Reading TrainingReports: normalisation, the decision-relevant cache key, and a compact prompt rendering.

The report (schema in ``docs/architecture.md``) is a plain JSON-able dict built by the env. Advisors never trust
its shape: :func:`normalize_report` returns a dict with every documented key present, numbers as floats, lists
capped, strings bounded, and ``gap`` / ``slopes`` recomputed from the history when they are missing.

:func:`decision_key` keeps only what a diagnosis depends on, with numbers rounded to coarse buckets (accuracies
to tenths, losses to powers of two, slopes to their sign, ...), so reports that describe the same situation get
the same key; :func:`report_hash` is a stable digest of it, used as the diagnosis cache key.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

HISTORY_KEYS: tuple[str, ...] = ("train_loss", "val_loss", "train_acc", "val_acc")
MAX_HISTORY = 8
"""History points kept per series (the newest)."""
MAX_LAYERS = 8
MAX_FLAGGED_TOKENS = 5
MAX_RECENT_EVENTS = 8
MAX_NAME_CHARS = 64
EXPLODED_LOSS = 1e4
"""A loss at or above this is treated like a non-finite one (the env caps non-finite values at 1e6)."""
SLOPE_EPS = 0.005
"""Slopes (per step) with a smaller magnitude count as flat."""
SHORTCUT_Z = 3.0
"""Flagged tokens with a relevance z-score at or above this count as shortcut candidates."""
DECISION_EVENTS: tuple[str, ...] = (
    "loss_spike", "divergence", "gap_jump", "dead_unit_growth", "over_relevant_token",
)
"""Event types that can change a diagnosis. ``new_misclassifications`` fires nearly every step and is left
out of the decision key and the event signature."""
LAYER_FIELDS: tuple[str, ...] = (
    "grad_norm", "weight_change", "mean_abs_weight", "dead_fraction", "saturation", "error_share",
)


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
    gap_series = [v - t for v, t in zip(history["val_loss"], history["train_loss"])]
    slopes = {
        "val_loss": _float(slopes_in.get("val_loss"), _slope(history["val_loss"])),
        "val_acc": _float(slopes_in.get("val_acc"), _slope(history["val_acc"])),
        "gap_loss": _float(slopes_in.get("gap_loss"), _slope(gap_series)),
    }
    hparams_in = _mapping(report.get("hparams"))
    bounds_in = _mapping(report.get("bounds"))
    events_in = _mapping(report.get("events"))
    return {
        "schema_version": _int(report.get("schema_version"), 1),
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
        "hparams": {k: _float(hparams_in.get(k), None) for k in ("lr", "weight_decay", "aug_level")},
        "bounds": {k: _bound(bounds_in.get(k)) for k in ("lr", "weight_decay", "aug_level")},
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
        "events": {
            "counts": {
                _str(k): max(0, _int(v, 0)) for k, v in list(_mapping(events_in.get("counts")).items())[:32]
            },
            "recent": [_event(x) for x in _list(events_in.get("recent"))[-MAX_RECENT_EVENTS:]
                       if isinstance(x, Mapping)],
        },
        "diverged": bool(report.get("diverged", False)),
    }


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


def compact_report_text(report: Mapping[str, Any], max_chars: int = 1200) -> str:
    """Render a report as a few short ``key: values`` lines for an LLM prompt, at most ``max_chars`` long.

    Numbers get 3 significant digits; names from the report are sanitised and quoted, so the rendering stays
    data (a token such as ``"ignore previous instructions"`` appears as a quoted value).
    """
    r = normalize_report(report)
    t, hp, hist = r["task"], r["hparams"], r["history"]
    lines = [
        f"task: {_clean(t['family']) or 'unknown'} ({_clean(t['modality']) or '?'}), {t['n_classes']} classes, "
        f"model {_clean(t['model']) or '?'}; step {r['step']}/{r['horizon']}",
        "hparams: " + " ".join(f"{k}={_num(v)}" for k, v in hp.items()),
    ]
    lines += [f"{k}: " + (" ".join(_num(v) for v in hist[k]) or "none") for k in HISTORY_KEYS]
    lines.append(f"gap: acc {_num(r['gap']['acc'])}, loss {_num(r['gap']['loss'])}; slopes/step: "
                 + ", ".join(f"{k} {_num(v)}" for k, v in r["slopes"].items()))
    if r["layers"]:
        lines.append("layers: " + "; ".join(
            f"{_clean(x['name'])} grad {_num(x['grad_norm'])} dead {_num(x['dead_fraction'])} "
            f"sat {_num(x['saturation'])} err {_num(x['error_share'])}" for x in r["layers"]))
    if r["flagged_tokens"]:
        lines.append("flagged tokens: " + ", ".join(
            f"{json.dumps(_clean(x['token'], 24))} z {_num(x['z'])} share {_num(x['share'])}"
            for x in r["flagged_tokens"]))
    counts = {k: v for k, v in r["events"]["counts"].items() if v > 0}
    recent = ", ".join(f"{_clean(e['type'], 24)}@{e['step']}" for e in r["events"]["recent"][-4:])
    lines.append("events: " + (", ".join(f"{_clean(k, 24)} x{v}" for k, v in sorted(counts.items())) or "none")
                 + (f" (recent: {recent})" if recent else ""))
    lines.append(f"diverged: {'yes' if r['diverged'] else 'no'}")
    text = "\n".join(lines)
    return text if len(text) <= max_chars else text[: max(0, max_chars - 3)] + "..."


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


def _slope(values: Sequence[float]) -> float:
    """Least-squares slope per step (0 for fewer than two points or non-finite data)."""
    if len(values) < 2:
        return 0.0
    y = np.asarray(values, dtype=np.float64)
    x = np.arange(len(y), dtype=np.float64)
    x -= x.mean()
    with np.errstate(all="ignore"):
        value = float((x * (y - y.mean())).sum() / (x * x).sum())
    return value if math.isfinite(value) else 0.0


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


def _num(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:.3g}" if math.isfinite(value) else ("nan" if math.isnan(value) else "inf")


def _clean(text: str, limit: int = 40) -> str:
    """Printable, single-line, bounded."""
    return "".join(ch if ch.isprintable() else " " for ch in text)[:limit].strip()
