"""The arguments every pathology-mixture experiment shares, checked in one place."""

from __future__ import annotations

import gymnasium as gym
from traingym.envs.tasks.base import TEST_SET_SIZE
from traingym.protocol.checks import check_range


def check_mixture_args(env: str, episodes: int) -> None:
    """Raise ValueError unless ``env`` is a registered id and ``episodes`` in [1, TEST_SET_SIZE]."""
    import traingym.envs  # noqa: F401  (registers the ids)

    if env not in gym.registry:
        raise ValueError(f"--env must be a registered id, got {env!r}")
    check_range("--episodes", episodes, 1, TEST_SET_SIZE, integer=True)
