"""The doctor-default experiment: every arm runs on the same seeds, and its table has one row per arm."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow  # 12 short runs (HF Trainer and a plain loop)
def test_smoke_pairs_the_arms_and_tables_them(capsys: pytest.CaptureFixture[str]) -> None:
    from traingym.experiments.doctor_default import main

    assert main(["--smoke"]) == 0
    out = capsys.readouterr().out
    rows = [json.loads(line) for line in out.splitlines() if line.startswith('{"setting"')]
    assert [(r["setting"], r["start"], r["policy"]) for r in rows[:3]] == [
        ("trainer", "bad", "no doctor"), ("trainer", "bad", "advisor_greedy"),
        ("trainer", "bad", "pretrained:digits-mlp")]
    assert len(rows) == 12 and all(len(r["test_accuracy"]) == 1 for r in rows)
    assert out.count("| plain | healthy (0.05) |") == 3
