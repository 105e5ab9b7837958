"""The env's side of the contract: one slope computation per step, accounting kept apart from the info."""

from __future__ import annotations

import numpy as np
import pytest
from traingym.advisors.channel import ACCOUNTING_KEYS
from traingym.envs import TrainingEnv
from traingym.envs.training_env import TRAINING_FIELDS
from traingym.protocol import SLOPE_KEYS
from traingym.protocol import report as report_module

FAST = {"steps_per_action": 3, "val_size": 64, "encoder": "hashing", "diagnosis_dim": 16,
        "advisor_call": "every_step"}


def test_each_step_computes_the_slopes_once_for_observation_and_report(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = report_module.slope
    monkeypatch.setattr(report_module, "slope", lambda values: calls.append(len(values)) or real(values))
    env = TrainingEnv(task="digits_mlp", **FAST)
    env.reset(seed=0)
    for _ in range(3):
        calls.clear()
        obs, *_ = env.step(np.array([2, 1, 1, 1]))
        assert len(calls) == len(SLOPE_KEYS)  # training_stats, report and the advisor's normalisation share them
        report = env.report()
        stats = dict(zip(TRAINING_FIELDS, obs["training_stats"].tolist()))
        for key in SLOPE_KEYS:
            assert stats[f"slope_{key}"] == pytest.approx(report["slopes"][key], abs=1e-5)
    assert any(report["slopes"][k] != 0.0 for k in SLOPE_KEYS)
    env.close()


@pytest.mark.parametrize("accounting", [False, True])
def test_advisor_accounting_is_returned_apart_from_the_reproducible_info(accounting: bool) -> None:
    env = TrainingEnv(task="digits_mlp", advisor_accounting=accounting, **FAST)
    _, info = env.reset(seed=0)
    _, _, _, _, step_info = env.step(np.array([1, 1, 1, 1]))
    for advisor in (info["advisor"], step_info["advisor"]):
        assert {"used", "findings", "called", "report_hash"} <= set(advisor)
        assert (set(ACCOUNTING_KEYS) <= set(advisor)) is accounting
        assert accounting or not set(ACCOUNTING_KEYS) & set(advisor)
    assert set(env.advisor_accounting) == set(ACCOUNTING_KEYS)
    assert env.advisor_accounting["calls"] == 2  # every_step: reset and one step
    env.close()
