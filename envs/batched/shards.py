"""The batched env split across worker processes: each worker trains its share of the sub-envs as one batched
computation, so a batched run uses every core instead of one.

SB3's ``SubprocVecEnv`` runs one ``gym.Env`` per worker; here each worker holds a whole
:class:`~traingym.envs.batched.sb3.BatchedSB3VecEnv` (a shard), and this class concatenates the shards' results
in sub-env order. Sub-env ``i`` is the same episode as in the one-process batched env, bit for bit: same seed
``seed + i``, same per-env generators, and no instance's arithmetic depends on which others share its stack.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing as mp
import sys
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn


def shard_sizes(num_envs: int, workers: int) -> list[int]:
    """Sub-envs per worker: as even as possible, earlier workers take the remainder (no empty shard)."""
    workers = min(workers, num_envs)
    return [num_envs // workers + (1 if w < num_envs % workers else 0) for w in range(workers)]


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
"""glibc ``mallopt`` parameters."""
KEPT_FREED_BYTES = 1 << 30
"""Blocks up to this size come from (and free memory up to this size stays in) the worker's heap."""


def keep_freed_memory() -> None:
    """Keep freed memory in this process's heap instead of returning it to the OS (glibc; elsewhere nothing).

    Why: glibc serves blocks from 128 KiB on with ``mmap`` and trims its heap's free top, so the large temporaries
    of a batched step (a stack's K batches, every sub-env's activations and gradients) are fresh pages each step:
    thousands of minor page faults per step. Kept, an N=8 DigitsMLP step faulted about 200 instead of 3000 times
    and took about a sixth less time (same process, alternating blocks, on a 2-core VM); a single env's small
    tensors gained nothing. A worker process runs nothing but its envs, so its heap holding their peak working set
    costs no one else."""
    import ctypes
    import ctypes.util

    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl without mallopt): the default allocator stays
        return
    mallopt(M_MMAP_THRESHOLD, KEPT_FREED_BYTES)
    mallopt(M_TRIM_THRESHOLD, KEPT_FREED_BYTES)


def serve_worker(remote: Connection, parent: Connection, build: Callable[[], Any],
                 serve: Callable[[Any, str, Any], Any]) -> None:
    """A worker process's loop: build its env (``build()``), then answer each ``(command, data)`` from the parent
    with ``("ok", serve(env, command, data))`` or ``("error", traceback)`` until ``"close"``. A failure to build
    is the answer to the parent's first command. One torch thread: the ops are small, more threads only contend;
    freed memory stays in the process (:func:`keep_freed_memory`)."""
    import torch

    parent.close()
    torch.set_num_threads(1)
    # Worker processes only, not the in-process batched env (workers=1): mallopt sets the allocator of the whole
    # process for good, and there that is the user's (agent, other libraries), whose heap it would keep up to 1 GiB.
    keep_freed_memory()
    try:
        env = build()
    except Exception:  # noqa: BLE001  (e.g. a bad config field: the answer to the parent's first command)
        error = traceback.format_exc()
        try:
            remote.recv()
            remote.send(("error", error))
        finally:
            remote.close()
        return
    try:
        while True:
            command, data = remote.recv()
            if command == "close":
                break
            try:
                remote.send(("ok", serve(env, command, data)))
            except Exception:  # noqa: BLE001  (any failure goes back to the parent, which raises it)
                remote.send(("error", traceback.format_exc()))
    except (KeyboardInterrupt, EOFError):
        pass
    finally:
        env.close()
        remote.close()


def _worker(remote: Connection, parent: Connection, make_shard: Callable[..., VecEnv], env_id: str, num_envs: int,
            env_kwargs: dict[str, Any]) -> None:
    serve_worker(remote, parent, functools.partial(make_shard, env_id, num_envs, **env_kwargs), _serve)


def _serve(vec: Any, command: str, data: Any) -> Any:
    """One command of the parent on this worker's shard."""
    if command == "step":
        vec.step_async(data)
        return vec.step_wait()
    if command == "reset":
        seeds, options = data
        vec._seeds, vec._options = list(seeds), list(options)  # SB3 applies both at the next reset
        return vec.reset(), vec.reset_infos
    if command == "get_attr":
        return vec.get_attr(*data)
    if command == "set_attr":
        return vec.set_attr(*data)
    if command == "env_method":
        name, args, kwargs, indices = data
        return vec.env_method(name, *args, indices=indices, **kwargs)
    if command == "spaces":
        return vec.observation_space, vec.action_space
    raise NotImplementedError(f"unknown command {command!r}")


MAIN_GUARD_ADVICE = (
    "the batched env's worker processes (workers > 1) start by importing your script again, so the code that "
    "creates the env must run only in the main process: put it under `if __name__ == \"__main__\":` in a script "
    "file (code read from stdin cannot be re-imported), or pass workers=1")


def check_main_guard(start_method: str) -> None:
    """Fail early, with one clear message, where the workers could never start.

    Raises:
        SystemExit: in a worker that is re-running the user's script (no ``__main__`` guard): it ends quietly, and
            the parent, left without an answer, raises :data:`MAIN_GUARD_ADVICE`.
        RuntimeError: in the parent when its ``__main__`` is code read from stdin, which workers cannot re-import.
    """
    if getattr(mp.current_process(), "_inheriting", False):  # multiprocessing's own "still bootstrapping" flag
        raise SystemExit(1)
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if start_method != "fork" and isinstance(main_file, str) and main_file.startswith("<"):
        raise RuntimeError(f"cannot start worker processes from {main_file}: {MAIN_GUARD_ADVICE}")


def start_workers(start_method: str | None, target: Callable[..., None], worker_args: Sequence[tuple[Any, ...]]
                  ) -> tuple[list[Connection], list[Any], Any]:
    """Start one daemon worker per entry of ``worker_args`` (``target(work_remote, remote, *args)``) and ask each
    for its spaces; returns the parent's pipe ends, the processes and the first worker's spaces. Checks the
    ``__main__`` guard first (:func:`check_main_guard`); a worker that dies before answering (the usual cause: a
    script without the guard) becomes one RuntimeError saying so; on any failure the workers are stopped first.
    Workers start with
    ``forkserver`` (``spawn`` where it is missing) unless ``start_method`` says otherwise."""
    start_method = start_method or ("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
    check_main_guard(start_method)
    ctx = mp.get_context(start_method)
    remotes: list[Connection] = []
    processes: list[Any] = []
    for args in worker_args:
        remote, work_remote = ctx.Pipe()
        process = ctx.Process(target=target, args=(work_remote, remote, *args), daemon=True)
        process.start()
        work_remote.close()
        remotes.append(remote)
        processes.append(process)
    for remote in remotes:
        remote.send(("spaces", None))
    try:
        spaces, *_ = receive_answers(remotes)
    except RuntimeError:
        stop_workers(remotes, processes)
        raise
    except (EOFError, ConnectionError):  # a worker died before its first answer
        codes = [p.join(5) or p.exitcode for p in processes]
        stop_workers(remotes, processes)
        raise RuntimeError(f"batched env workers exited before answering (exit codes {codes}); when this runs "
                           f"from a script, the usual cause: {MAIN_GUARD_ADVICE}") from None
    return remotes, processes, spaces


def stop_workers(remotes: Sequence[Connection], processes: Sequence[Any]) -> None:
    """Ask every worker to close, wait for it, close the pipes (a worker that already exited is fine)."""
    for remote in remotes:
        with contextlib.suppress(OSError):  # a worker that failed to build its env has already exited
            remote.send(("close", None))
    for process in processes:
        process.join()
    for remote in remotes:
        remote.close()


def receive_answers(remotes: Sequence[Connection]) -> list[Any]:
    """Every worker's answer, in order; the first failure is raised once all have answered (so no answer is left
    in a pipe to be read as the answer to a later command)."""
    answers = [remote.recv() for remote in remotes]
    for status, payload in answers:
        if status == "error":
            raise RuntimeError(f"a batched env worker failed:\n{payload}")
    return [payload for _, payload in answers]


class BatchedShardsVecEnv(VecEnv):
    """An SB3 ``VecEnv`` of ``num_envs`` batched sub-envs of ``env_id`` in ``workers`` processes.

    Same protocol as :class:`~traingym.envs.batched.sb3.BatchedSB3VecEnv` (same-step autoreset,
    ``terminal_observation``, per-env seeds and options applied at the next ``reset()``); ``env_kwargs`` are
    ``TrainingEnvConfig`` fields. Workers start with ``forkserver`` (``spawn`` where it is missing), as SB3.
    """

    def __init__(self, env_id: str, num_envs: int, workers: int, make_shard: Callable[..., VecEnv],
                 start_method: str | None = None, **env_kwargs: Any) -> None:
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an int >= 1, got {workers!r}")
        self.closed, self.waiting = False, False
        sizes = shard_sizes(num_envs, workers)
        self.offsets = np.cumsum([0, *sizes])
        """Shard ``w`` holds sub-envs ``offsets[w]`` to ``offsets[w + 1] - 1``."""
        self.remotes: list[Connection] = []
        self.processes: list[Any] = []
        self.remotes, self.processes, (observation_space, action_space) = start_workers(
            start_method, _worker, [(make_shard, env_id, size, env_kwargs) for size in sizes])
        super().__init__(num_envs, observation_space, action_space)

    def _shards(self) -> list[tuple[Connection, int, int]]:
        return [(remote, int(self.offsets[w]), int(self.offsets[w + 1])) for w, remote in enumerate(self.remotes)]

    def reset(self) -> VecEnvObs:
        for remote, start, stop in self._shards():
            remote.send(("reset", (self._seeds[start:stop], self._options[start:stop])))
        results = receive_answers(self.remotes)
        self.reset_infos = [info for _, infos in results for info in infos]
        self._reset_seeds()
        self._reset_options()
        return _concat_obs([obs for obs, _ in results])

    def step_async(self, actions: np.ndarray) -> None:
        actions = np.asarray(actions).reshape(self.num_envs, -1)
        for remote, start, stop in self._shards():
            remote.send(("step", actions[start:stop]))
        self.waiting = True

    def step_wait(self) -> VecEnvStepReturn:
        self.waiting = False
        results = receive_answers(self.remotes)
        obs, rewards, dones, infos = zip(*results)
        return (_concat_obs(list(obs)), np.concatenate(rewards), np.concatenate(dones),
                [info for shard in infos for info in shard])

    def close(self) -> None:
        if self.closed:
            return
        if self.waiting:
            for remote in self.remotes:
                remote.recv()
        stop_workers(self.remotes, self.processes)
        self.closed = True

    def _by_shard(self, indices: VecEnvIndices) -> list[tuple[Connection, list[int]]]:
        """The requested sub-envs grouped by shard, as shard-local indices, in shard order."""
        wanted = self._get_indices(indices)
        return [(remote, [i - start for i in wanted if start <= i < stop]) for remote, start, stop in self._shards()
                if any(start <= i < stop for i in wanted)]

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        shards = self._by_shard(indices)
        for remote, local in shards:
            remote.send(("get_attr", (attr_name, local)))
        return [value for answer in receive_answers([remote for remote, _ in shards]) for value in answer]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        shards = self._by_shard(indices)
        for remote, local in shards:
            remote.send(("set_attr", (attr_name, value, local)))
        receive_answers([remote for remote, _ in shards])

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None,
                   **method_kwargs: Any) -> list[Any]:
        shards = self._by_shard(indices)
        for remote, local in shards:
            remote.send(("env_method", (method_name, method_args, method_kwargs, local)))
        return [value for answer in receive_answers([remote for remote, _ in shards]) for value in answer]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]  # sub-envs are bare TrainingEnvs

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None] * self.num_envs


def _concat_obs(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
