"""Fuzzing every registered TrainGym env: random valid configs, random action sequences, runs steered into
divergence. Whatever hypothesis draws, an env must never raise, never emit a non-finite observation or reward, and
always respect its declared spaces.

The env ids are read from gymnasium's registry (every key starting with ``TrainGym/``), so families registered
later (text / BERT) are fuzzed too without editing this file. The default run keeps K tiny and the example count
small; the ``slow`` variant draws many more, longer episodes.
"""

from __future__ import annotations

import json
import math
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import traingym.envs  # noqa: F401  (registers the ids)
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from traingym.envs.config import INSTANCE_SETS, NEURON_LOG_POLICIES, OBS_KEYS, OPTIMIZERS
from traingym.protocol.choices import CallPolicy, choice_values

ENV_IDS = sorted(k for k in gym.registry if k.startswith("TrainGym/"))
ADVISORS = ("heuristic", "advisors_testkit:ConstantAdvisor", "advisors_testkit:BrokenAdvisor")
"""Advisor specs drawn by the fuzzer: the default rules, a user class, and a user class that always raises."""
DIVERGE = np.array([2, 0, 1, 2, 0])
"""Double the learning rate, cut weight decay, scale the flagged neurons up (no cell where the agent picks one):
steers a run into divergence."""
COLLAPSE = np.array([0, 2, 2, 0, 1])
"""Halve the learning rate, raise weight decay and augmentation, scale the flagged neurons down, decorrelate the
first cell where the agent picks one."""


def config_strategy(max_k: int, batch_sizes: tuple[int, ...]) -> st.SearchStrategy[dict[str, Any]]:
    """Valid ``gym.make`` keyword arguments (tiny K, hashing encoder), any combination of the options."""
    return st.fixed_dictionaries({
        "steps_per_action": st.integers(1, max_k),
        "batch_size": st.sampled_from(batch_sizes),
        "val_size": st.integers(16, 64),
        "flag_top_k": st.sampled_from([1, 2, 5, 64]),
        "max_error_samples": st.sampled_from([1, 7, 256]),
        "optimizer": st.sampled_from(OPTIMIZERS),
        "momentum": st.floats(0.0, 0.999),
        "history_len": st.integers(2, 64),
        "obs_keys": st.lists(st.sampled_from(OBS_KEYS), min_size=1, unique=True),
        "neuron_log": st.lists(st.sampled_from(NEURON_LOG_POLICIES), unique=True),
        "instance_set": st.sampled_from(INSTANCE_SETS),
        "divergence_penalty": st.floats(0.0, 10.0),
        "max_weight_norm": st.sampled_from([1.0, 1e4, 1e12]),
        "max_loss": st.sampled_from([1.0, 100.0, 1e12]),
        "advisor": st.sampled_from(ADVISORS),
        "advisor_call": st.sampled_from(choice_values(CallPolicy)),
        "advisor_every_n": st.integers(1, 4),
        "advisor_accounting": st.booleans(),
        "encoder": st.just("hashing"),
        "diagnosis_dim": st.none() | st.integers(1, 384),
        "event_log_capacity": st.integers(1, 64),
        "relevance": st.booleans(),
    })


def override_strategy() -> st.SearchStrategy[dict[str, Any] | None]:
    """Instance overrides, extreme learning rates and weight decays included (the env clips them)."""
    return st.none() | st.fixed_dictionaries({
        "lr": st.floats(-12.0, 6.0).map(lambda e: 10.0**e),
        "weight_decay": st.floats(-12.0, 3.0).map(lambda e: 10.0**e),
        "aug_level": st.integers(0, 4),
        "label_noise": st.floats(0.0, 0.95),
    })


def action_strategy(max_steps: int) -> st.SearchStrategy[list[np.ndarray]]:
    """Random action sequences, or sequences steered into divergence / collapse with random actions mixed in."""
    random_action = st.tuples(st.lists(st.integers(0, 2), min_size=4, max_size=4), st.integers(0, 1024)).map(
        lambda parts: np.array([*parts[0], parts[1]]))  # the knobs, then a cell for envs with mask_grid
    steered = st.sampled_from([DIVERGE, COLLAPSE]).flatmap(
        lambda base: st.lists(st.one_of(st.just(base), random_action), min_size=1, max_size=max_steps))
    return st.one_of(st.lists(random_action, min_size=1, max_size=max_steps), steered)


def check_transition(env: gym.Env, obs: dict[str, np.ndarray], reward: float | None, info: dict[str, Any]) -> None:
    """The contract of one reset or step: spaces respected, everything finite, info JSON-able."""
    assert env.observation_space.contains(obs), {k: (v.dtype, v.shape, v.min(), v.max()) for k, v in obs.items()}
    for key, value in obs.items():
        assert np.isfinite(value).all(), f"non-finite observation in {key!r}"
    if reward is not None:
        assert isinstance(reward, float) and math.isfinite(reward), reward
    json.dumps(info, allow_nan=False)  # plain, finite, JSON-able values only


def fit_action(action: np.ndarray, env: gym.Env) -> np.ndarray:
    """A drawn action (four knobs, then a cell) for ``env``: the knobs alone, or with the cell in its range."""
    nvec = np.asarray(env.action_space.nvec)
    fitted = action[:len(nvec)].copy()
    fitted[len(nvec) - 1:] %= nvec[len(nvec) - 1:]
    return fitted


def run_fuzz_case(env_id: str, kwargs: dict[str, Any], horizon: int, override: dict[str, Any] | None,
                  actions: list[np.ndarray], seed: int) -> tuple[int, int]:
    """Reset, play ``actions`` (resetting whenever an episode ends), check every transition.

    Returns ``(steps, divergences)``.
    """
    if currently_in_test_context():
        note(f"{env_id} horizon={horizon} kwargs={kwargs} override={override} "
             f"actions={[a.tolist() for a in actions]} seed={seed}")
    env = gym.make(env_id, max_episode_steps=horizon, horizon=horizon, **kwargs)
    steps = divergences = 0
    try:
        options = None
        if override is not None:
            base = env.unwrapped.instances[seed % len(env.unwrapped.instances)]
            options = {"instance": {**base, **override}}
        obs, info = env.reset(seed=seed, options=options)
        check_transition(env, obs, None, info)
        for drawn in actions:
            action = fit_action(drawn, env)
            assert env.action_space.contains(action)
            obs, reward, terminated, truncated, info = env.step(action)
            steps += 1
            check_transition(env, obs, reward, info)
            if terminated:
                divergences += 1
                assert info["diverged"] and reward == -kwargs["divergence_penalty"]
            if terminated or truncated:
                assert 0.0 <= info["test_accuracy"] <= 1.0
                obs, info = env.reset(options=options)
                check_transition(env, obs, None, info)
                assert info["diverged"] is False and info["step"] == 0
    finally:
        env.close()
    return steps, divergences


FAST_SETTINGS = settings(max_examples=4, deadline=None, derandomize=True, print_blob=True,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SLOW_SETTINGS = settings(max_examples=30, deadline=None, print_blob=True,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.parametrize("env_id", ENV_IDS)
@FAST_SETTINGS
@given(kwargs=config_strategy(max_k=2, batch_sizes=(1, 2, 8, 32, 4096)), horizon=st.integers(1, 4),
       override=override_strategy(), actions=action_strategy(max_steps=6), seed=st.integers(0, 2**16))
def test_fuzz_random_configs_and_actions(env_id: str, kwargs: dict[str, Any], horizon: int,
                                         override: dict[str, Any] | None, actions: list[np.ndarray],
                                         seed: int) -> None:
    steps, divergences = run_fuzz_case(env_id, kwargs, horizon, override, actions, seed)
    event(f"diverged: {divergences > 0}")


@pytest.mark.slow
@pytest.mark.parametrize("env_id", ENV_IDS)
@SLOW_SETTINGS
@given(kwargs=config_strategy(max_k=4, batch_sizes=(1, 2, 8, 32, 256)), horizon=st.integers(1, 12),
       override=override_strategy(), actions=action_strategy(max_steps=25), seed=st.integers(0, 2**31 - 1))
def test_fuzz_random_configs_and_actions_long(env_id: str, kwargs: dict[str, Any], horizon: int,
                                              override: dict[str, Any] | None, actions: list[np.ndarray],
                                              seed: int) -> None:
    steps, divergences = run_fuzz_case(env_id, kwargs, horizon, override, actions, seed)
    event(f"diverged: {divergences > 0}")
    event(f"steps: {'1-5' if steps <= 5 else '6-15' if steps <= 15 else '16+'}")


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_steered_divergence_is_contained(env_id: str, optimizer: str) -> None:
    """An extreme learning rate steered upwards must end in a clean termination, on every family and optimizer,
    with every observation key and every neuron-log policy on; the env then resets into a healthy episode."""
    kwargs = {"steps_per_action": 2, "val_size": 32, "encoder": "hashing", "advisor_call": "every_step",
              "divergence_penalty": 1.0, "optimizer": optimizer}
    override = {"lr": 1e6, "weight_decay": 1e-12, "aug_level": 0, "label_noise": 0.0}
    steps, divergences = run_fuzz_case(env_id, kwargs, 12, override, [DIVERGE] * 12, seed=0)
    assert divergences >= 1, f"lr=1e6 ({optimizer}) doubled every step did not diverge in {steps} steps"
