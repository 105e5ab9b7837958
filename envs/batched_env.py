"""N MLP training environments whose K optimizer steps run as one batched computation: a Gymnasium vector env.

A tiny target network's env step is dominated by per-op framework overhead in its K training steps, so this
vector env holds N ordinary :class:`TrainingEnv` s and replaces only their training steps with one
:class:`StackedMLP` computation; reset, moves, validation, neuron log, events, report, diagnosis and observation
are each env's own code. Batches, augmentation, label noise and data splits stay per instance (each env's own
torch Generators, drawn exactly as the single env draws them), so the same seeds give the same episodes as N
single envs up to float rounding (tested).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array
from traingym.envs.stacked_mlp import StackedMLP
from traingym.envs.training_env import TrainingEnv

BATCHED_TASKS: tuple[str, ...] = ("digits_mlp", "tabular_mlp")
"""Task families whose target network is an :class:`~traingym.envs.tasks.networks.MLP` (trainable stacked)."""


class BatchedTrainingEnv(VectorEnv):
    """``num_envs`` :class:`TrainingEnv` s of an MLP family, stepped together.

    Follows Gymnasium 1.x vector conventions: batched ``Dict`` observations, ``info`` as a dict of arrays with
    ``_key`` masks, ``reset(seed=int)`` seeds sub-env ``i`` with ``seed + i``, ``options={"reset_mask": ...}``
    resets a subset, and the autoreset mode (``next_step`` by default, as ``SyncVectorEnv``; ``same_step`` puts
    ``final_obs`` / ``final_info`` in ``info``) is in ``metadata["autoreset_mode"]``.

    Every keyword argument is a :class:`~traingym.envs.config.TrainingEnvConfig` field, as for ``gym.make``;
    ``max_episode_steps`` truncates like ``gym.make``'s ``TimeLimit``.
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 1, *, autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
                 max_episode_steps: int | None = None, **kwargs: Any) -> None:
        if not isinstance(num_envs, int) or isinstance(num_envs, bool) or num_envs < 1:
            raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
        if max_episode_steps is not None and (not isinstance(max_episode_steps, int) or max_episode_steps < 1):
            raise ValueError(f"max_episode_steps must be None or an int >= 1, got {max_episode_steps!r}")
        self.autoreset_mode = AutoresetMode(autoreset_mode)
        if self.autoreset_mode == AutoresetMode.DISABLED:
            raise ValueError("autoreset_mode must be 'NextStep' or 'SameStep'")
        self.envs = [TrainingEnv(**kwargs) for _ in range(num_envs)]
        config = self.envs[0].config
        if config.task not in BATCHED_TASKS:
            raise ValueError(f"task {config.task!r} has no batched training; batched tasks: {BATCHED_TASKS} "
                             "(use vectorization_mode='sync' or 'async' for the others)")
        self.num_envs = num_envs
        self.max_episode_steps = max_episode_steps
        self.metadata = {**self.metadata, "autoreset_mode": self.autoreset_mode}
        self.render_mode = None
        self.single_observation_space = self.envs[0].observation_space
        self.single_action_space = self.envs[0].action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.device = self.envs[0].device
        self._stack = StackedMLP(num_envs, config.optimizer, config.momentum, self.device)
        self._observations = create_empty_array(self.single_observation_space, n=num_envs, fn=np.zeros)
        self._env_obs: list[Any] = [None] * num_envs
        self._autoreset = np.zeros(num_envs, dtype=np.bool_)
        self.closed = False

    # ------------------------------------------------------------------ gym vector API
    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed if isinstance(seed, int) else None)
        seeds = _seed_list(seed, self.num_envs)
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        if mask is None:
            mask = np.ones(self.num_envs, dtype=np.bool_)
        elif not (isinstance(mask, np.ndarray) and mask.dtype == np.bool_ and mask.shape == (self.num_envs,)):
            raise ValueError(f"options['reset_mask'] must be a bool array of shape ({self.num_envs},), got {mask!r}")
        infos: dict[str, Any] = {}
        for i in np.flatnonzero(mask):
            self._env_obs[i], info = self.reset_env(int(i), seed=seeds[i], options=options or None)
            infos = self._add_info(infos, info, int(i))
            self._autoreset[i] = False
        return self._batched_obs(), infos

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
        infos: dict[str, Any] = {}
        for i, result in enumerate(results):
            if result is None:  # next-step autoreset: this step resets the sub-env
                self._env_obs[i], info = self.reset_env(i)
            else:
                self._env_obs[i], rewards[i], terminations[i], truncations[i], info = result
                if self.autoreset_mode == AutoresetMode.SAME_STEP and (terminations[i] or truncations[i]):
                    infos = self._add_info(infos, {"final_obs": self._env_obs[i], "final_info": info}, i)
                    self._env_obs[i], info = self.reset_env(i)
            infos = self._add_info(infos, info, i)
        self._autoreset = terminations | truncations
        return self._batched_obs(), rewards, terminations, truncations, infos

    def close_extras(self, **kwargs: Any) -> None:
        for env in self.envs:
            env.close()

    # ------------------------------------------------------------------ per sub-env (also used by the SB3 adapter)
    def reset_env(self, i: int, *, seed: int | None = None, options: dict[str, Any] | None = None
                  ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Reset sub-env ``i`` (its own ``TrainingEnv.reset``) and load its new network into the stack."""
        env = self.envs[i]
        obs, info = env.reset(seed=seed, options=options)
        assert env._model is not None
        self._stack.load(i, env._model, reset_state=True)  # type: ignore[arg-type]
        return obs, info

    def step_envs(self, actions: np.ndarray, skip: np.ndarray | None = None) -> list[tuple | None]:
        """One env step of every sub-env not in ``skip``: each env's move, one batched run of the K optimizer
        steps, then each env's validation and observation. Returns each env's ``step`` tuple (None if skipped);
        no autoreset."""
        run = [i for i in range(self.num_envs) if skip is None or not skip[i]]
        for i in run:
            env = self.envs[i]
            env._begin_step(actions[i])
            if env._scaled:  # the move scaled flagged neurons in the module: refresh the stacked copy
                self._stack.load(i, env._model, reset_state=False)  # type: ignore[arg-type]
        results: list[tuple | None] = [None] * self.num_envs
        if not run:
            return results
        x, y = self._training_batches(run)
        stack, envs = self._stack, self.envs
        outcome = stack.train(x, y, [e._lr for e in envs], [e._wd for e in envs]).tolist()  # one host copy
        for i in run:
            env = envs[i]
            assert env._model is not None
            stack.store(i, env._model)  # type: ignore[arg-type]
            mean_loss, accuracy, norm = outcome[0][i], outcome[1][i], outcome[2][i]
            obs, reward, terminated, truncated, info = env._end_step(*env._training_outcome(mean_loss, accuracy, norm))
            if self.max_episode_steps is not None and env._t >= self.max_episode_steps:
                truncated = True  # as gym.make's TimeLimit
            results[i] = (obs, reward, terminated, truncated, info)
        return results

    # ------------------------------------------------------------------ internals
    def _training_batches(self, run: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``(K, N, B, n_in)`` and ``y`` ``(K, N, B)``: each running env's K batches (drawn and augmented by
        the env itself, in its own order), zero-padded to the stack's inputs; skipped envs get zeros (their slot is
        reloaded by their reset, so what it trains on does not matter)."""
        config = self.envs[0].config
        k, n_in = config.steps_per_action, self._stack.n_in
        per_env: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        augmented: list[int] = []
        for i in run:
            env = self.envs[i]
            assert env._split is not None
            batches = env._draw_batches()
            per_env[i] = env._split.x_train[batches], env._split.y_train[batches]
            if env._aug > 0:
                augmented.append(i)
        if augmented:
            # One batched augmentation of every augmented env's K batches; each env's generator draws its K
            # batches' randomness in step order, as the single env's K calls of ``augment`` do.
            envs = [self.envs[i] for i in augmented]
            x_aug, y_aug = self.envs[0].task.augment_batches(
                torch.cat([per_env[i][0] for i in augmented]), torch.cat([per_env[i][1] for i in augmented]),
                [e._aug for e in envs for _ in range(k)], [e._aug_gen for e in envs for _ in range(k)])
            for j, i in enumerate(augmented):
                per_env[i] = x_aug[j * k: (j + 1) * k], y_aug[j * k: (j + 1) * k]
        sizes = {y.shape[1] for _, y in per_env.values()}
        if len(sizes) > 1:
            raise ValueError(f"batched training needs one batch size for all envs, got {sorted(sizes)} "
                             "(batch_size exceeds some instance's training set)")
        b = sizes.pop()
        x = torch.zeros((k, self.num_envs, b, n_in), device=self.device)
        y = torch.zeros((k, self.num_envs, b), dtype=torch.int64, device=self.device)
        for i, (xi, yi) in per_env.items():
            x[:, i, :, : xi.shape[-1]] = xi.flatten(2)
            y[:, i] = yi
        return x, y

    def _batched_obs(self) -> dict[str, np.ndarray]:
        self._observations = concatenate(self.single_observation_space, self._env_obs, self._observations)
        return {key: value.copy() for key, value in self._observations.items()}

    def __repr__(self) -> str:
        return f"BatchedTrainingEnv({self.envs[0].config.task}, num_envs={self.num_envs})"


def _seed_list(seed: int | list[int | None] | None, n: int) -> list[int | None]:
    if seed is None:
        return [None] * n
    if isinstance(seed, int):
        return [seed + i for i in range(n)]
    if len(seed) != n:
        raise ValueError(f"a list of seeds must have num_envs={n} entries, got {len(seed)}")
    return list(seed)
