"""Baselines: the SB3 predict interface, per-episode state and the moves each one makes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from traingym.agents.baselines import (
    BASELINES,
    AdvisorGreedyPolicy,
    GoodDefaultsPolicy,
    KeepPolicy,
    PlateauPolicy,
    RandomPolicy,
    SteerPolicy,
    StepDecayPolicy,
    make_baseline,
)
from traingym.protocol.moves import action_to_move

OBS = {"training_stats": np.zeros(22, dtype=np.float32)}


def _info(step: int, val: float = 0.5, train: float = 0.5, **extra: Any) -> dict[str, Any]:
    return {"step": step, "val_accuracy": val, "train_accuracy": train, **extra}


def _moves(policy: Any, infos: list[dict[str, Any]]) -> list[tuple[int, ...]]:
    moves = []
    for t, info in enumerate(infos):
        policy.observe_info(info)
        action, state = policy.predict(OBS, None, np.array([t == 0]))
        assert state is None
        moves.append(action_to_move(action))
    return moves


def test_keep_has_the_sb3_predict_interface() -> None:
    action, state = KeepPolicy().predict(OBS, state=None, episode_start=np.array([True]), deterministic=True)
    assert action.tolist() == [1, 1, 1, 1] and state is None


def test_random_is_reseeded_per_episode() -> None:
    policy = RandomPolicy(seed=7)
    runs = []
    for episode_seed in (3, 4, 3):
        policy.begin_episode(episode_seed)
        runs.append([tuple(policy.predict(OBS)[0]) for _ in range(10)])
    assert runs[0] == runs[2] != runs[1]
    assert {a for run in runs for action in run for a in action} == {0, 1, 2}


def test_step_decay_halves_the_lr_at_the_milestones_each_episode() -> None:
    policy = StepDecayPolicy(horizon=20)
    for _ in range(2):  # the step counter restarts with every episode
        moves = [action_to_move(policy.predict(OBS, None, np.array([t == 0]))[0]) for t in range(20)]
        assert [t for t, m in enumerate(moves) if m != (0, 0, 0, 0)] == [9, 14]
        assert moves[9] == (-1, 0, 0, 0)


def test_plateau_halves_the_lr_after_patience_steps_without_improvement() -> None:
    policy = PlateauPolicy(patience=3, cooldown=1)
    improving = [_info(t, val=0.1 * t) for t in range(6)]
    assert all(m[0] == 0 for m in _moves(policy, improving))
    flat = [_info(0, val=0.3)] + [_info(t, val=0.3) for t in range(1, 8)]
    lr = [m[0] for m in _moves(policy, flat)]
    assert lr[:3] == [0, 0, 0] and lr[3] == -1 and lr[4] == 0  # 3 stalled steps, then cooldown


def test_plateau_raises_weight_decay_when_the_gap_grows() -> None:
    infos = [_info(t, val=0.5 + 0.01 * t, train=0.5 + 0.05 * t) for t in range(6)]
    wd = [m[1] for m in _moves(PlateauPolicy(), infos)]
    assert wd[:2] == [0, 0] and wd[-1] == 1


def test_advisor_greedy_applies_the_suggested_move() -> None:
    policy = AdvisorGreedyPolicy()
    moves = _moves(policy, [_info(0, advisor={"suggested_move": [1, -1, 0, 1]}), _info(1)])
    assert moves == [(1, -1, 0, 1), (0, 0, 0, 0)]  # no suggestion in info: keep
    assert "diagnosis" in policy.env_overrides["obs_keys"]


def test_good_defaults_overrides_only_the_hyperparameters() -> None:
    policy = GoodDefaultsPolicy(lr=0.1, weight_decay=1e-4, aug_level=1)
    instance = {"split_seed": 5, "depth": 2, "width": 64, "lr": 1e-4, "weight_decay": 1e-2, "aug_level": 4}
    assert policy.override_instance(instance) == {**instance, "lr": 0.1, "weight_decay": 1e-4, "aug_level": 1}
    assert action_to_move(policy.predict(OBS)[0]) == (0, 0, 0, 0)


@pytest.mark.parametrize("name", sorted(set(BASELINES) - {"good_defaults"}))
def test_every_baseline_returns_valid_actions(name: str) -> None:
    policy = make_baseline(name, "TrainGym/DigitsMLP-v0", seed=0, horizon=5)
    policy.observe_info(_info(0, lr=0.01, weight_decay=1e-4, aug_level=1))
    action, _ = policy.predict(OBS, None, np.array([True]))
    assert action.shape == (4,) and set(action.tolist()) <= {0, 1, 2}


def test_unknown_baseline_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown baseline 'nope'"):
        make_baseline("nope", "TrainGym/DigitsMLP-v0")


def test_steer_moves_each_knob_toward_its_target_by_the_env_steps() -> None:
    policy = SteerPolicy(lr=0.1, weight_decay=1e-3, aug_level=0)
    moves = _moves(policy, [_info(0, lr=1e-3, weight_decay=1e-5, aug_level=2),
                            _info(1, lr=0.5, weight_decay=0.01, aug_level=0),
                            _info(2, lr=0.12, weight_decay=1.5e-3, aug_level=0)])
    assert moves == [(1, 1, -1, 0), (-1, -1, 0, 0), (0, 0, 0, 0)]  # within half a step: keep


def test_steer_reaches_the_targets_in_the_env_and_never_reads_hidden_state() -> None:
    import gymnasium as gym

    env = gym.make("TrainGym/DigitsMLP-v0", steps_per_action=1, horizon=12, max_episode_steps=12,
                   obs_keys=("training_stats",))
    policy = make_baseline("steer", "TrainGym/DigitsMLP-v0", horizon=12)
    instance = {**env.unwrapped.instances[0], "lr": 1e-3, "weight_decay": 0.05, "aug_level": 3}
    obs, info = env.reset(seed=0, options={"instance": instance})
    done, t = False, 0
    while not done:
        policy.observe_info(info)
        action, _ = policy.predict(obs, None, np.array([t == 0]))
        obs, _, terminated, truncated, info = env.step(action)
        done, t = terminated or truncated, t + 1
    env.close()
    target = policy.target
    assert abs(np.log2(info["lr"] / target["lr"])) <= 0.5  # 1e-3 -> 0.128 after 7 doublings, then kept
    assert abs(np.log(info["weight_decay"] / target["weight_decay"]) / np.log(3)) <= 0.5
    assert info["aug_level"] == target["aug_level"]
    with pytest.raises(ValueError, match="needs the env's info"):
        SteerPolicy(0.1, 1e-3, 0).predict(OBS)
