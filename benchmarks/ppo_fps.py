"""Figure ``ppo_fps``: SB3 PPO training frames (env steps) per second on the default env, updates included.

PPO runs with the settings of ``traingym.agents`` for small budgets (``n_steps`` per rollout, batch 64,
10 epochs) on one in-process env. ``env_steps_per_s`` is the same env stepped with random actions just
before, so ``ppo_vs_env`` says what fraction of the env's speed survives the agent's inference and updates.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from benchmarks.timing import rounded
from benchmarks.vec_scaling import make_env


def measure_ppo_fps(env_id: str, env_kwargs: dict[str, Any], *, n_steps: int, total_timesteps: int,
                    seed: int = 0) -> dict[str, Any]:
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    vec = DummyVecEnv([lambda: make_env(env_id, env_kwargs)])
    vec.seed(seed)
    vec.reset()
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    for _ in range(n_steps):
        vec.step(rng.integers(0, 3, size=(1, 4)))
    env_sps = n_steps / (time.perf_counter() - started)
    model = PPO("MultiInputPolicy", vec, n_steps=n_steps, batch_size=min(64, n_steps), n_epochs=10, seed=seed,
                device="cpu")
    started = time.perf_counter()
    model.learn(total_timesteps=total_timesteps)
    elapsed = time.perf_counter() - started
    vec.close()
    fps = model.num_timesteps / elapsed
    return {
        "fps": rounded(fps, 2),
        "env_steps_per_s": rounded(env_sps, 2),
        "ppo_vs_env": rounded(fps / env_sps),
        "total_timesteps": int(model.num_timesteps),
        "n_steps": n_steps,
        "env_id": env_id,
    }
