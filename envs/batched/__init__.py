"""N training environments stepped as one batched computation: the step's "K optimizer steps" stage for N target
networks at once, with everything before and after it (moves, validation, monitoring, report, diagnosis,
observation) each sub-env's own :class:`~traingym.envs.training_env.TrainingEnv` code.

The Gymnasium vector API shared by the batched envs is :mod:`~traingym.envs.batched.vector`; the MLP families
train through :mod:`~traingym.envs.batched.mlp` (parameters stacked by :mod:`~traingym.envs.batched.stacked_mlp`),
the reviews families through :mod:`~traingym.envs.batched.text` (:mod:`~traingym.envs.batched.stacked_bert`).
:mod:`~traingym.envs.batched.workers` is the ``vector_entry_point`` of ``gym.make_vec`` (the sub-envs split between
worker processes), :mod:`~traingym.envs.batched.sb3` the Stable-Baselines3 ``VecEnv`` and
:mod:`~traingym.envs.batched.shards` its worker processes. Import them from their modules (this package re-exports
nothing: its modules import :mod:`traingym.envs`, which imports :mod:`~traingym.envs.batched.mlp`).
"""
