"""N MLP training environments whose K optimizer steps run as one batched computation: a Gymnasium vector env.

A tiny target network's env step is dominated by per-op framework overhead, so this vector env holds N ordinary
:class:`TrainingEnv` s and replaces their training steps with one :class:`StackedMLP` computation and their
validation forward passes with one stacked pass; reset, moves, the neuron log's error passes, events, report,
diagnosis and observation are each env's own code, through :class:`TrainingEnv`'s public step phases (its
docstring, "Step phases").

Batches, augmentation, label noise and data splits stay per instance, from each env's own torch Generators, so
the same seeds give the same episodes whatever the grouping or the split between worker processes (tested). Batch
indices are drawn as the single env draws them; augmentation is drawn once for a sub-env's K batches (the single
env draws per batch, K Python calls per sub-env per step): the same distribution, other samples. So episodes
equal N single envs' up to float rounding at K = 1 or without augmentation (tested), and otherwise match them
statistically (final test accuracies under fixed policies, a slow test).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Literal

import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from traingym.envs.batched.stacked_mlp import StackedMLP
from traingym.envs.batched.vector import BatchedVectorEnv
from traingym.envs.monitoring.neuron_log import ValidationPass
from traingym.envs.tasks.networks import MLP
from traingym.envs.training_env import TrainingEnv

Grouping = Literal["none", "width", "architecture"]
GROUPINGS: tuple[str, ...] = ("none", "width", "architecture")
"""How sub-envs share stacks: one stack for all (``none``: padded to the largest network), one per hidden width
(``width``: padded in depth only), one per exact architecture (no padding, more and smaller batched ops)."""
BATCHED_TASKS: tuple[str, ...] = ("digits_mlp", "tabular_mlp", "digits_pathologies", "digits_patch_pathologies")
"""Task families whose target network is an :class:`~traingym.envs.tasks.networks.MLP` (trainable stacked)."""


class BatchedTrainingEnv(BatchedVectorEnv):
    """``num_envs`` :class:`TrainingEnv` s of an MLP family, stepped together.

    Follows Gymnasium 1.x vector conventions (:class:`~traingym.envs.batched.vector.BatchedVectorEnv`).

    ``grouping`` chooses which sub-envs share a stack (see ``GROUPINGS``). Every other keyword argument is a
    :class:`~traingym.envs.config.TrainingEnvConfig` field, as for ``gym.make``; ``max_episode_steps`` truncates
    like ``gym.make``'s ``TimeLimit``.
    """

    def __init__(self, num_envs: int = 1, *, autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
                 grouping: Grouping = "width", max_episode_steps: int | None = None, **kwargs: Any) -> None:
        if not isinstance(num_envs, int) or isinstance(num_envs, bool) or num_envs < 1:
            raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
        if max_episode_steps is not None and (not isinstance(max_episode_steps, int) or max_episode_steps < 1):
            raise ValueError(f"max_episode_steps must be None or an int >= 1, got {max_episode_steps!r}")
        if grouping not in GROUPINGS:
            raise ValueError(f"grouping must be one of {GROUPINGS}, got {grouping!r}")
        self.grouping = grouping
        self.envs = [TrainingEnv(**kwargs) for _ in range(num_envs)]
        config = self.envs[0].config
        if config.task not in BATCHED_TASKS:
            raise ValueError(f"task {config.task!r} has no batched training; batched tasks: {BATCHED_TASKS} "
                             "(use vectorization_mode='sync' or 'async' for the others)")
        self.max_episode_steps = max_episode_steps
        self._init_vector(num_envs, self.envs[0].observation_space, self.envs[0].action_space, autoreset_mode)
        self.device = self.envs[0].device
        self._groups: dict[tuple[int, ...], StackedMLP] = {}
        """One stack per group key (see ``grouping``); empty groups are dropped."""
        self._slots: list[tuple[tuple[int, ...], int] | None] = [None] * num_envs
        """Sub-env -> (group key, row in that group's stack)."""

    def close_extras(self, **kwargs: Any) -> None:
        # getattr: a constructor that rejected its arguments has no envs yet, and __del__ still closes it
        for env in getattr(self, "envs", ()):
            env.close()

    @property
    def stacks(self) -> tuple[StackedMLP, ...]:
        """The current group stacks (one per group key, see ``grouping``): what the K steps run on, for benchmarks
        and tests that look inside."""
        return tuple(self._groups.values())

    # ------------------------------------------------------------------ per sub-env (also used by the SB3 adapter)
    def reset_envs(self, indices: Sequence[int], seeds: Sequence[int | None], options: dict[str, Any] | None
                   ) -> list[tuple[dict[str, np.ndarray], dict[str, Any]]]:
        """Reset each sub-env (its own ``TrainingEnv.reset``) and load its new network into the stack."""
        out = []
        for i, seed in zip(indices, seeds):
            env = self.envs[i]
            obs, info = env.reset(seed=seed, options=options)
            assert env.model is not None
            self._place(i, env.model)  # type: ignore[arg-type]
            self._env_obs[i] = obs
            out.append((obs, info))
        return out

    @property
    def step_threads(self) -> int | None:
        """The sub-envs' ``num_threads``, as their own steps run."""
        return self.envs[0].config.num_threads

    def _step_envs(self, actions: np.ndarray, skip: np.ndarray | None) -> list[tuple | None]:
        """Each env's move, one batched run of the K optimizer steps, then each env's validation and observation."""
        run = [i for i in range(self.num_envs) if skip is None or not skip[i]]
        for i in run:
            env = self.envs[i]
            env.begin_step(actions[i])
            if env.scaled_neurons:  # the move scaled flagged neurons in the module: refresh the stacked copy
                key, row = self._slot(i)
                self._groups[key].load(row, env.model, reset_state=False)  # type: ignore[arg-type]
        results: list[tuple | None] = [None] * self.num_envs
        if not run:
            return results
        per_env = self._training_batches(run)
        envs, outcomes, members = self.envs, [], []
        validation: dict[int, ValidationPass] = {}
        for key, stack in self._groups.items():
            rows = [i for i in range(self.num_envs) if self._slots[i] is not None and self._slots[i][0] == key]
            rows.sort(key=lambda i: self._slot(i)[1])
            if not any(i in per_env for i in rows):
                continue
            x, y = self._group_batches(stack, rows, per_env)
            outcomes.append(stack.train(x, y, [envs[i].lr for i in rows], [envs[i].weight_decay for i in rows]))
            validation.update(self._validation_passes(stack, rows, per_env.keys()))
            members += rows
        outcome = torch.cat(outcomes, 1).tolist()  # one host copy for all groups
        column = {i: c for c, i in enumerate(members)}
        for i in run:
            env = envs[i]
            assert env.model is not None
            key, row = self._slot(i)
            self._groups[key].store(row, env.model)  # type: ignore[arg-type]
            c = column[i]
            mean_loss, accuracy, norm = outcome[0][c], outcome[1][c], outcome[2][c]
            obs, reward, terminated, truncated, info = env.end_step(*env.finish_training(mean_loss, accuracy, norm),
                                                                    validation[i])
            if self.max_episode_steps is not None and env.elapsed_steps >= self.max_episode_steps:
                truncated = True  # as gym.make's TimeLimit
            results[i] = (obs, reward, terminated, truncated, info)
            self._env_obs[i] = obs
        return results

    # ------------------------------------------------------------------ internals
    def _slot(self, i: int) -> tuple[tuple[int, ...], int]:
        slot = self._slots[i]
        if slot is None:
            raise RuntimeError(f"sub-env {i} has not been reset")
        return slot

    def _group_key(self, model: MLP) -> tuple[int, ...]:
        if self.grouping == "width":
            return (max(lin.out_features for lin in model.linears),)
        if self.grouping == "architecture":
            return (len(model.linears), max(lin.out_features for lin in model.linears),
                    model.linears[0].in_features, model.head.out_features)
        return ()

    def _place(self, i: int, model: MLP) -> None:
        """Load sub-env ``i``'s freshly reset network into its group's stack (a fresh optimizer state); a sub-env
        whose new architecture belongs to another group moves there."""
        key = self._group_key(model)
        slot = self._slots[i]
        if slot is not None and slot[0] != key:
            old_key, old_row = slot
            self._groups[old_key].remove_row(old_row)
            for j, other in enumerate(self._slots):
                if other is not None and other[0] == old_key and other[1] > old_row:
                    self._slots[j] = (old_key, other[1] - 1)
            if self._groups[old_key].n == 0:
                del self._groups[old_key]
            slot = None
        if slot is None:
            config = self.envs[i].config
            stack = self._groups.setdefault(key, StackedMLP(0, config.optimizer, config.momentum, self.device))
            slot = self._slots[i] = (key, stack.add_row())
        self._groups[key].load(slot[1], model, reset_state=True)

    def _training_batches(self, run: list[int]) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        """Each running env's K batches, ``(K, B, n_in)`` and ``(K, B)``, from the env's own generators: indices
        drawn as the single env draws them, augmentation drawn once for all K batches (the single env's
        :meth:`~TrainingEnv.augment_batch` on the K * B rows, where the single env calls it per batch: the same
        distribution, other samples, identical at K = 1). One sub-env at a time, not all stacked: a sub-env's
        K * B rows (about 0.8 MB of inputs at K = 50, B = 64) stay in cache through the few passes of its
        augmentation, which stacking all sub-envs first made several times slower on the CPU."""
        per_env: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        for i in run:
            env = self.envs[i]
            x, y = env.training_batches(env.draw_batch_indices())
            x_aug, y_aug = env.augment_batch(x.flatten(0, 1), y.flatten())
            per_env[i] = x_aug.view_as(x), y_aug.view_as(y)
        return per_env

    def _validation_passes(self, stack: StackedMLP, rows: list[int], stepped: Collection[int]
                           ) -> dict[int, ValidationPass]:
        """A group's validation passes as stacked computations: the forward pass of its trained parameters over
        each sub-env's validation buffer (zero padded), then the error pass on each sub-env's first
        ``max_error_samples`` errors, and input relevance on them for the ``stepped`` sub-envs whose own validation
        runs it (:attr:`TrainingEnv.explains_inputs`); sliced into each sub-env's :class:`ValidationPass`, for its
        monitor."""
        splits = [self.envs[i].split for i in rows]
        assert all(split is not None for split in splits)
        sizes = [split.x_val.shape[0] for split in splits]  # type: ignore[union-attr]
        n, v = len(rows), max(sizes)
        x = torch.zeros((n, v, stack.n_in), device=self.device)
        y = torch.zeros((n, v), dtype=torch.int64, device=self.device)
        valid = torch.zeros((n, v), dtype=torch.bool, device=self.device)
        for r, (split, size) in enumerate(zip(splits, sizes)):
            x_val = split.x_val.flatten(1)  # type: ignore[union-attr]
            x[r, :size, : x_val.shape[1]] = x_val
            y[r, :size] = split.y_val  # type: ignore[union-attr]
            valid[r, :size] = True
        logits, hidden = stack.forward(x)
        predicted = logits.argmax(2)
        errors = (predicted != y) & valid
        used = errors & (errors.cumsum(1) <= self.envs[0].config.max_error_samples)  # the first ones, as one env
        # The error pass runs on the used samples only, gathered to the front of each row (most are not errors).
        m = max(1, int(used.sum(1).max()))
        front = torch.argsort((~used).to(torch.uint8), dim=1, stable=True)[:, :m]
        take = [front[..., None].expand(-1, -1, t.shape[2]) for t in (x, hidden[0])]
        hidden_used = [h.gather(1, take[1]) for h in hidden]
        predicted_used, used_front = predicted.gather(1, front), used.gather(1, front)
        importances = stack.error_importances(hidden_used, predicted_used, used_front)
        explain = [r for r, i in enumerate(rows) if i in stepped and self.envs[i].explains_inputs]
        inputs: dict[int, torch.Tensor] = {}
        if explain:
            index = None if len(explain) == len(rows) else torch.tensor(explain, device=self.device)
            # One host copy of what the monitors flag on (a no-op on the CPU).
            relevance = stack.input_relevance(x.gather(1, take[0]), hidden_used, predicted_used, y.gather(1, front),
                                              used_front, rows=index).cpu()
            inputs = dict(zip(explain, relevance))
        importances, any_used = [t.cpu() for t in importances], used.any(1).tolist()
        passes: dict[int, ValidationPass] = {}
        for r, (i, size) in enumerate(zip(rows, sizes)):
            model = self.envs[i].model
            assert isinstance(model, MLP)
            units = [linear.out_features for linear in model.linears]
            n_in = model.linears[0].in_features
            passes[i] = ValidationPass(
                logits[r, :size, : model.head.out_features], [h[r, :size, :u] for h, u in zip(hidden, units)],
                [imp[r, :u] for imp, u in zip(importances, units)],
                inputs[r][:, :n_in] if r in inputs and any_used[r] else None)
        return passes

    def _group_batches(self, stack: StackedMLP, rows: list[int], per_env: dict[int, tuple[torch.Tensor, torch.Tensor]]
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``(K, n, B, n_in)`` and ``y`` ``(K, n, B)`` of one group, zero-padded to the stack's inputs;
        skipped envs get zeros (their slot is reloaded by their reset, so what it trains on does not matter)."""
        sizes = {per_env[i][1].shape[1] for i in rows if i in per_env}
        if len(sizes) > 1:
            raise ValueError(f"batched training needs one batch size per group, got {sorted(sizes)} "
                             "(batch_size exceeds some instance's training set)")
        k = self.envs[0].config.steps_per_action
        b = sizes.pop() if sizes else 1
        x = torch.zeros((k, len(rows), b, stack.n_in), device=self.device)
        y = torch.zeros((k, len(rows), b), dtype=torch.int64, device=self.device)
        for r, i in enumerate(rows):
            if i in per_env:
                xi, yi = per_env[i]
                x[:, r, :, : xi.shape[-1]] = xi.flatten(2)
                y[:, r] = yi
        return x, y

    def __repr__(self) -> str:
        return f"BatchedTrainingEnv({self.envs[0].config.task}, num_envs={self.num_envs})"

