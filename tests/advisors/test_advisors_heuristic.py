"""The heuristic advisor's rules on scripted reports, canonical texts, and Diagnosis validation."""

from __future__ import annotations

import json

import pytest
from advisors_testkit import SCENARIOS, make_report
from traingym.advisors import Diagnosis, Finding, HeuristicAdvisor
from traingym.advisors.findings import parse_finding

F = Finding
EXPECTED: dict[str, tuple[tuple[Finding, ...], tuple[int, int, int, int]]] = {
    "healthy": ((F.HEALTHY,), (0, 0, 0, 0)),
    "diverging": ((F.DIVERGING,), (-1, 0, 0, 0)),
    "overfitting": ((F.OVERFITTING,), (0, 1, 1, 0)),
    "plateau": ((F.PLATEAU,), (1, 0, 0, 0)),
    "shortcut": ((F.SHORTCUT_TOKENS,), (0, 0, 1, 0)),
    "dead_units": ((F.DEAD_UNITS,), (-1, 0, 0, 1)),
    "noisy_labels": ((F.NOISY_LABELS,), (-1, 1, 0, 0)),
    "shortcut_features": ((F.SHORTCUT_FEATURES,), (0, 0, 1, 0)),
    "memorised": ((F.OVERFITTING,), (0, 1, 1, 0)),
    "underfitting": ((F.UNDERFITTING,), (0, -1, -1, 0)),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_rules_on_scripted_reports(name: str) -> None:
    diagnosis = HeuristicAdvisor().diagnose(SCENARIOS[name])
    assert (diagnosis.findings, diagnosis.suggested_move) == EXPECTED[name]
    assert diagnosis.text.startswith(diagnosis.findings[0].value.replace("_", " "))
    assert 0.0 <= diagnosis.confidence <= 1.0


def test_canonical_texts() -> None:
    advisor = HeuristicAdvisor()
    assert advisor.diagnose(SCENARIOS["overfitting"]).text == (
        "overfitting: generalisation gap 0.2-0.3 and growing; suggest more weight decay and more augmentation.")
    assert advisor.diagnose(SCENARIOS["diverging"]).text == (
        "diverging: loss spike in the last step; suggest a lower learning rate.")
    assert advisor.diagnose(SCENARIOS["shortcut"]).text.startswith(
        'shortcut tokens: "zqx" carry outlying relevance (z 5-6)')
    assert advisor.diagnose(SCENARIOS["shortcut_features"]).text.startswith(
        'shortcut features: "pixel r0c3", "pixel r7c1" carry outlying relevance on the errors (z 9-10)')
    assert advisor.diagnose(SCENARIOS["memorised"]).text.startswith(
        "overfitting: training set memorised")


def test_a_shortcut_explains_the_gap_and_noisy_labels_explain_low_train_accuracy() -> None:
    advisor = HeuristicAdvisor()
    no_shortcut = make_report(**{**SCENARIOS["shortcut_features"], "flagged_inputs": []})
    assert advisor.diagnose(no_shortcut).findings == (F.OVERFITTING,)  # without the flag it is plain overfitting
    low_train = make_report(step=6, history={"train_loss": [1.6, 1.5, 1.4], "val_loss": [1.0, 0.9, 0.8],
                                             "train_acc": [0.5, 0.52, 0.55], "val_acc": [0.8, 0.85, 0.88]},
                            gap={"loss": -0.6, "acc": -0.33}, slopes={"val_loss": -0.1, "val_acc": 0.04,
                                                                      "gap_loss": 0.0})
    assert advisor.diagnose(low_train).findings == (F.NOISY_LABELS,)  # not underfitting
    augmented = make_report(**{**low_train, "hparams": {"lr": 0.1, "weight_decay": 1e-4, "aug_level": 2}})
    assert F.NOISY_LABELS not in advisor.diagnose(augmented).findings  # augmentation can explain it


def test_identical_situations_give_identical_text() -> None:
    advisor = HeuristicAdvisor()
    a = SCENARIOS["overfitting"]
    b = json.loads(json.dumps(a))
    b["gap"] = {"loss": 0.61, "acc": 0.27}  # same bucket (0.2-0.3), still growing
    b["step"] = 9
    assert advisor.diagnose(a) == advisor.diagnose(b)
    c = json.loads(json.dumps(a))
    c["gap"]["acc"] = 0.31
    assert advisor.diagnose(c).text != advisor.diagnose(a).text  # the bucket is part of the text


def test_divergence_signals() -> None:
    advisor = HeuristicAdvisor()
    assert advisor.diagnose(make_report(diverged=True)).findings == (F.DIVERGING,)
    nan_loss = make_report(history={"train_loss": [1.0, float("nan")], "val_loss": [1.0, 1e6],
                                    "train_acc": [0.5, 0.1], "val_acc": [0.5, 0.1]})
    assert advisor.diagnose(nan_loss).findings == (F.DIVERGING,)
    big_grad = make_report(layers=[{"name": "fc1", "grad_norm": 1e3}])
    assert F.DIVERGING in advisor.diagnose(big_grad).findings
    rising = make_report(history={"train_loss": [1.0, 0.4, 0.5, 1.3], "val_loss": [1.0, 0.5, 0.6, 1.4],
                                  "train_acc": [0.6, 0.8, 0.8, 0.7], "val_acc": [0.6, 0.8, 0.8, 0.7]})
    verdict = advisor.diagnose(rising)
    assert F.DIVERGING in verdict.findings and "2-4x its minimum" in verdict.text  # 3.25x
    # an old spike (more than one step ago) is no longer evidence
    old = make_report(events={"counts": {"loss_spike": 1}, "recent": [{"step": 1, "type": "loss_spike"}]})
    assert advisor.diagnose(old).findings == (F.HEALTHY,)


def test_moves_respect_bounds_and_priorities() -> None:
    at_floor = json.loads(json.dumps(SCENARIOS["diverging"]))
    at_floor["hparams"]["lr"] = 1e-5
    diagnosis = HeuristicAdvisor().diagnose(at_floor)
    assert diagnosis.findings == (F.DIVERGING,) and diagnosis.suggested_move == (0, 0, 0, 0)
    assert "bounds" in diagnosis.text
    both = make_report(**{k: v for k, v in SCENARIOS["overfitting"].items() if k != "layers"},
                       layers=[{"name": "fc1", "dead_fraction": 0.8}])
    diagnosis = HeuristicAdvisor().diagnose(both)
    assert diagnosis.findings == (F.OVERFITTING, F.DEAD_UNITS)
    assert diagnosis.suggested_move == (-1, 1, 1, 1)
    saturated = make_report(layers=[{"name": "fc1", "saturation": 0.9}])
    assert HeuristicAdvisor().diagnose(saturated).suggested_move == (-1, 0, 0, -1)


def test_heuristic_tolerates_empty_and_partial_reports() -> None:
    for report in ({}, {"history": {"val_acc": [0.5]}}, {"layers": "none", "flagged_tokens": [{"z": "high"}]}):
        diagnosis = HeuristicAdvisor().diagnose(report)
        assert diagnosis.findings == (F.HEALTHY,)


def test_diagnosis_validation() -> None:
    ok = Diagnosis(["plateau", F.OVERFITTING, "plateau"], 0.5, (1, 0, 0, 0), "x")  # type: ignore[arg-type]
    assert ok.findings == (F.OVERFITTING, F.PLATEAU)  # canonical order, no duplicates
    assert ok.as_dict() == {"findings": ["overfitting", "plateau"], "confidence": 0.5,
                            "suggested_move": [1, 0, 0, 0], "text": "x"}
    bad = [
        dict(findings=(), confidence=0.5), dict(findings=("healthy", "plateau"), confidence=0.5),
        dict(findings=("bogus",), confidence=0.5), dict(findings="plateau", confidence=0.5),
        dict(findings=(F.PLATEAU,), confidence=1.5), dict(findings=(F.PLATEAU,), confidence=float("nan")),
        dict(findings=(F.PLATEAU,), confidence=True), dict(findings=(F.PLATEAU,), confidence=0.5,
                                                            suggested_move=(2, 0, 0, 0)),
        dict(findings=(F.PLATEAU,), confidence=0.5, suggested_move=(0, 0, 0)),
        dict(findings=(F.PLATEAU,), confidence=0.5, suggested_move=(0.5, 0, 0, 0)),
        dict(findings=(F.PLATEAU,), confidence=0.5, text="two\nlines"),
        dict(findings=(F.PLATEAU,), confidence=0.5, text="x" * 1000),
    ]
    for kwargs in bad:
        with pytest.raises(ValueError):
            Diagnosis(**kwargs)  # type: ignore[arg-type]


def test_finding_names_and_aliases() -> None:
    assert parse_finding("lr_too_high") is F.DIVERGING
    assert parse_finding("LR too low") is F.PLATEAU
    assert parse_finding(" Dead-Units ") is F.DEAD_UNITS
    with pytest.raises(ValueError, match="allowed"):
        parse_finding("gradient_vanishing")
    assert len(Finding) == 9 and all(isinstance(f.value, str) for f in Finding)
