"""TrainGym environments: training a neural network, as a Gymnasium environment.

Importing this module registers the environments::

    import gymnasium as gym
    import traingym.envs  # noqa: F401

    env = gym.make("TrainGym/DigitsMLP-v0")
"""

from gymnasium.envs.registration import register
from traingym.envs.batched.mlp import BATCHED_TASKS
from traingym.envs.config import TrainingEnvConfig
from traingym.envs.custom import CUSTOM_ENV_ID, EXAMPLE_TASK
from traingym.envs.tasks.pathologies import PATCH_GRID
from traingym.envs.tasks.registry import register_task
from traingym.envs.training_env import TrainingEnv
from traingym.envs.wrappers import DiscreteActionWrapper
from traingym.protocol.moves import KNOBS, Move, action_to_move, move_to_action

DEFAULT_HORIZON = TrainingEnvConfig.horizon
"""Episode length of the registered ids (the env config's default horizon)."""

ENV_TASKS: dict[str, str] = {
    "TrainGym/DigitsMLP-v0": "digits_mlp",
    "TrainGym/DigitsCNN-v0": "digits_cnn",
    "TrainGym/MNISTCNN-v0": "mnist_cnn",
    "TrainGym/TabularMLP-v0": "tabular_mlp",
    "TrainGym/ReviewsBERT-v0": "reviews_bert",
    "TrainGym/ReviewsShortcut-v0": "reviews_shortcut",
    "TrainGym/DigitsPathologies-v0": "digits_pathologies",
    "TrainGym/DigitsPatchPathologies-v0": "digits_patch_pathologies",
}
"""Registered environment ids and the task family each one trains."""

ENV_KWARGS: dict[str, dict[str, object]] = {
    "TrainGym/ReviewsBERT-v0": {"optimizer": "adam", "batch_size": 32},
    "TrainGym/ReviewsShortcut-v0": {"optimizer": "adam", "batch_size": 32},
    "TrainGym/DigitsPatchPathologies-v0": {"mask_grid": PATCH_GRID},
}
"""Registration kwargs beyond ``task`` (JSON-able): transformers from scratch train with AdamW, not SGD; the patch
mixture lets the agent choose which grid cell to decorrelate."""

BATCHED_ENV_IDS: tuple[str, ...] = tuple(env_id for env_id, task in ENV_TASKS.items() if task in BATCHED_TASKS)
"""Ids whose ``gym.make_vec`` default (``vector_entry_point``) is
:class:`~traingym.envs.batched.mlp.BatchedTrainingEnv`: all sub-envs' training steps run as one batched
computation. The others vectorize with sync/async."""

TEXT_BATCHED_ENV_IDS: tuple[str, ...] = ("TrainGym/ReviewsBERT-v0", "TrainGym/ReviewsShortcut-v0")
"""Ids whose ``vector_entry_point`` is :class:`~traingym.envs.batched.text.BatchedTextEnv` (training grouped by
architecture)."""

VECTOR_ENTRY_POINT_IDS: tuple[str, ...] = BATCHED_ENV_IDS + TEXT_BATCHED_ENV_IDS
"""Ids with a ``vector_entry_point``: ``gym.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point",
workers=W)`` (:func:`~traingym.envs.batched.workers.make_batched_env`; ``workers`` defaults to the cores)."""

for _env_id, _task in ENV_TASKS.items():
    register(id=_env_id, entry_point="traingym.envs.training_env:TrainingEnv",
             vector_entry_point="traingym.envs.batched.workers:make_batched_env" if _env_id in VECTOR_ENTRY_POINT_IDS
             else None,
             max_episode_steps=DEFAULT_HORIZON, kwargs={"task": _task, **ENV_KWARGS.get(_env_id, {})})

register(id=CUSTOM_ENV_ID, entry_point="traingym.envs.training_env:TrainingEnv",
         max_episode_steps=DEFAULT_HORIZON, kwargs={"task": EXAMPLE_TASK})
"""Your own task family: ``gym.make("TrainGym/Custom-v0", task="my_pkg.tasks:MyFamily")`` (see register_task)."""

__all__ = ["BATCHED_ENV_IDS", "ENV_KWARGS", "ENV_TASKS", "KNOBS", "TEXT_BATCHED_ENV_IDS", "VECTOR_ENTRY_POINT_IDS",
           "DiscreteActionWrapper", "Move", "TrainingEnv", "TrainingEnvConfig", "action_to_move", "move_to_action",
           "register_task"]
