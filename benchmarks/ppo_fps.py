"""Figure ``ppo_fps``: SB3 PPO training frames (env steps) per second on the default env, updates included.

PPO runs with the settings of ``traingym.agents`` for small budgets (``n_steps`` per rollout, batch 64,
10 epochs) on one in-process env. The vector env is wrapped to time its steps, so the same run says how the
time splits: ``env_time_fraction`` is the share spent inside ``env.step`` (the rest is policy inference, rollout
bookkeeping and gradient updates) and ``env_steps_per_s`` the env's own speed during the run.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from benchmarks.timing import rounded
from benchmarks.vec_scaling import make_env


class TimedVecEnv(VecEnvWrapper):
    """Accumulates the wall-clock seconds spent in the wrapped vector env's steps."""

    def __init__(self, venv: VecEnv) -> None:
        super().__init__(venv)
        self.seconds = 0.0
        self._started = 0.0

    def reset(self) -> Any:
        return self.venv.reset()

    def step_async(self, actions: np.ndarray) -> None:
        self._started = time.perf_counter()
        self.venv.step_async(actions)

    def step_wait(self) -> Any:
        result = self.venv.step_wait()
        self.seconds += time.perf_counter() - self._started
        return result


def measure_ppo_fps(env_id: str, env_kwargs: dict[str, Any], *, n_steps: int, total_timesteps: int,
                    seed: int = 0) -> dict[str, Any]:
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    vec = TimedVecEnv(DummyVecEnv([lambda: make_env(env_id, env_kwargs)]))
    vec.seed(seed)
    model = PPO("MultiInputPolicy", vec, n_steps=n_steps, batch_size=min(64, n_steps), n_epochs=10, seed=seed,
                device="cpu")
    started = time.perf_counter()
    model.learn(total_timesteps=total_timesteps)
    elapsed = time.perf_counter() - started
    vec.close()
    return {
        "fps": rounded(model.num_timesteps / elapsed, 2),
        "env_steps_per_s": rounded(model.num_timesteps / vec.seconds, 2),
        "env_time_fraction": rounded(vec.seconds / elapsed),
        "total_timesteps": int(model.num_timesteps),
        "n_steps": n_steps,
        "env_id": env_id,
    }
