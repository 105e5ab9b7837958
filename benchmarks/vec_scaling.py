"""Figure ``vec_scaling``: env steps per second of a 2-process ``SubprocVecEnv`` / one in-process env.

The two vector envs exist side by side; blocks of steps alternate between them (one block of the single env,
one block of the pair, ...), each block timed on its own, and the figure is the median over blocks of
``(2 * steps / t_pair) / (steps / t_single)``. Each env process keeps one torch thread (the env's
``num_threads=1``), so two processes use the two cores without over-subscription.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import gymnasium as gym
import numpy as np

from benchmarks.timing import median, quartiles, rounded


def make_env(env_id: str, env_kwargs: dict[str, Any]) -> gym.Env:
    """Module-level (picklable) factory; a child process registers the TrainGym ids itself."""
    import traingym.envs  # noqa: F401

    return gym.make(env_id, **env_kwargs)


def measure_vec_scaling(env_id: str, env_kwargs: dict[str, Any], *, blocks: int, steps_per_block: int,
                        seed: int = 0, start_method: str | None = None) -> dict[str, Any]:
    """``start_method`` None is SB3's default (forkserver), what users get; the smoke run forks (no re-import)."""
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    factory = functools.partial(make_env, env_id, dict(env_kwargs))
    single = DummyVecEnv([factory])
    pair = SubprocVecEnv([factory, factory], start_method=start_method)
    rng = np.random.default_rng(seed)
    try:
        for vec, offset in ((single, 0), (pair, 100)):
            vec.seed(seed + offset)
            vec.reset()
            _run(vec, rng, 1)  # warm-up: first step after reset
        ratios, single_sps, pair_sps = [], [], []
        for _ in range(blocks):
            t_single = _run(single, rng, steps_per_block)
            t_pair = _run(pair, rng, steps_per_block)
            single_sps.append(steps_per_block / t_single)
            pair_sps.append(2 * steps_per_block / t_pair)
            ratios.append(pair_sps[-1] / single_sps[-1])
    finally:
        single.close()
        pair.close()
    p25, p75 = quartiles(ratios)
    return {
        "ratio": rounded(median(ratios)),
        "ratio_p25": rounded(p25),
        "ratio_p75": rounded(p75),
        "steps_per_s_1": rounded(median(single_sps), 2),
        "steps_per_s_2": rounded(median(pair_sps), 2),
        "n_envs": 2,
        "blocks": blocks,
        "steps_per_block": steps_per_block,
        "env_id": env_id,
        "start_method": start_method or "default",
    }


def _run(vec: Any, rng: np.random.Generator, steps: int) -> float:
    started = time.perf_counter()
    for _ in range(steps):
        vec.step(rng.integers(0, 3, size=(vec.num_envs, 4)))
    return time.perf_counter() - started
