"""Wrappers for agents that need a different action space."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class DiscreteActionWrapper(gym.ActionWrapper):
    """Flatten ``MultiDiscrete([3, 3, 3, 3])`` to ``Discrete(81)`` (for DQN), and any ``MultiDiscrete(nvec)`` to
    ``Discrete(prod(nvec))`` (``mask_grid`` adds a cell entry: ``Discrete(81 * (G^2 + 1))``).

    Discrete action ``a`` is the mixed-radix number whose digits, most significant first, are the sub-actions in
    knob order (then the cell); with four knobs ``a = 40`` (all ones) keeps every knob.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        if not isinstance(env.action_space, spaces.MultiDiscrete):
            raise ValueError(f"DiscreteActionWrapper needs a MultiDiscrete action space, got {env.action_space}")
        self._nvec = np.asarray(env.action_space.nvec, dtype=np.int64)
        self.action_space = spaces.Discrete(int(np.prod(self._nvec)))

    def action(self, action: int | np.integer | np.ndarray) -> np.ndarray:
        value = np.asarray(action)
        if value.size != 1 or value.dtype.kind not in "iuf" or not float(value.reshape(-1)[0]).is_integer():
            # no silent int(1.5) == 1, no int("a") errors
            raise ValueError(f"action must be one integer in [0, {self.action_space.n - 1}], got {action!r}")
        index = int(value.reshape(-1)[0])
        if not 0 <= index < self.action_space.n:
            raise ValueError(f"action must be in [0, {self.action_space.n - 1}], got {index}")
        return np.asarray(np.unravel_index(index, self._nvec), dtype=np.int64)

    def reverse_action(self, action: np.ndarray) -> int:
        return int(np.ravel_multi_index(np.asarray(action, dtype=np.int64), self._nvec))
