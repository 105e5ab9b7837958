"""Shared helpers for env tests: record an episode and compare two recordings exactly."""

from __future__ import annotations

import gymnasium as gym
import numpy as np


def rollout(env: gym.Env, seed: int, actions: list[np.ndarray]) -> list:
    """``[(obs, reward, info), ...]`` from ``reset(seed)`` through ``actions`` (stops at the episode's end)."""
    obs, info = env.reset(seed=seed)
    trace = [(obs, 0.0, info)]
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        trace.append((obs, reward, info))
        if terminated or truncated:
            break
    return trace


def same_trace(a: list, b: list) -> bool:
    """Exact equality of two recordings: observations bit for bit, rewards and infos with ==."""
    return len(a) == len(b) and all(
        ra == rb and ia == ib and oa.keys() == ob.keys() and all(np.array_equal(oa[k], ob[k]) for k in oa)
        for (oa, ra, ia), (ob, rb, ib) in zip(a, b))
