"""The diagnosis-aware hand controller: findings move steer's targets; it beats blind steer where they matter."""

from __future__ import annotations

import numpy as np
import pytest
from traingym.advisors.findings import Finding
from traingym.agents.baselines import (
    DiagnosisAwareDefaultsPolicy,
    DiagnosisAwarePolicy,
    Response,
    SteerPolicy,
    make_baseline,
)
from traingym.agents.episodes import EpisodeSettings, run_policy_object

OBS: dict[str, np.ndarray] = {}


def _info(step: int, findings: list[str], lr: float = 0.1, wd: float = 1e-3, aug: int = 0) -> dict:
    return {"step": step, "lr": lr, "weight_decay": wd, "aug_level": aug,
            "advisor": {"findings": findings, "suggested_move": [0, 0, 0, 0]}}


def test_without_findings_it_is_steer() -> None:
    aware, steer = DiagnosisAwarePolicy(0.1, 1e-3, 0), SteerPolicy(0.1, 1e-3, 0)
    for step, (lr, wd) in enumerate([(1.0, 1e-5), (0.5, 3e-5), (0.1, 1e-3)]):
        for policy in (aware, steer):
            policy.observe_info(_info(step, ["healthy"], lr, wd))
        assert aware.move(OBS) == steer.move(OBS)


def test_a_finding_moves_the_targets_for_the_rest_of_the_episode() -> None:
    policy = DiagnosisAwarePolicy(0.1, 1e-3, 0)
    policy.observe_info(_info(0, ["healthy"]))
    assert policy.move(OBS) == (0, 0, 0, 0)
    policy.observe_info(_info(1, ["noisy_labels"]))
    assert policy.move(OBS)[0] == -1  # lr target x0.1: lower the LR
    policy.observe_info(_info(2, ["healthy"], lr=0.05))
    assert policy.move(OBS)[0] == -1  # the remedy is kept after the symptom fades
    policy.observe_info(_info(3, ["shortcut_features"], lr=0.01))
    assert policy.move(OBS) == (0, 0, 1, 0)  # augmentation up to 1: the flagged inputs get decorrelated
    policy.observe_info(_info(0, ["healthy"], lr=0.01, aug=1))  # a new episode forgets the findings
    assert policy.move(OBS) == (1, 0, -1, 0)


def test_neuron_scaling_follows_the_current_findings_only() -> None:
    policy = DiagnosisAwarePolicy(0.1, 1e-3, 0, {Finding.DEAD_UNITS: Response(neuron_scale=1)})
    policy.observe_info(_info(1, ["dead_units"]))
    assert policy.move(OBS)[3] == 1
    policy.observe_info(_info(2, ["healthy"]))
    assert policy.move(OBS)[3] == 0


def test_the_defaults_twin_starts_from_its_base_targets_and_only_it() -> None:
    instance = {"split_seed": 1, "lr": 0.9, "weight_decay": 1e-6, "aug_level": 3}
    assert DiagnosisAwareDefaultsPolicy(0.1, 1e-3, 0).override_instance(instance) == {
        "split_seed": 1, "lr": 0.1, "weight_decay": 1e-3, "aug_level": 0}
    assert not hasattr(DiagnosisAwarePolicy(0.1, 1e-3, 0), "override_instance")  # steer's start: the instance's


@pytest.mark.parametrize(("field", "value"), [("lr", 0.0), ("weight_decay", -1.0), ("aug_level", 5),
                                              ("neuron_scale", 2)])
def test_bad_response_is_one_clear_error(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"Response.{field} must"):
        Response(**{field: value})


@pytest.mark.slow
def test_diagnosis_aware_beats_steer_on_a_fixed_set_of_shortcut_runs() -> None:
    """On the first 8 held-out spurious-pixel instances of the mixture (where only the neuron log says which inputs
    to decorrelate), reading the heuristic advisor's findings beats steering blind, paired instance by instance."""
    import traingym.envs  # noqa: F401
    from traingym.envs.tasks.pathologies import DigitsPathologies

    env_id = "TrainGym/DigitsPathologies-v0"
    instances = DigitsPathologies().instance_set("test", "sgd")
    chosen = tuple([k for k, x in enumerate(instances) if x["pathology"] == "spurious"][:8])
    settings = EpisodeSettings(env_id, 20, 50, chosen, instance_set="test", advisor="heuristic")
    accuracy = {}
    for name in ("steer", "diagnosis_aware"):
        episodes = run_policy_object(make_baseline(name, env_id), name, settings)
        accuracy[name] = np.array([e.test_accuracy for e in episodes])
    difference = accuracy["diagnosis_aware"] - accuracy["steer"]
    assert difference.mean() > 0.02 and (difference > 0).sum() >= 6, difference
