"""The one slope and the one report builder / normaliser of the env <-> advisor contract."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from traingym.protocol import (
    DECISION_EVENTS,
    EVENT_TYPES,
    LAYER_FIELDS,
    MAX_RECENT_EVENTS,
    SLOPE_KEYS,
    EventType,
    build_report,
    history_slopes,
    normalize_report,
    report_hash,
    slope,
)
from traingym.protocol import report as report_module

HISTORY = {"train_loss": [2.3, 1.9, 1.2, 0.8, 0.5], "train_acc": [0.1, 0.3, 0.6, 0.75, 0.85],
           "val_loss": [2.3, 2.0, 1.5, 1.4, 1.45], "val_acc": [0.1, 0.28, 0.5, 0.55, 0.56]}


def _report(history: dict[str, list[float]] = HISTORY, **overrides: object) -> dict:
    layer = {"name": "fc1", **{f: 0.1 * (i + 1) for i, f in enumerate(LAYER_FIELDS)}}
    events = [{"step": s, "type": EventType.LOSS_SPIKE.value, "layer": None, "neuron_ids": [], "values": {}}
              for s in range(12)]
    kwargs: dict = dict(
        task={"family": "digits_mlp", "modality": "image", "n_classes": 10, "model": "mlp", "n_params": 1234},
        step=4, horizon=20, hparams={"lr": 0.1, "weight_decay": 1e-4, "aug_level": 1},
        bounds={"lr": [1e-6, 100.0], "weight_decay": [1e-7, 0.1], "aug_level": [0, 4]},
        history=history, slopes=history_slopes(history), layers=[layer],
        flagged_neurons=[{"layer": "fc1", "ids": [3, 1], "scores": [0.5, 0.25]}],
        flagged_tokens=[{"token": f"t{i}", "z": 4.0 - i, "share": 0.1} for i in range(9)],
        flagged_inputs=[{"feature": f"pixel r0c{i}", "z": 9.0 - i, "share": 0.2} for i in range(7)],
        event_counts={"loss_spike": 12}, recent_events=events, diverged=False)
    kwargs.update(overrides)
    return build_report(**kwargs)


def test_slope_of_a_line_is_its_step() -> None:
    assert slope([1.0, 3.0, 5.0, 7.0]) == pytest.approx(2.0, abs=1e-12)
    assert slope([4.0, 3.5, 3.0]) == pytest.approx(-0.5, abs=1e-12)
    assert slope([0.7] * 6) == 0.0
    assert slope([]) == 0.0 and slope([3.0]) == 0.0
    assert slope([1.0, float("nan"), 2.0]) == 0.0 and slope([1.0, float("inf")]) == 0.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=64), st.floats(-1e3, 1e3))
def test_slope_is_the_least_squares_fit(values: list[float], shift: float) -> None:
    expected = np.polyfit(np.arange(len(values)), np.asarray(values), 1)[0]
    assert slope(values) == pytest.approx(expected, rel=1e-6, abs=1e-6)
    assert slope([v + shift for v in values]) == pytest.approx(slope(values), rel=1e-6, abs=1e-6)


def test_history_slopes_use_the_gap_of_each_step() -> None:
    slopes = history_slopes(HISTORY)
    assert tuple(slopes) == SLOPE_KEYS
    gap = [v - t for v, t in zip(HISTORY["val_loss"], HISTORY["train_loss"])]
    assert slopes == {"val_loss": slope(HISTORY["val_loss"]), "val_acc": slope(HISTORY["val_acc"]),
                      "gap_loss": slope(gap)}
    assert slopes["gap_loss"] > 0 > slopes["val_loss"]  # overfitting: the gap grows while val loss falls


def test_built_report_survives_normalisation_unchanged() -> None:
    built = _report()
    normalized = normalize_report(built)
    assert normalize_report(normalized) == normalized  # idempotent
    for key in ("step", "horizon", "hparams", "bounds", "history", "gap", "slopes", "diverged"):
        assert normalized[key] == built[key], key
    assert normalized["task"] == {**built["task"], "env_id": ""}
    assert normalized["layers"] == built["layers"]
    assert normalized["flagged_neurons"] == built["flagged_neurons"]
    assert normalized["flagged_tokens"] == built["flagged_tokens"]
    assert normalized["flagged_inputs"] == built["flagged_inputs"]
    assert normalized["events"] == built["events"]


def test_report_lists_are_capped() -> None:
    built = _report()
    assert len(built["flagged_tokens"]) == report_module.MAX_FLAGGED_TOKENS
    assert len(built["flagged_inputs"]) == report_module.MAX_FLAGGED_INPUTS
    assert [e["step"] for e in built["events"]["recent"]] == list(range(12 - MAX_RECENT_EVENTS, 12))


def test_slopes_are_computed_once_and_only_when_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    built = _report()
    calls: list[int] = []
    real = report_module.slope
    monkeypatch.setattr(report_module, "slope", lambda values: calls.append(len(values)) or real(values))
    normalize_report(built)
    assert calls == []  # the builder's slopes are trusted, not recomputed
    without = copy.deepcopy(built)
    del without["slopes"]
    recomputed = normalize_report(without)
    assert len(calls) == len(SLOPE_KEYS)
    assert recomputed["slopes"] == pytest.approx(built["slopes"], abs=1e-6)


def test_non_finite_history_is_bounded_in_the_report() -> None:
    history = {**HISTORY, "val_loss": [*HISTORY["val_loss"][:-1], math.inf]}
    built = _report(history=history, slopes=history_slopes(history))
    assert built["history"]["val_loss"][-1] == 1e6
    assert all(math.isfinite(v) for v in built["slopes"].values())


def test_decision_events_come_from_the_enum() -> None:
    assert set(DECISION_EVENTS) == set(EVENT_TYPES) - {EventType.NEW_MISCLASSIFICATIONS}
    base = _report(recent_events=[], event_counts={})
    noise = {"step": 4, "type": "new_misclassifications", "layer": None, "neuron_ids": [], "values": {}}
    spike = {**noise, "type": "loss_spike"}
    assert report_hash(_report(recent_events=[noise], event_counts={"new_misclassifications": 1})) == \
        report_hash(base)
    assert report_hash(_report(recent_events=[spike], event_counts={"loss_spike": 1})) != report_hash(base)


def test_flagged_inputs_change_the_decision_key() -> None:
    base = _report(flagged_inputs=[])
    assert report_hash(_report()) != report_hash(base)
    low = _report(flagged_inputs=[{"feature": "pixel r0c1", "z": 1.0, "share": 0.2}])
    assert report_hash(low) == report_hash(base)  # below the shortcut threshold: not decision-relevant
