"""Figure ``vec_scaling``: env steps per second of a 2-process ``SubprocVecEnv`` / one in-process env.

The two vector envs exist side by side; blocks of steps alternate between them (one block of the single env,
one block of the pair, ...), each block timed on its own, and the figure is the median over blocks of
``(2 * steps / t_pair) / (steps / t_single)``. Every env trains the same instance with the "keep" action, so
all of them do the same work per step: the figure is the parallel efficiency, not the luck of the draw (with
random instances a synchronous vector env waits for its slowest member at every step), in one episode as long
as the measurement. Each env process keeps one torch thread (the env's ``num_threads=1``), so two processes use
the two cores without over-subscription.

CPU accounting (Linux ``/proc``; None elsewhere) tells a slow machine from a slow env: ``cpu_share_1`` /
``cpu_share_2`` are the CPU seconds the stepping processes (the main process, plus the two workers for the pair)
got per wall-clock second and per env: near 1.0 each env had a core to itself, well below 1.0 other work held
the cores. ``cpu_efficiency`` is CPU seconds per env step of the single env over those of the pair (1.0: running
two envs in processes costs no extra CPU per step); on two otherwise idle cores ``ratio`` approaches
``2 * cpu_efficiency``.
"""

from __future__ import annotations

import functools
import os
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
                        seed: int = 0, instance_index: int = 0, start_method: str | None = None
                        ) -> dict[str, Any]:
    """``start_method`` None is SB3's default (forkserver), what users get; the smoke run forks (no re-import)."""
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    # One episode for the whole measurement: auto-resets would draw other instances mid-measurement.
    kwargs = {**env_kwargs, "max_episode_steps": blocks * steps_per_block + 2}
    factory = functools.partial(make_env, env_id, kwargs)
    single = DummyVecEnv([factory])
    pair = SubprocVecEnv([factory, factory], start_method=start_method)
    pids = {"single": [os.getpid()], "pair": [os.getpid(), *(process.pid for process in pair.processes)]}
    try:
        for vec in (single, pair):
            vec.seed(seed)
            vec.set_options({"instance_index": instance_index})
            vec.reset()
            _run(vec, 1)  # warm-up: first step after reset
        ratios, single_sps, pair_sps = [], [], []
        cpu = {"single": [0.0, 0.0], "pair": [0.0, 0.0]}  # CPU seconds, wall seconds
        for _ in range(blocks):
            before = cpu_seconds(pids["single"])
            t_single = _run(single, steps_per_block)
            cpu["single"][0] += cpu_seconds(pids["single"]) - before
            before = cpu_seconds(pids["pair"])
            t_pair = _run(pair, steps_per_block)
            cpu["pair"][0] += cpu_seconds(pids["pair"]) - before
            cpu["single"][1] += t_single
            cpu["pair"][1] += t_pair
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
        "cpu_share_1": _share(*cpu["single"], 1),
        "cpu_share_2": _share(*cpu["pair"], 2),
        "cpu_efficiency": rounded(2 * cpu["single"][0] / cpu["pair"][0], 3) if cpu["pair"][0] > 0 else None,
        "n_envs": 2,
        "blocks": blocks,
        "steps_per_block": steps_per_block,
        "env_id": env_id,
        "instance_index": instance_index,
        "start_method": start_method or "default",
    }


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of the processes so far (NaN where ``/proc`` is unavailable)."""
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return total


def _share(cpu_s: float, wall_s: float, n_envs: int) -> float | None:
    return None if cpu_s != cpu_s or wall_s <= 0 else rounded(cpu_s / wall_s / n_envs, 3)


def _run(vec: Any, steps: int) -> float:
    keep = np.ones((vec.num_envs, 4), dtype=np.int64)
    started = time.perf_counter()
    for _ in range(steps):
        vec.step(keep)
    return time.perf_counter() - started
