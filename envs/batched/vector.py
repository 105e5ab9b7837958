"""The Gymnasium vector API shared by the batched envs: batched ``Dict`` observations, ``info`` as a dict of arrays
with ``_key`` masks, per-sub-env seeds, ``reset_mask`` and both autoreset modes, over two primitives a subclass
provides: resetting one sub-env and stepping a set of sub-envs together.

Subclasses: :class:`~traingym.envs.batched.mlp.BatchedTrainingEnv` (MLP families),
:class:`~traingym.envs.batched.text.BatchedTextEnv` (the reviews families) and
:class:`~traingym.envs.batched.workers.WorkerBatchedEnv` (either of them split across worker processes).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array
from traingym.envs.torch_threads import torch_threads

StepResult = tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]
"""One sub-env's ``(obs, reward, terminated, truncated, info)``."""


class BatchedVectorEnv(VectorEnv):
    """Gymnasium 1.x vector conventions over :meth:`reset_envs` and :meth:`step_envs`.

    ``reset(seed=int)`` seeds sub-env ``i`` with ``seed + i``; ``options={"reset_mask": ...}`` resets a subset; the
    autoreset mode (``next_step`` by default, as ``SyncVectorEnv``; ``same_step`` puts ``final_obs`` /
    ``final_info`` in ``info``) is in ``metadata["autoreset_mode"]``.
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def _init_vector(self, num_envs: int, observation_space: spaces.Dict, action_space: spaces.Space,
                     autoreset_mode: str | AutoresetMode) -> None:
        """Spaces, autoreset mode and the observation buffer (call from ``__init__`` once the spaces are known)."""
        self.autoreset_mode = AutoresetMode(autoreset_mode)
        if self.autoreset_mode == AutoresetMode.DISABLED:
            raise ValueError("autoreset_mode must be 'NextStep' or 'SameStep'")
        self.num_envs = num_envs
        self.metadata = {**self.metadata, "autoreset_mode": self.autoreset_mode}
        self.render_mode = None
        self.single_observation_space = observation_space
        self.single_action_space = action_space
        self.observation_space = batch_space(observation_space, num_envs)
        self.action_space = batch_space(action_space, num_envs)
        self._observations = create_empty_array(observation_space, n=num_envs, fn=np.zeros)
        self._env_obs: list[Any] = [None] * num_envs
        self._autoreset = np.zeros(num_envs, dtype=np.bool_)
        self.closed = False

    # ------------------------------------------------------------------ what a subclass provides
    @abstractmethod
    def reset_envs(self, indices: Sequence[int], seeds: Sequence[int | None],
                   options: dict[str, Any] | None) -> list[tuple[dict[str, np.ndarray], dict[str, Any]]]:
        """Reset the sub-envs ``indices`` (``seeds[j]`` for ``indices[j]``); their observations become their rows
        of :meth:`observations`. Returns each one's ``(obs, info)``."""

    @abstractmethod
    def _step_envs(self, actions: np.ndarray, skip: np.ndarray | None) -> list[StepResult | None]:
        """:meth:`step_envs`'s work, on :attr:`step_threads` threads."""

    @property
    def step_threads(self) -> int | None:
        """Torch threads a step of the sub-envs runs on in this process (None: the caller's)."""
        return None

    def step_envs(self, actions: np.ndarray, skip: np.ndarray | None = None) -> list[StepResult | None]:
        """One env step of every sub-env not in ``skip`` (None for the skipped); no autoreset. Each stepped
        sub-env's observation becomes its row of :meth:`observations`. Runs on :attr:`step_threads` threads, then
        gives the caller (an agent's process) its own count back."""
        with torch_threads(self.step_threads):
            return self._step_envs(actions, skip)

    def reset_env(self, i: int, *, seed: int | None = None, options: dict[str, Any] | None = None
                  ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Reset sub-env ``i`` alone."""
        return self.reset_envs([i], [seed], options)[0]

    # ------------------------------------------------------------------ gym vector API
    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed if isinstance(seed, int) else None)
        seeds = seed_list(seed, self.num_envs)
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        if mask is None:
            mask = np.ones(self.num_envs, dtype=np.bool_)
        elif not (isinstance(mask, np.ndarray) and mask.dtype == np.bool_ and mask.shape == (self.num_envs,)):
            raise ValueError(f"options['reset_mask'] must be a bool array of shape ({self.num_envs},), got {mask!r}")
        indices = [int(i) for i in np.flatnonzero(mask)]
        infos: dict[str, Any] = {}
        for i, (_, info) in zip(indices, self.reset_envs(indices, [seeds[i] for i in indices], options or None)):
            infos = self._add_info(infos, info, i)
            self._autoreset[i] = False
        return self.observations(), infos

    def step(self, actions: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray,
                                                 dict[str, Any]]:
        actions = np.asarray(actions)
        if actions.shape != self.action_space.shape:
            raise ValueError(f"actions must have shape {self.action_space.shape}, got {actions.shape}")
        resetting = self._autoreset.copy() if self.autoreset_mode == AutoresetMode.NEXT_STEP else None
        results = self.step_envs(actions, skip=resetting)
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        terminations = np.zeros(self.num_envs, dtype=np.bool_)
        truncations = np.zeros(self.num_envs, dtype=np.bool_)
        step_infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        finals: dict[int, dict[str, Any]] = {}
        for i, result in enumerate(results):
            if result is None:
                continue
            obs, rewards[i], terminations[i], truncations[i], step_infos[i] = result
            if self.autoreset_mode == AutoresetMode.SAME_STEP and (terminations[i] or truncations[i]):
                finals[i] = {"final_obs": obs, "final_info": step_infos[i]}
        # next-step autoreset: the skipped sub-envs reset now; same-step: the ones that just finished
        to_reset = [i for i, result in enumerate(results) if result is None] + sorted(finals)
        for i, (_, info) in zip(to_reset, self.reset_envs(to_reset, [None] * len(to_reset), None)):
            step_infos[i] = info
        infos: dict[str, Any] = {}
        for i in range(self.num_envs):
            if i in finals:
                infos = self._add_info(infos, finals[i], i)
            infos = self._add_info(infos, step_infos[i], i)
        self._autoreset = terminations | truncations
        return self.observations(), rewards, terminations, truncations, infos

    def observations(self) -> dict[str, np.ndarray]:
        """The batched latest observation of every sub-env (after its last reset or step), a fresh copy."""
        self._observations = concatenate(self.single_observation_space, self._env_obs, self._observations)
        return {key: value.copy() for key, value in self._observations.items()}


def seed_list(seed: int | list[int | None] | None, n: int) -> list[int | None]:
    """Per-sub-env seeds of a vector ``reset(seed=...)``: ``seed + i`` for an int, the list itself, or Nones."""
    if seed is None:
        return [None] * n
    if isinstance(seed, int):
        return [seed + i for i in range(n)]
    if len(seed) != n:
        raise ValueError(f"a list of seeds must have num_envs={n} entries, got {len(seed)}")
    return list(seed)
