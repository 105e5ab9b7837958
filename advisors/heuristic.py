"""The default advisor: deterministic bias/variance rules over a TrainingReport.

## Rules

Each rule reads the normalised report (see :func:`~traingym.protocol.report.normalize_report`); "last" means
the newest history point, "n" the history length. Thresholds are the module constants below.

* ``diverging`` (lr -1): the ``diverged`` flag; a last loss non-finite or >= ``EXPLODED_LOSS``; a
  ``loss_spike`` / ``divergence`` event in the last step; a layer grad norm >= ``GRAD_NORM_HIGH``; or the last
  train loss >= ``SPIKE_RATIO`` x its history minimum.
* ``dead_units``: a layer's ``dead_fraction`` >= ``DEAD_FRACTION`` (lr -1, neuron_scale +1: boost the flagged,
  still-active, most error-relevant units to make up for the lost capacity), or else a layer's ``saturation``
  >= ``SATURATION`` (lr -1, neuron_scale -1: shrink the flagged units' incoming weights out of saturation).
* ``overfitting`` (weight_decay +1, aug_level +1): gap (train_acc - val_acc) >= ``GAP_LARGE``, or >=
  ``GAP_GROWING`` while growing (``gap_loss`` slope > ``SLOPE_EPS`` or a ``gap_jump`` event in the last step), or
  a memorised training set: last train loss <= ``MEMORISED_LOSS`` with validation loss at least ``LOSS_GAP_LARGE``
  above it.
* ``shortcut_tokens`` (aug_level +1, the augmentation masks flagged tokens): a flagged token with
  z >= ``SHORTCUT_Z``.
* ``shortcut_features`` (aug_level +1: the augmentation masks flagged input features first): a flagged input
  feature with z >= ``SHORTCUT_Z``.
* ``noisy_labels`` (lr -1, weight_decay +1, so the network does not memorise the flipped labels): n >= 3;
  aug_level 0 (augmentation cannot explain it); validation accuracy >= train accuracy + ``NOISY_MARGIN`` at each of
  the last 3 points; last train accuracy in [chance + 0.2, ``CONVERGED_ACC``). The network fits the clean signal
  that the validation set measures, but not the flipped training labels.
* ``underfitting``: n >= 3; last train accuracy < ``UNDERFIT_ACC``; gap < ``GAP_SMALL``; train accuracy rising
  slower than ``FAST_PROGRESS`` per step (fast early progress is healthy). Move: weight_decay -1 if
  weight_decay >= ``WD_SIGNIFICANT``, else lr +1; aug_level -1 if aug_level > 0.
* ``plateau`` (lr +1): n >= 4; val loss and val acc slopes below ``SLOPE_EPS``; val acc range of the last 4 <
  ``STALL_RANGE``; train accuracy < ``CONVERGED_ACC`` (not converged).
* ``healthy`` (keep): none of the above.

``diverging`` suppresses ``underfitting`` and ``plateau`` (their cure, a higher lr, would make it worse);
``overfitting`` and ``noisy_labels`` suppress ``plateau``; ``noisy_labels`` suppresses ``underfitting`` (the low
train accuracy is the flipped labels'); ``shortcut_features`` suppresses ``overfitting`` (the gap is the
shortcut's: validation breaks it). Moves are merged knob by knob in the table's order
(first non-zero wins), then a +1 on a knob already at its upper bound (or -1 at its lower bound) becomes 0.

The text is one canonical sentence per finding, with numbers shown as buckets (``0.2-0.3``), so identical
situations give identical text, e.g. ``"overfitting: generalisation gap 0.2-0.3 and growing; suggest more
weight decay and more augmentation."``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from traingym.advisors.diagnosis import MAX_TEXT_CHARS, Diagnosis
from traingym.advisors.findings import FINDINGS, Finding
from traingym.protocol.decision import EXPLODED_LOSS, SHORTCUT_Z, SLOPE_EPS, recent_event_types
from traingym.protocol.moves import KEEP, KNOBS, Move
from traingym.protocol.report import normalize_report

GRAD_NORM_HIGH = 50.0
SPIKE_RATIO = 2.0
DEAD_FRACTION = 0.5
SATURATION = 0.5
GAP_LARGE = 0.2
GAP_GROWING = 0.1
GAP_SMALL = 0.05
UNDERFIT_ACC = 0.7
FAST_PROGRESS = 0.03
CONVERGED_ACC = 0.98
STALL_RANGE = 0.02
NOISY_MARGIN = 0.05
MEMORISED_LOSS = 0.05
LOSS_GAP_LARGE = 0.15
WD_SIGNIFICANT = 1e-3

_MOVE_PRIORITY: tuple[Finding, ...] = (
    Finding.DIVERGING, Finding.DEAD_UNITS, Finding.OVERFITTING, Finding.SHORTCUT_TOKENS,
    Finding.SHORTCUT_FEATURES, Finding.NOISY_LABELS, Finding.UNDERFITTING, Finding.PLATEAU,
)
_CONFIDENCE: dict[Finding, float] = {
    Finding.DIVERGING: 0.8, Finding.DEAD_UNITS: 0.7, Finding.OVERFITTING: 0.6, Finding.SHORTCUT_TOKENS: 0.7,
    Finding.SHORTCUT_FEATURES: 0.7, Finding.NOISY_LABELS: 0.55, Finding.UNDERFITTING: 0.6, Finding.PLATEAU: 0.6,
    Finding.HEALTHY: 0.5,
}
_PHRASES: dict[tuple[int, int], str] = {
    (0, 1): "a higher learning rate", (0, -1): "a lower learning rate",
    (1, 1): "more weight decay", (1, -1): "less weight decay",
    (2, 1): "more augmentation", (2, -1): "less augmentation",
    (3, 1): "scaling up flagged units", (3, -1): "scaling down flagged units",
}


class HeuristicAdvisor:
    """Deterministic rule-based advisor (the default, and the fallback of every LLM advisor).

    Pure function of the report: no state, no randomness, microseconds per call. See the module docstring for
    the rules.
    """

    name = "heuristic"

    def diagnose(self, report: Mapping[str, Any]) -> Diagnosis:
        """Diagnose one TrainingReport (any shape is tolerated; missing data means "no evidence")."""
        return self.diagnose_normalized(normalize_report(report))

    def diagnose_normalized(self, r: dict[str, Any]) -> Diagnosis:
        """:meth:`diagnose` for a report that is already :func:`normalize_report`'s output (no re-normalising)."""
        verdicts: dict[Finding, tuple[Move, str]] = {}
        for rule in (_diverging, _dead_units, _overfitting, _shortcut_tokens, _shortcut_features, _noisy_labels,
                     _underfitting, _plateau):
            found = rule(r)
            if found is not None:
                verdicts[found[0]] = (_within_bounds(found[1], r), found[2])
        if Finding.DIVERGING in verdicts:
            verdicts.pop(Finding.UNDERFITTING, None)
            verdicts.pop(Finding.PLATEAU, None)
        if Finding.OVERFITTING in verdicts or Finding.NOISY_LABELS in verdicts:
            verdicts.pop(Finding.PLATEAU, None)
        if Finding.NOISY_LABELS in verdicts:
            verdicts.pop(Finding.UNDERFITTING, None)
        if Finding.SHORTCUT_FEATURES in verdicts:
            verdicts.pop(Finding.OVERFITTING, None)
        if not verdicts:
            return _healthy(r)
        move = [0] * len(KNOBS)
        for finding in _MOVE_PRIORITY:
            if finding in verdicts:
                for i, value in enumerate(verdicts[finding][0]):
                    if move[i] == 0:
                        move[i] = value
        sentences = [
            f"{verdicts[f][1]}; suggest {_suggestion(verdicts[f][0])}." for f in FINDINGS if f in verdicts
        ]
        return Diagnosis(
            findings=tuple(verdicts),
            confidence=max(_CONFIDENCE[f] for f in verdicts),
            suggested_move=tuple(move),  # type: ignore[arg-type]
            text=_bounded(" ".join(sentences)),
        )

    def __repr__(self) -> str:
        return "HeuristicAdvisor()"


# ---------------------------------------------------------------- rules: (finding, move, sentence head) | None

Verdict = tuple[Finding, Move, str]


def _diverging(r: dict[str, Any]) -> Verdict | None:
    hist = r["history"]
    last_losses = [v[-1] for k, v in hist.items() if k.endswith("loss") and v]
    max_grad = max((x["grad_norm"] for x in r["layers"]), default=0.0)
    recent = recent_event_types(r)
    train_loss = [v for v in hist["train_loss"] if math.isfinite(v)]
    if r["diverged"]:
        reason = "training diverged"
    elif any(not math.isfinite(v) or v >= EXPLODED_LOSS for v in last_losses):
        reason = "loss is non-finite or exploded"
    elif "divergence" in recent or "loss_spike" in recent:
        reason = "loss spike in the last step"
    elif not math.isfinite(max_grad) or max_grad >= GRAD_NORM_HIGH:
        reason = f"gradient norm at least {GRAD_NORM_HIGH:g}"
    elif len(train_loss) >= 2 and min(train_loss) > 0 and train_loss[-1] >= SPIKE_RATIO * min(train_loss):
        ratio = train_loss[-1] / min(train_loss)
        low = 2 ** math.floor(math.log2(ratio))
        reason = f"train loss rose to {low:g}-{2 * low:g}x its minimum"
    else:
        return None
    return Finding.DIVERGING, (-1, 0, 0, 0), f"diverging: {reason}"


def _dead_units(r: dict[str, Any]) -> Verdict | None:
    layers = r["layers"]
    if not layers:
        return None
    dead = max(layers, key=lambda x: x["dead_fraction"])
    if dead["dead_fraction"] >= DEAD_FRACTION:
        return (Finding.DEAD_UNITS, (-1, 0, 0, 1),
                f"dead units: {_percent(dead['dead_fraction'])} of units in {_name(dead)} never activate")
    sat = max(layers, key=lambda x: x["saturation"])
    if sat["saturation"] >= SATURATION:
        return (Finding.DEAD_UNITS, (-1, 0, 0, -1),
                f"dead units: {_percent(sat['saturation'])} of units in {_name(sat)} are saturated")
    return None


def _overfitting(r: dict[str, Any]) -> Verdict | None:
    gap = r["gap"]["acc"]
    slope = r["slopes"]["gap_loss"]
    growing = slope > SLOPE_EPS or "gap_jump" in recent_event_types(r)
    hist = r["history"]
    memorised = (bool(hist["train_loss"]) and bool(hist["val_loss"]) and hist["train_loss"][-1] <= MEMORISED_LOSS
                 and hist["val_loss"][-1] - hist["train_loss"][-1] >= LOSS_GAP_LARGE)
    if not math.isfinite(gap) or not (gap >= GAP_LARGE or (gap >= GAP_GROWING and growing) or memorised):
        return None
    if memorised and not (gap >= GAP_LARGE or (gap >= GAP_GROWING and growing)):
        return (Finding.OVERFITTING, (0, 1, 1, 0),
                f"overfitting: training set memorised, validation loss {_range(r['gap']['loss'])} above it")
    trend = "growing" if growing else ("shrinking" if slope < -SLOPE_EPS else "stable")
    return (Finding.OVERFITTING, (0, 1, 1, 0),
            f"overfitting: generalisation gap {_range(gap)} and {trend}")


def _shortcut_tokens(r: dict[str, Any]) -> Verdict | None:
    tokens = sorted((t for t in r["flagged_tokens"] if math.isfinite(t["z"]) and t["z"] >= SHORTCUT_Z),
                    key=lambda t: (-t["z"], t["token"]))
    if not tokens:
        return None
    names = ", ".join(json.dumps(t["token"][:24]) for t in tokens[:3])
    z = math.floor(tokens[0]["z"])
    return (Finding.SHORTCUT_TOKENS, (0, 0, 1, 0),
            f"shortcut tokens: {names} carry outlying relevance (z {z}-{z + 1}); augmentation masks them")


def _shortcut_features(r: dict[str, Any]) -> Verdict | None:
    features = sorted((x for x in r["flagged_inputs"] if math.isfinite(x["z"]) and x["z"] >= SHORTCUT_Z),
                      key=lambda x: (-x["z"], x["feature"]))
    if not features:
        return None
    names = ", ".join(json.dumps(x["feature"][:24]) for x in features[:3])
    z = math.floor(features[0]["z"])
    return (Finding.SHORTCUT_FEATURES, (0, 0, 1, 0),
            f"shortcut features: {names} carry outlying relevance on the errors (z {z}-{z + 1}); augmentation "
            f"masks them")


def _noisy_labels(r: dict[str, Any]) -> Verdict | None:
    ta, va = r["history"]["train_acc"], r["history"]["val_acc"]
    if len(ta) < 3 or len(va) < 3 or r["hparams"]["aug_level"] not in (None, 0.0):
        return None
    chance = 1.0 / r["task"]["n_classes"] if r["task"]["n_classes"] > 0 else 0.0
    below = all(v >= t + NOISY_MARGIN for t, v in zip(ta[-3:], va[-3:]))
    if below and chance + 0.2 <= ta[-1] < CONVERGED_ACC:
        return (Finding.NOISY_LABELS, (-1, 1, 0, 0),
                f"noisy labels: train accuracy {_range(ta[-1])} stays below validation accuracy "
                f"{_range(va[-1])}")
    return None


def _underfitting(r: dict[str, Any]) -> Verdict | None:
    ta = r["history"]["train_acc"]
    if len(ta) < 3 or not math.isfinite(ta[-1]):
        return None
    progress = (ta[-1] - ta[-3]) / 2
    if ta[-1] >= UNDERFIT_ACC or r["gap"]["acc"] >= GAP_SMALL or progress >= FAST_PROGRESS:
        return None
    wd, aug = r["hparams"]["weight_decay"], r["hparams"]["aug_level"]
    move = [0, 0, 0, 0]
    if wd is not None and wd >= WD_SIGNIFICANT:
        move[1] = -1
    else:
        move[0] = 1
    if aug is not None and aug > 0:
        move[2] = -1
    return (Finding.UNDERFITTING, tuple(move),  # type: ignore[return-value]
            f"underfitting: train accuracy {_range(ta[-1])} with no generalisation gap")


def _plateau(r: dict[str, Any]) -> Verdict | None:
    va, ta = r["history"]["val_acc"], r["history"]["train_acc"]
    slopes = r["slopes"]
    if len(va) < 4 or not ta or ta[-1] >= CONVERGED_ACC:
        return None
    flat = abs(slopes["val_loss"]) < SLOPE_EPS and abs(slopes["val_acc"]) < SLOPE_EPS
    if flat and max(va[-4:]) - min(va[-4:]) < STALL_RANGE:
        return (Finding.PLATEAU, (1, 0, 0, 0),
                f"plateau: validation loss and accuracy flat for 4+ steps at accuracy {_range(va[-1])}")
    return None


def _healthy(r: dict[str, Any]) -> Diagnosis:
    va = r["history"]["val_acc"]
    slope = r["slopes"]["val_acc"]
    trend = "improving" if slope >= SLOPE_EPS else ("falling" if slope <= -SLOPE_EPS else "flat")
    head = f"healthy: validation accuracy {_range(va[-1])} and {trend}" if va else "healthy: no warning signs"
    return Diagnosis((Finding.HEALTHY,), _CONFIDENCE[Finding.HEALTHY], KEEP,
                     f"{head}; keep the current settings.")


# ---------------------------------------------------------------- helpers

def _within_bounds(move: Move, r: dict[str, Any]) -> Move:
    """Zero the moves that would push a knob past its bound (the env would clip them anyway)."""
    out = list(move)
    for i, knob in enumerate(KNOBS):
        value, bound = r["hparams"].get(knob), r["bounds"].get(knob)
        if value is None or bound is None or out[i] == 0:
            continue
        if (out[i] > 0 and value >= bound[1]) or (out[i] < 0 and value <= bound[0]):
            out[i] = 0
    return tuple(out)  # type: ignore[return-value]


def _suggestion(move: Move) -> str:
    phrases = [_PHRASES[(i, v)] for i, v in enumerate(move) if v != 0]
    if not phrases:
        return "keeping the settings (the knobs are at their bounds)"
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def _range(value: float, width: float = 0.1) -> str:
    """Bucket label such as ``0.2-0.3`` (floor to the bucket width)."""
    if not math.isfinite(value):
        return "non-finite"
    low = math.floor(value / width + 1e-9) * width
    return f"{low:.1f}-{low + width:.1f}"


def _percent(fraction: float) -> str:
    low = min(90, math.floor(fraction * 10 + 1e-9) * 10)
    return f"{low}-{low + 10}%"


def _name(layer: Mapping[str, Any]) -> str:
    return json.dumps(layer["name"][:24]) if layer["name"] else "a layer"


def _bounded(text: str) -> str:
    return text if len(text) <= MAX_TEXT_CHARS else text[: MAX_TEXT_CHARS - 3] + "..."
