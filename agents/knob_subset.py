"""An agent that moves only some of the knobs: its action space covers those, the others always keep.

Used for agents trained with ``train_agent.py --knobs``: the env and the baselines are unchanged (every policy still
acts on the env's ``MultiDiscrete([3, 3, 3, 3])``, or ``[3, 3, 3, 3, G^2 + 1]`` with ``mask_grid``, whose cell entry
the agent keeps); only the knobs the agent may move shrink.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn
from traingym.protocol.moves import KNOBS, expand_actions, knob_indices


class KnobSubsetVecEnv(VecEnvWrapper):
    """A VecEnv whose action space is ``MultiDiscrete([3] * len(knobs))`` (then the env's entries after the knobs,
    ``mask_grid``'s cell); the wrapped env gets the full action with every other knob kept."""

    def __init__(self, venv: VecEnv, knobs: Sequence[str]) -> None:
        self.indices = knob_indices(knobs)
        after_knobs = [int(n) for n in np.asarray(venv.action_space.nvec)[len(KNOBS):]]  # mask_grid's cell
        super().__init__(venv, action_space=spaces.MultiDiscrete([3] * len(self.indices) + after_knobs))

    def step_async(self, actions: np.ndarray) -> None:
        self.venv.step_async(expand_actions(actions, self.indices))

    def step_wait(self) -> VecEnvStepReturn:
        return self.venv.step_wait()

    def reset(self) -> VecEnvObs:
        return self.venv.reset()
