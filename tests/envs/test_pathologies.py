"""The pathology mixture: planted problems, their validation, and that the neuron log finds the planted shortcut."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
import traingym.envs  # noqa: F401
from traingym.envs.tasks.digits import DigitsMLP
from traingym.envs.tasks.pathologies import (
    PATHOLOGIES,
    SPURIOUS_VALUE,
    DigitsPathologies,
    outer_ring,
    spurious_pixels,
)

ENV_ID = "TrainGym/DigitsPathologies-v0"


def _instance(pathology: str, strength: float, split_seed: int = 3) -> dict:
    return {"family": "digits_pathologies", "split_seed": split_seed, "depth": 1, "width": 64, "lr": 0.1,
            "weight_decay": 1e-3, "aug_level": 0, "label_noise": 0.0, "pathology": pathology,
            "strength": strength}


def test_instance_sets_mix_every_pathology_with_ground_truth() -> None:
    family = DigitsPathologies()
    instances = family.instance_set("test", "sgd")
    assert {x["pathology"] for x in instances} == set(PATHOLOGIES)
    assert all(x["strength"] == 0.0 for x in instances if x["pathology"] == "clean")
    assert all(0.5 <= x["strength"] <= 1.0 for x in instances if x["pathology"] != "clean")
    assert all(x["lr"] >= 0.5 for x in instances if x["pathology"] == "dying_relu")
    assert all(x["label_noise"] > 0 for x in instances if x["pathology"] == "label_noise")


@pytest.mark.parametrize(("field", "value", "message"), [
    ("pathology", "cosmic_rays", "instance['pathology'] must be one of"),
    ("strength", 1.5, "instance['strength'] must be a number in [0, 1]"),
    ("strength", -0.1, "instance['strength'] must be a number in [0, 1]"),
    ("strength", "high", "instance['strength'] must be a number in [0, 1]"),
])
def test_bad_pathology_or_strength_is_one_clear_error(field: str, value: object, message: str) -> None:
    env = gym.make(ENV_ID, obs_keys=["training_stats"])
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        env.reset(seed=0, options={"instance": {**_instance("spurious", 0.8), field: value}})
    env.close()


def test_clean_instance_trains_on_the_base_family_split() -> None:
    clean = DigitsPathologies().split(_instance("clean", 0.0), 512)
    base = DigitsMLP().split(_instance("clean", 0.0), 512)
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert torch.equal(getattr(clean, name), getattr(base, name))


def test_spurious_pixels_code_the_label_in_training_only() -> None:
    instance = _instance("spurious", 1.0)
    split = DigitsPathologies().split(instance, 512)
    pixels = torch.from_numpy(spurious_pixels(3, 10, (1, 8, 8)))
    assert set(pixels.reshape(-1).tolist()) <= set(outer_ring((1, 8, 8)).tolist())
    def own_code_lit(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        lit = x[:, pixels.reshape(-1)].reshape(-1, 10, 2).eq(SPURIOUS_VALUE).all(2)  # (N, class)
        return lit[torch.arange(len(y)), y]

    assert own_code_lit(split.x_train, split.y_train).all()  # strength 1: every training image carries its code
    assert own_code_lit(split.x_val, split.y_val).float().mean() < 0.3  # validation: a random class's code


def test_small_data_keeps_a_fraction_of_the_training_split() -> None:
    full = DigitsPathologies().split(_instance("clean", 0.0), 512).x_train.shape[0]
    small = DigitsPathologies().split(_instance("small_data", 1.0), 512).x_train.shape[0]
    assert small == max(40, round(0.1 * full)) and small < full


def test_report_names_the_base_family_not_the_pathology() -> None:
    env = gym.make(ENV_ID, obs_keys=["training_stats"])
    env.reset(seed=0)
    report = env.unwrapped.report()
    assert report["task"]["family"] == "digits_mlp"
    assert "spurious" not in str(report["task"]) and "pathology" not in str(report)
    env.close()


def _first_flag(env: gym.Env, index: int) -> tuple[int | None, dict]:
    """Run the keep policy on held-out instance ``index``; the first flagged input feature (None if none)."""
    _, info = env.reset(seed=index, options={"instance_index": index})
    keep = np.ones(4, dtype=np.int64)
    for _ in range(20):
        env.step(keep)
        flagged = env.unwrapped._monitor.inputs.flagged_ids
        if flagged:
            return flagged[0], info["instance"]
    return None, info["instance"]


@pytest.mark.slow
def test_neuron_log_flags_the_planted_pattern_first_on_held_out_instances() -> None:
    """Issue 24's bar: the planted pattern is flagged first in >= 8 of 10 held-out shortcut instances and a
    feature is flagged in <= 1 of 10 clean ones."""
    env = gym.make(ENV_ID, obs_keys=["training_stats", "neurons"], instance_set="test")
    instances = env.unwrapped.instances
    spurious = [i for i, x in enumerate(instances) if x["pathology"] == "spurious"][:10]
    clean = [i for i, x in enumerate(instances) if x["pathology"] == "clean"][:10]
    hits = 0
    for i in spurious:
        first, instance = _first_flag(env, i)
        planted = set(spurious_pixels(instance["split_seed"], 10, (1, 8, 8)).reshape(-1).tolist())
        hits += first is not None and first in planted
    false_alarms = sum(_first_flag(env, i)[0] is not None for i in clean)
    env.close()
    assert hits >= 8, f"planted pattern flagged first in {hits} of 10 shortcut instances"
    assert false_alarms <= 1, f"a feature flagged in {false_alarms} of 10 clean instances"
