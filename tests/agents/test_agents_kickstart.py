"""--kickstart: the controller's demonstrations, the fit of the agent to them, the budget they use."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.vec_env import DummyVecEnv
from traingym.agents.args import Args
from traingym.agents.env_factory import env_factory
from traingym.agents.kickstart import (
    DemonstrationLoss,
    Demonstrations,
    collect_demonstrations,
    fit_policy,
    imitation_loss,
    returns_to_go,
)
from traingym.agents.train import train
from traingym.protocol.moves import KNOBS
from traingym.protocol.run_files import DEMONSTRATIONS_FILE, KICKSTART_FILE

PATHOLOGIES = "TrainGym/DigitsPathologies-v0"
TINY = {"total_timesteps": 64, "n_envs": 1, "horizon": 3, "steps_per_action": 5, "n_steps": 8, "eval_freq": 0,
        "checkpoint_freq": 0, "baselines": (), "progress_bar": False, "tensorboard": False}


def test_returns_to_go_stop_at_episode_boundaries() -> None:
    rewards = np.array([1.0, 2.0, 3.0, 10.0, 20.0], dtype=np.float32)
    starts = np.array([True, False, False, True, False])
    assert returns_to_go(rewards, starts, 1.0).tolist() == [6.0, 5.0, 3.0, 30.0, 20.0]
    assert returns_to_go(rewards, starts, 0.5).tolist() == [1 + 0.5 * (2 + 0.5 * 3), 2 + 1.5, 3.0, 20.0, 20.0]


def test_demonstrations_hold_only_the_agents_keys_while_the_controller_reads_the_findings() -> None:
    kwargs = {"steps_per_action": 5, "obs_keys": ("training_stats",)}
    demos = collect_demonstrations("diagnosis_aware", PATHOLOGIES, kwargs, ("training_stats",), KNOBS,
                                   episodes=2, horizon=3, seed=0)
    assert set(demos.observations) == {"training_stats"}
    assert demos.steps == 6 and demos.actions.shape == (6, len(KNOBS))
    assert demos.episode_starts.tolist() == [True, False, False] * 2
    again = collect_demonstrations("diagnosis_aware", PATHOLOGIES, kwargs, ("training_stats",), KNOBS,
                                   episodes=2, horizon=3, seed=0)
    assert np.array_equal(demos.actions, again.actions)
    assert np.array_equal(demos.observations["training_stats"], again.observations["training_stats"])


def test_demonstrations_keep_only_the_agents_knobs() -> None:
    kwargs = {"steps_per_action": 5, "obs_keys": ("training_stats",)}
    demos = collect_demonstrations("steer", "TrainGym/DigitsMLP-v0", kwargs, ("training_stats",),
                                   ("lr", "aug_level"), episodes=1, horizon=3, seed=1)
    assert demos.actions.shape == (3, 2) and set(demos.actions.reshape(-1).tolist()) <= {0, 1, 2}


def test_with_a_driver_the_agent_acts_and_the_controller_only_labels() -> None:
    kwargs = {"steps_per_action": 5, "obs_keys": ("training_stats",)}
    common = ("keep", "TrainGym/DigitsMLP-v0", kwargs, ("training_stats",), KNOBS)
    own = collect_demonstrations(*common, episodes=1, horizon=3, seed=0)
    driven = collect_demonstrations(*common, episodes=1, horizon=3, seed=0,
                                    driver=lambda observation: np.array([0, 1, 1, 1]))  # halve the LR every step
    assert (driven.actions == 1).all()  # keep's labels, whoever acts
    first, later = own.observations["training_stats"], driven.observations["training_stats"]
    assert np.array_equal(first[0], later[0]) and not np.array_equal(first[1:], later[1:])


def _model_and_demonstrations() -> tuple[PPO, DummyVecEnv, Demonstrations]:
    """A fresh PPO agent and 64 demonstrated steps whose move depends on the observation (a fit has to read it)."""
    venv = DummyVecEnv([env_factory("TrainGym/DigitsMLP-v0", 3, {"steps_per_action": 2,
                                                                   "obs_keys": ("training_stats",)})])
    model = PPO("MultiInputPolicy", venv, n_steps=8, batch_size=8, seed=0)
    rng = np.random.default_rng(0)
    observations = {"training_stats": rng.normal(size=(64, venv.observation_space["training_stats"].shape[0]))
                    .astype(np.float32)}
    actions = np.where(observations["training_stats"][:, :1] > 0, [[0, 1, 2, 1]], [[2, 1, 0, 1]])
    return model, venv, Demonstrations(observations, actions, np.zeros(64, np.float32), np.arange(64) % 4 == 0)


def test_fit_policy_makes_the_demonstrated_action_the_most_likely_one() -> None:
    model, venv, demos = _model_and_demonstrations()
    observations, actions = demos.observations, demos.actions
    before = fit_policy(model, observations, actions, np.zeros(64, dtype=np.float32), epochs=0)
    after = fit_policy(model, observations, actions, np.zeros(64, dtype=np.float32), epochs=60)
    venv.close()
    assert before < 0.5 and after >= 0.95


def _demonstration_nll(model: PPO, demos: Demonstrations) -> float:
    observations, _ = model.policy.obs_to_tensor(demos.observations)
    with torch.no_grad():
        return float(imitation_loss(model.policy, observations, torch.as_tensor(demos.actions))[0])


def test_demonstration_loss_pulls_the_policy_towards_the_demonstrations_with_a_decaying_weight() -> None:
    model, venv, demos = _model_and_demonstrations()
    model.set_logger(Logger(folder=None, output_formats=[]))
    callback = DemonstrationLoss(demos, None, coef=1.0, total_timesteps=64 + 100, batch_size=8)
    callback.init_callback(model)
    before = _demonstration_nll(model, demos)
    model.num_timesteps = 64  # the first rollout after the demonstrations: no update yet, nothing to pull back
    callback.on_rollout_start()
    assert callback.passes == 0 and _demonstration_nll(model, demos) == before
    model.num_timesteps = 64 + 50
    for _ in range(10):
        callback.on_rollout_start()
    venv.close()
    assert callback.passes == 10 and _demonstration_nll(model, demos) < before - 0.1
    assert callback.weight(64) == 1.0 and callback.weight(64 + 50) == 0.5 and callback.weight(64 + 100) == 0.0


def test_demonstrations_survive_a_save_and_load(tmp_path: Path) -> None:
    _, venv, demos = _model_and_demonstrations()
    venv.close()
    demos.save(tmp_path / "d.npz")
    loaded = Demonstrations.load(tmp_path / "d.npz")
    assert set(loaded.observations) == set(demos.observations)
    for key in demos.observations:
        assert np.array_equal(loaded.observations[key], demos.observations[key])
    for name in ("actions", "rewards", "episode_starts"):
        assert np.array_equal(getattr(loaded, name), getattr(demos, name))


def test_demo_coef_changes_what_a_kickstarted_run_learns(tmp_path: Path) -> None:
    def parameters(coef: float) -> list[torch.Tensor]:
        run = tmp_path / f"coef{coef}"
        train(Args(run_dir=str(run), env=PATHOLOGIES, kickstart="diagnosis_aware", kickstart_episodes=2,
                   kickstart_epochs=2, demo_coef=coef, **TINY))
        assert (run / DEMONSTRATIONS_FILE).exists()
        return [p.detach().clone() for p in PPO.load(run / "model.zip").policy.parameters()]

    without, with_term = parameters(0.0), parameters(1.0)
    assert any(not torch.equal(a, b) for a, b in zip(without, with_term))


def test_kickstarted_run_counts_the_demonstrations_in_its_budget(tmp_path: Path) -> None:
    result = train(Args(run_dir=str(tmp_path / "run"), env=PATHOLOGIES, kickstart="diagnosis_aware",
                        kickstart_episodes=2, kickstart_epochs=2, **TINY))
    record = json.loads((tmp_path / "run" / KICKSTART_FILE).read_text())
    assert record["controller"] == "diagnosis_aware" and record["env_steps"] == 6
    assert 64 <= result.num_timesteps < 64 + 8  # 6 demonstration steps + PPO rollouts of 8 up to the budget
    assert 0.0 <= record["action_accuracy"] <= 1.0


def test_the_training_time_includes_the_kickstart(tmp_path: Path) -> None:
    import time

    start = time.perf_counter()  # all of the budget in demonstrations: no RL update after them
    result = train(Args(run_dir=str(tmp_path / "run"), env=PATHOLOGIES, kickstart="diagnosis_aware",
                        kickstart_episodes=3, kickstart_epochs=2, **{**TINY, "total_timesteps": 9}))
    assert result.num_timesteps == 9
    assert result.train_seconds > 0.5 * (time.perf_counter() - start)


def test_dagger_rounds_split_the_episodes_and_count_every_step(tmp_path: Path) -> None:
    result = train(Args(run_dir=str(tmp_path / "run"), env=PATHOLOGIES, kickstart="diagnosis_aware",
                        kickstart_episodes=3, kickstart_rounds=2, kickstart_epochs=2, **TINY))
    record = json.loads((tmp_path / "run" / KICKSTART_FILE).read_text())
    assert record["rounds"] == 2 and record["env_steps"] == 9 and result.num_timesteps >= 64


@pytest.mark.parametrize(("overrides", "message"), [
    ({"kickstart": "oracle"}, "--kickstart must be a baseline name"),
    ({"kickstart": "steer", "algo": "dqn"}, "--kickstart needs --algo ppo or a2c"),
    ({"kickstart": "steer", "kickstart_episodes": 1000}, "--kickstart-episodes"),
    ({"kickstart": "steer", "kickstart_episodes": 4, "kickstart_rounds": 5}, "--kickstart-rounds"),
    ({"demo_coef": 1.0}, "--demo-coef .* needs --kickstart"),
    ({"kickstart": "steer", "demo_coef": -1.0}, "--demo-coef"),
])
def test_bad_kickstart_arguments_are_one_clear_message(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Args(**overrides)
