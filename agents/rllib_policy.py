"""A trained ``--backend rllib`` agent as an evaluation policy: its RLModule, loaded from the run's checkpoint.

Split from :mod:`traingym.agents.rllib_backend` (training) so that loading a policy never imports the training code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModule
from ray.rllib.utils.numpy import flatten_inputs_to_1d_tensor
from traingym.agents.observation_spec import ObservationSpec

MODEL_DIR = "rllib_model"
"""The final algorithm checkpoint inside the run directory (the evaluated agent)."""
MODULE_PATH = Path("learner_group", "learner", "rl_module", "default_policy")
"""The trained RLModule inside an algorithm checkpoint."""


class RLlibPolicy:
    """A trained RLlib RLModule as an evaluation policy (:class:`traingym.agents.policies.Policy`): the ``Dict``
    observation is flattened by ``flatten_inputs_to_1d_tensor``, the function RLlib's ``FlattenObservations``
    connector applies in training, then ``forward_inference`` gives the action distribution's inputs."""

    discrete_actions = False

    def __init__(self, module: RLModule, observation: ObservationSpec) -> None:
        self.module = module
        self.module.eval()
        self.action_dist = module.get_inference_action_dist_cls()
        self.observation = observation
        self.env_overrides = observation.env_kwargs()

    @staticmethod
    def flatten(observation: dict[str, np.ndarray]) -> np.ndarray:
        """One float32 vector in RLlib's order (dm-tree flattens a dict by sorted keys, as gymnasium's Dict)."""
        spaces = {k: gym.spaces.Box(-np.inf, np.inf, np.shape(v), np.float32) for k, v in observation.items()}
        return np.asarray(flatten_inputs_to_1d_tensor(observation, spaces, batch_axis=False), dtype=np.float32)

    def predict(self, observation: dict[str, np.ndarray], state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[np.ndarray, Any]:
        batch = {Columns.OBS: torch.as_tensor(self.flatten(observation)[None])}
        with torch.no_grad():
            logits = self.module.forward_inference(batch)[Columns.ACTION_DIST_INPUTS]
        dist = self.action_dist.from_logits(logits)
        action = (dist.to_deterministic() if deterministic else dist).sample()
        return np.asarray(action.numpy()[0], dtype=np.int64), state


def load_rllib_policy(path: Path, config: dict[str, Any]) -> RLlibPolicy:
    """The RLModule of a ``--backend rllib`` run (its directory or its ``rllib_model`` checkpoint) for evaluation.

    RLlib checkpoints are pickles: load only runs you trust (as any RLlib checkpoint)."""
    checkpoint = path / MODEL_DIR if (path / MODEL_DIR).is_dir() else path
    module_dir = checkpoint / MODULE_PATH
    if not module_dir.is_dir():
        raise FileNotFoundError(f"no RLlib checkpoint at {checkpoint} ({MODULE_PATH} missing)")
    module = RLModule.from_checkpoint(str(module_dir.resolve()))
    return RLlibPolicy(module, ObservationSpec.from_run_config(config))
