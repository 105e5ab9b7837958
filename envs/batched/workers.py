"""The batched envs' Gymnasium front door: ``gym.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point",
workers=W)`` splits the N sub-envs between W worker processes, each stepping its share as one batched env.

:func:`make_batched_env` is the ``vector_entry_point`` of the batched ids (:data:`traingym.envs.BATCHED_ENV_IDS`):
``workers`` defaults to what the machine's cores allow (the CPUs this process may run on, at most N). With one
worker the batched env runs in this process (:class:`~traingym.envs.batched.mlp.BatchedTrainingEnv` for the MLP
families, :class:`~traingym.envs.batched.text.BatchedTextEnv` for the reviews families); with more,
:class:`WorkerBatchedEnv` holds one such env per worker (one torch thread each) and keeps the Gymnasium vector
conventions (autoreset, info masks) in the parent. Sub-env ``i`` is the same episode whatever the split: same seed
``seed + i``, per-sub-env generators, and no sub-env's arithmetic depends on which others share its batch.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode
from traingym.envs.batched.shards import receive_answers, serve_worker, shard_sizes, start_workers, stop_workers
from traingym.envs.batched.vector import BatchedVectorEnv, StepResult


def default_workers(num_envs: int) -> int:
    """Worker processes the machine's cores allow: the CPUs this process may run on, at most ``num_envs``."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(num_envs, cores))


def local_batched_env(num_envs: int, **kwargs: Any) -> BatchedVectorEnv:
    """The in-process batched env of the kwargs' task family (TrainingEnvConfig fields plus the vector env's own)."""
    from traingym.envs.batched.text import TEXT_TASKS, BatchedTextEnv

    if kwargs.get("task") in TEXT_TASKS:
        return BatchedTextEnv(num_envs, **kwargs)
    from traingym.envs.batched.mlp import BatchedTrainingEnv

    return BatchedTrainingEnv(num_envs, **kwargs)


def make_batched_env(num_envs: int = 1, *, workers: int | None = None, **kwargs: Any) -> BatchedVectorEnv:
    """``vector_entry_point`` of the batched ids: ``num_envs`` sub-envs in ``workers`` processes (None: as many
    as the cores allow, :func:`default_workers`; 1: in this process)."""
    if not isinstance(num_envs, int) or isinstance(num_envs, bool) or num_envs < 1:
        raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
    if workers is None:
        workers = default_workers(num_envs)
    if not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= num_envs:
        raise ValueError(f"workers must be None or an int in [1, num_envs={num_envs}], got {workers!r}")
    if workers == 1:
        return local_batched_env(num_envs, **kwargs)
    return WorkerBatchedEnv(num_envs, workers, **kwargs)


def _worker(remote: Connection, parent: Connection, num_envs: int, kwargs: dict[str, Any]) -> None:
    serve_worker(remote, parent, functools.partial(local_batched_env, num_envs, **kwargs), _serve)


def _serve(env: Any, command: str, data: Any) -> Any:
    """One command of the parent's, run on this worker's share of the sub-envs."""
    if command == "reset":
        return env.reset_envs(*data)
    if command == "step":
        return env.step_envs(*data)
    if command == "spaces":
        return env.single_observation_space, env.single_action_space
    raise NotImplementedError(f"unknown command {command!r}")


class WorkerBatchedEnv(BatchedVectorEnv):
    """``num_envs`` batched sub-envs in ``workers`` processes (worker ``w`` holds sub-envs ``offsets[w]`` to
    ``offsets[w + 1] - 1``). ``kwargs`` are those of the in-process batched env (TrainingEnvConfig fields,
    ``max_episode_steps``, ...); ``autoreset_mode`` applies here. Workers start with ``forkserver`` (``spawn``
    where it is missing)."""

    def __init__(self, num_envs: int, workers: int, *, autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
                 start_method: str | None = None, **kwargs: Any) -> None:
        sizes = shard_sizes(num_envs, workers)
        self.offsets = np.cumsum([0, *sizes])
        self.remotes: list[Connection] = []
        self.processes: list[Any] = []
        self._closed_workers = False
        self.remotes, self.processes, (observation_space, action_space) = start_workers(
            start_method, _worker, [(size, kwargs) for size in sizes])
        self._init_vector(num_envs, observation_space, action_space, autoreset_mode)

    def _shard(self, i: int) -> int:
        return int(np.searchsorted(self.offsets, i, side="right")) - 1

    def reset_envs(self, indices: Sequence[int], seeds: Sequence[int | None], options: dict[str, Any] | None
                   ) -> list[tuple[dict[str, np.ndarray], dict[str, Any]]]:
        by_shard: dict[int, list[int]] = {}
        for j, i in enumerate(indices):
            by_shard.setdefault(self._shard(i), []).append(j)
        for w, js in by_shard.items():
            local = [int(indices[j] - self.offsets[w]) for j in js]
            self.remotes[w].send(("reset", (local, [seeds[j] for j in js], options)))
        answers = receive_answers([self.remotes[w] for w in by_shard])
        out: list[Any] = [None] * len(indices)
        for js, answer in zip(by_shard.values(), answers):
            for j, result in zip(js, answer):
                out[j] = result
                self._env_obs[indices[j]] = result[0]
        return out

    def _step_envs(self, actions: np.ndarray, skip: np.ndarray | None) -> list[StepResult | None]:
        for w, remote in enumerate(self.remotes):
            start, stop = int(self.offsets[w]), int(self.offsets[w + 1])
            remote.send(("step", (actions[start:stop], None if skip is None else skip[start:stop])))
        results = [result for answer in receive_answers(self.remotes) for result in answer]
        for i, result in enumerate(results):
            if result is not None:
                self._env_obs[i] = result[0]
        return results

    def close_extras(self, **kwargs: Any) -> None:
        if getattr(self, "_closed_workers", True):
            return
        self._closed_workers = True
        stop_workers(self.remotes, self.processes)

    def __repr__(self) -> str:
        return f"WorkerBatchedEnv(num_envs={self.num_envs}, workers={len(self.remotes)})"
