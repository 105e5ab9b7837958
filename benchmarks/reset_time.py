"""Figure ``reset_ms``: wall-clock milliseconds of ``env.reset()`` with a new instance (split, model init).

``reset(seed=...)`` on an existing env draws a new instance, splits its (cached) dataset, initialises a new
network and runs the first validation pass and observation. The families are reset in turn, round after
round, so load changes on the machine spread over all of them. ``first_reset_ms`` (the first reset of a new
env: instance set built, data loaded if this process has not loaded it yet) is reported for information.
"""

from __future__ import annotations

import time
from typing import Any

from traingym.envs.tasks.registry import task_names
from traingym.envs.training_env import TrainingEnv

from benchmarks.timing import median, quartiles, rounded


def measure_resets(families: tuple[str, ...], env_kwargs: dict[str, Any], *, reps: int, seed: int = 0
                   ) -> dict[str, dict[str, Any]]:
    """``{family: {"median_ms", "p25_ms", "p75_ms", "first_reset_ms", "reps", "data_cached", "reason"}}``."""
    envs: dict[str, TrainingEnv] = {}
    first: dict[str, float] = {}
    out: dict[str, dict[str, Any]] = {}
    for family in families:
        if family not in task_names():
            out[family] = {"median_ms": None, "reason": f"task family {family!r} is not registered"}
            continue
        envs[family] = TrainingEnv(task=family, **env_kwargs)
        started = time.perf_counter()
        envs[family].reset(seed=seed)
        first[family] = 1000 * (time.perf_counter() - started)
    times: dict[str, list[float]] = {family: [] for family in envs}
    for rep in range(reps):
        for family, env in envs.items():
            started = time.perf_counter()
            env.reset(seed=seed + 1 + rep)
            times[family].append(1000 * (time.perf_counter() - started))
    for family, env in envs.items():
        instance = env.instances[0]
        p25, p75 = quartiles(times[family])
        out[family] = {
            "median_ms": rounded(median(times[family]), 3),
            "p25_ms": rounded(p25, 3),
            "p75_ms": rounded(p75, 3),
            "first_reset_ms": rounded(first[family], 3),
            "reps": reps,
            "data_cached": _data_cached(env, instance),
            "reason": None,
        }
        env.close()
    return {family: out[family] for family in families}


def _data_cached(env: TrainingEnv, instance: dict[str, Any]) -> bool:
    """The dataset object is shared by every reset and every task object of the family (loaded once per process)."""
    family = type(env.task)
    fresh = family.from_config(env.config) if hasattr(family, "from_config") else family()
    return fresh.datasets(instance) is env.task.datasets(instance)
