"""Picklable env factories: SubprocVecEnv children (forkserver/spawn) import ``traingym.envs`` themselves."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import gymnasium as gym


def make_env(env_id: str, horizon: int, env_kwargs: dict[str, Any], discrete: bool = False,
             monitor: bool = False) -> gym.Env:
    """One TrainGym env with horizon ``T`` for both the time limit and the env's progress feature.

    ``discrete`` flattens the action space for DQN; ``monitor`` adds SB3's episode statistics.
    """
    import traingym.envs  # noqa: F401  (registers the TrainGym ids in this process)
    from traingym.envs.wrappers import DiscreteActionWrapper

    # gym.make's max_episode_steps only sets the TimeLimit; the env reads its own horizon for t/T.
    env = gym.make(env_id, max_episode_steps=horizon, horizon=horizon, **env_kwargs)
    if discrete:
        env = DiscreteActionWrapper(env)
    if monitor:
        from stable_baselines3.common.monitor import Monitor

        env = Monitor(env)
    return env


def env_factory(env_id: str, horizon: int, env_kwargs: dict[str, Any], discrete: bool = False,
                monitor: bool = False) -> Callable[[], gym.Env]:
    """A picklable zero-argument factory (``functools.partial`` of a module-level function)."""
    return functools.partial(make_env, env_id, horizon, dict(env_kwargs), discrete, monitor)
