"""Stable-Baselines3 ``VecEnv`` over :class:`BatchedTrainingEnv`: batched target training for SB3 agents."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn
from traingym.envs import ENV_KWARGS, ENV_TASKS, VECTOR_ENTRY_POINT_IDS
from traingym.envs.batched.vector import BatchedVectorEnv
from traingym.envs.batched.workers import local_batched_env


class BatchedSB3VecEnv(VecEnv):
    """SB3's vector-env protocol (same-step autoreset, ``terminal_observation`` and ``TimeLimit.truncated`` in the
    step's info, per-env seeds and options applied at the next ``reset()``) over an in-process batched env
    (:class:`~traingym.envs.batched.mlp.BatchedTrainingEnv` or :class:`~traingym.envs.batched.text.BatchedTextEnv`:
    sub-envs in ``env.envs``)."""

    def __init__(self, env: BatchedVectorEnv) -> None:
        self.env = env
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)
        self._actions: np.ndarray | None = None

    def reset(self) -> VecEnvObs:
        for i in range(self.num_envs):
            _, self.reset_infos[i] = self.env.reset_env(i, seed=self._seeds[i], options=self._options[i] or None)
        self._reset_seeds()
        self._reset_options()
        return self.env.observations()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions).reshape(self.num_envs, -1)

    def step_wait(self) -> VecEnvStepReturn:
        assert self._actions is not None, "step_async first"
        results = self.env.step_envs(self._actions)
        rewards = np.zeros(self.num_envs, dtype=np.float32)
        dones = np.zeros(self.num_envs, dtype=np.bool_)
        infos: list[dict[str, Any]] = []
        for i, result in enumerate(results):
            assert result is not None
            obs, reward, terminated, truncated, info = result
            rewards[i], dones[i] = reward, terminated or truncated
            info["TimeLimit.truncated"] = truncated and not terminated
            if dones[i]:
                info["terminal_observation"] = obs
                _, self.reset_infos[i] = self.env.reset_env(i)
            infos.append(info)
        return self.env.observations(), rewards, dones, infos

    def close(self) -> None:
        self.env.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [getattr(self.env.envs[i], attr_name) for i in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        for i in self._get_indices(indices):
            setattr(self.env.envs[i], attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None,
                   **method_kwargs: Any) -> list[Any]:
        return [getattr(self.env.envs[i], method_name)(*method_args, **method_kwargs)
                for i in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]  # sub-envs are bare TrainingEnvs

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None] * self.num_envs


def make_batched_vec_env(env_id: str, num_envs: int, seed: int | None = None, workers: int = 1, **env_kwargs: Any
                         ) -> VecEnv:
    """An SB3 ``VecEnv`` of ``num_envs`` copies of ``env_id`` trained as one batched computation.

    ``env_kwargs`` are :class:`~traingym.envs.config.TrainingEnvConfig` fields (over the id's registered ones);
    ``seed`` seeds sub-env ``i`` with ``seed + i`` at the first ``reset()``, as SB3's ``make_vec_env``.
    ``workers`` > 1 splits the sub-envs between that many processes, each training its share as one batched
    computation (:class:`~traingym.envs.batched.shards.BatchedShardsVecEnv`).
    """
    if env_id not in VECTOR_ENTRY_POINT_IDS:
        raise ValueError(f"env_id must be one of {VECTOR_ENTRY_POINT_IDS} for batched training, got {env_id!r}")
    if not isinstance(workers, int) or not 1 <= workers <= num_envs:
        raise ValueError(f"workers must be an int in [1, num_envs={num_envs}], got {workers!r}")
    vec: VecEnv
    if workers > 1:
        from traingym.envs.batched.shards import BatchedShardsVecEnv

        # Each worker builds its shard with this function (workers=1): passed, not imported back by the shards.
        vec = BatchedShardsVecEnv(env_id, num_envs, workers, make_batched_vec_env, **env_kwargs)
    else:
        kwargs = {"task": ENV_TASKS[env_id], **ENV_KWARGS.get(env_id, {}), **env_kwargs}
        vec = BatchedSB3VecEnv(local_batched_env(num_envs, autoreset_mode=AutoresetMode.SAME_STEP, **kwargs))
    if seed is not None:  # SB3's seed(None) would draw from numpy's global RNG
        vec.seed(seed)
    return vec
