"""``TrainGym/Custom-v0``: a :class:`~traingym.envs.training_env.TrainingEnv` on a task family of your own.

::

    register_task("my_task", MyFamily)                            # this process only
    env = gym.make("TrainGym/Custom-v0", task="my_task")
    env = gym.make("TrainGym/Custom-v0", task="my_pkg.tasks:MyFamily")   # any process (subprocess vec envs)

Without ``task`` it trains the worked example (:mod:`traingym.envs.tasks.custom_example`). The
family is checked against the task contract (:mod:`traingym.envs.tasks.contract`) at construction.
"""

from __future__ import annotations

CUSTOM_ENV_ID = "TrainGym/Custom-v0"
EXAMPLE_TASK = "traingym.envs.tasks.custom_example:BlobsFamily"
"""The default task of ``TrainGym/Custom-v0``: the worked example of docs/doctor.md."""


def check_task_option(env_id: str, task: str | None) -> None:
    """Validate the ``--task`` of an entry point (train_agent.py, evaluate, ablate) before anything runs: only with
    ``TrainGym/Custom-v0``, a ``module:Class`` family that imports and keeps the task contract.

    Raises:
        ValueError: one message naming what is wrong.
    """
    if task is None:
        return
    from traingym.envs.tasks.registry import check_task_spec

    if env_id != CUSTOM_ENV_ID:
        raise ValueError(f"--task picks the family of --env {CUSTOM_ENV_ID}; got --env {env_id}")
    check_task_spec(task)
