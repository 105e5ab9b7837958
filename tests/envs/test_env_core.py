"""Core behaviour of every registered TrainingEnv: API conformance, seeding, divergence, errors."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
from envs_testkit import rollout, same_trace
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from traingym.envs import ENV_TASKS, DiscreteActionWrapper, TrainingEnv
from traingym.envs.tasks.registry import make_task

FAST = {"steps_per_action": 5, "val_size": 128}

ENV_IDS = sorted(ENV_TASKS)
CORE_KEYS = ["training_stats", "neurons"]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env_gymnasium_and_sb3(env_id: str) -> None:
    env = gym.make(env_id, **FAST)  # default: all three keys, heuristic advisor, MiniLM encoder
    assert set(env.observation_space.spaces) == {"training_stats", "neurons", "diagnosis"}
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env, warn=True)
    env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_spec_is_json(env_id: str) -> None:
    spec = gym.spec(env_id)
    assert '"task"' in spec.to_json()
    assert spec.max_episode_steps == 20


@pytest.mark.parametrize("env_id", ["TrainGym/DigitsMLP-v0", "TrainGym/DigitsCNN-v0"])
def test_same_seed_same_episode_different_seed_differs(env_id: str) -> None:
    rng = np.random.default_rng(0)
    actions = [rng.integers(0, 3, size=4) for _ in range(20)]
    env = gym.make(env_id, **FAST)  # all keys, heuristic advisor
    first, second = rollout(env, 7, actions), rollout(env, 7, actions)
    assert len(first) == 21  # a full episode: reset + 20 steps (truncation)
    assert same_trace(first, second)
    other = rollout(env, 8, actions)
    assert not same_trace(first, other)
    env.close()


def test_episode_info_and_reward_telescopes() -> None:
    env = gym.make("TrainGym/DigitsMLP-v0", obs_keys=CORE_KEYS, **FAST)
    obs, info = env.reset(seed=3)
    assert set(info["instance"]) >= {"split_seed", "lr", "weight_decay", "aug_level", "label_noise"}
    total = 0.0
    initial = info["val_accuracy"]
    terminated = truncated = False
    while not (terminated or truncated):
        obs, reward, terminated, truncated, info = env.step(np.ones(4, dtype=np.int64))
        total += reward
    assert truncated and not terminated
    assert 0.0 <= info["test_accuracy"] <= 1.0
    assert total == pytest.approx(info["val_accuracy"] - initial, abs=1e-9)
    env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_divergence_terminates_with_penalty_and_finite_obs(env_id: str) -> None:
    env = gym.make(env_id, obs_keys=CORE_KEYS, **FAST)
    obs, info = env.reset(seed=0, options={"instance": {**env.unwrapped.instances[0], "lr": 1.0}})
    raise_lr = np.array([2, 1, 1, 1] + [0] * (len(env.action_space.nvec) - 4))  # no cell where the agent picks one
    terminated = False
    for _ in range(20):
        obs, reward, terminated, truncated, info = env.step(raise_lr)
        assert all(np.isfinite(v).all() for v in obs.values())
        assert env.observation_space.contains(obs)
        if terminated:
            break
    assert terminated, "doubling the learning rate every step must diverge"
    assert reward == -1.0
    assert info["diverged"] is True
    assert "test_accuracy" in info
    env.close()


@pytest.mark.parametrize("kwargs, field", [
    ({"steps_per_action": 0}, "steps_per_action"),
    ({"optimizer": "rmsprop"}, "optimizer"),
    ({"obs_keys": ["pixels"]}, "obs_keys"),
    ({"momentum": 1.5}, "momentum"),
    ({"not_a_field": 1}, "not_a_field"),
    ({"task": "imagenet"}, "task"),
    ({"device": "tpu"}, "device"),
])
def test_bad_kwargs_raise_value_error_naming_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        gym.make("TrainGym/DigitsMLP-v0", **kwargs)


def test_bad_action_and_reset_option() -> None:
    env = gym.make("TrainGym/DigitsMLP-v0", obs_keys=CORE_KEYS, **FAST)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(np.array([1, 1, 1]))
    with pytest.raises(ValueError, match="action"):
        env.step(np.array([3, 1, 1, 1]))
    with pytest.raises(ValueError, match="instance_index"):
        env.reset(options={"instance_index": 10_000})
    with pytest.raises(ValueError, match="aug_level"):
        env.reset(options={"instance": {"split_seed": 1, "lr": 0.1, "weight_decay": 1e-4, "aug_level": 9,
                                        "depth": 1, "width": 32}})
    env.close()


def test_pickle_and_double_close() -> None:
    env = TrainingEnv(task="digits_mlp", obs_keys=CORE_KEYS, **FAST)
    env.reset(seed=1)
    env.step(np.array([1, 1, 1, 2]))
    clone = pickle.loads(pickle.dumps(env))
    a = env.step(np.array([1, 1, 1, 1]))
    b = clone.step(np.array([1, 1, 1, 1]))
    assert a[1] == b[1] and np.array_equal(a[0]["training_stats"], b[0]["training_stats"])
    env.close()
    env.close()
    clone.close()


def test_instance_sets_are_fixed_and_disjoint() -> None:
    for task in ("digits_mlp", "tabular_mlp"):
        family = make_task(task)
        train, test = family.instance_set("train", "sgd"), family.instance_set("test", "sgd")
        assert train == family.instance_set("train", "sgd")
        assert {i["split_seed"] for i in train}.isdisjoint({i["split_seed"] for i in test})
        lrs = np.log10([i["lr"] for i in train])
        assert lrs.max() - lrs.min() > 3.5  # log-uniform over 4 decades, bad settings included


def test_weight_scaling_changes_exactly_the_flagged_neurons() -> None:
    env = TrainingEnv(task="digits_mlp", obs_keys=CORE_KEYS, **FAST)
    env.reset(seed=2)
    env.step(np.array([1, 1, 1, 1]))
    log = env._log
    before = [layer.weight.detach().clone() for layer in log.layers]
    flagged = [ids.clone() for ids in log.flagged]
    assert sum(ids.numel() for ids in flagged) > 0
    env._apply_move((0, 0, 0, 1))
    for layer, old, ids in zip(log.layers, before, flagged):
        changed = (layer.weight.detach() != old).any(dim=1).nonzero().flatten()
        assert sorted(changed.tolist()) == sorted(ids.tolist())
        torch_ratio = layer.weight.detach()[ids] / old[ids]
        assert np.allclose(torch_ratio[old[ids] != 0].numpy(), 1.25)
    env.close()


def test_discrete_wrapper_round_trip() -> None:
    env = DiscreteActionWrapper(gym.make("TrainGym/TabularMLP-v0", obs_keys=CORE_KEYS, **FAST))
    assert env.action_space.n == 81
    assert list(env.action(40)) == [1, 1, 1, 1]
    for a in range(81):
        assert env.reverse_action(env.action(a)) == a
    sb3_check_env(env)
    env.close()


def test_ansi_render() -> None:
    env = gym.make("TrainGym/DigitsMLP-v0", render_mode="ansi", obs_keys=CORE_KEYS, **FAST)
    env.reset(seed=0)
    env.step(np.array([2, 1, 1, 1]))
    line = env.render()
    assert isinstance(line, str) and "val_acc=" in line and "\n" not in line
    env.close()


def test_ppo_smoke_on_vec_env() -> None:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    vec = make_vec_env("TrainGym/DigitsMLP-v0", n_envs=2, seed=0,
                       env_kwargs={"obs_keys": CORE_KEYS, "steps_per_action": 2, "val_size": 64})
    model = PPO("MultiInputPolicy", vec, n_steps=64, batch_size=64, n_epochs=2, seed=0, device="cpu")
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(total_timesteps=256)
    assert model.num_timesteps >= 256
    assert any(not np.array_equal(b.numpy(), a.detach().numpy()) for b, a in zip(before, model.policy.parameters()))
    vec.close()


@pytest.mark.parametrize("env_id", ["TrainGym/DigitsMLP-v0", "TrainGym/DigitsCNN-v0"])
def test_reset_and_step_leave_the_global_rngs_untouched(env_id: str) -> None:
    import torch

    env = gym.make(env_id, obs_keys=CORE_KEYS, **FAST)
    torch_state, numpy_state = torch.random.get_rng_state(), np.random.get_state()[1].copy()
    env.reset(seed=4)
    env.step(np.array([2, 1, 2, 2]))
    assert torch.equal(torch_state, torch.random.get_rng_state())
    assert np.array_equal(numpy_state, np.random.get_state()[1])
    env.close()


def test_the_env_trains_on_its_own_thread_count_and_gives_the_caller_its_own_back() -> None:
    """An env built and stepped in an agent's process (evaluation, demonstrations) leaves that process's torch
    thread count alone; its own work runs on its ``num_threads``."""
    import torch
    from traingym.envs.batched.workers import make_batched_env

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    seen: list[int] = []
    try:
        env = gym.make("TrainGym/DigitsMLP-v0", steps_per_action=2, num_threads=1)
        inner = env.unwrapped
        train_steps = inner.train_steps
        inner.train_steps = lambda: (seen.append(torch.get_num_threads()), train_steps())[1]
        env.reset(seed=0)
        env.step(env.action_space.sample())
        env.close()
        assert torch.get_num_threads() == 2 and seen == [1]
        batched = make_batched_env(2, workers=1, steps_per_action=2, num_threads=1)
        batched.reset(seed=0)
        stack = batched.stacks[0]
        stack_train = stack.train
        stack.train = lambda *a, **k: (seen.append(torch.get_num_threads()), stack_train(*a, **k))[1]
        batched.step(batched.action_space.sample())
        batched.close()
        assert torch.get_num_threads() == 2 and seen == [1, 1]
    finally:
        torch.set_num_threads(before)
