"""N review-BERT training environments (``reviews_bert``, ``reviews_shortcut``) whose K training steps run as one
grouped computation per architecture: the text family's Gymnasium vector env.

Each sub-env is an ordinary :class:`~traingym.envs.training_env.TrainingEnv`, stepped through its public step
phases (its docstring, "Step phases"); only its K optimizer steps' forward and backward passes are replaced, by
one :class:`~traingym.envs.batched.stacked_bert.StackedReviewBert` computation per architecture group (1-2 layers
x hidden 32/64 in the instance range: up to four groups). What stays per sub-env is what is per episode or per
run: its batches and augmentation (its own generators, drawn as the single env draws them), its dropout masks (a
generator seeded as the single env seeds torch's global RNG, so the masks are the single env's on the CPU), its
own fused AdamW step, and the env's validation, neuron log, events, report and observation.

## Equivalence with the single env
On the CPU the first step's observation agrees with the single env's to float rounding (<= 1e-5, tested): same
batches, same masks, same optimizer; only the grouped matmuls round differently (~1e-8 in the gradients). Rounding
differences grow over an episode, so beyond the first step equivalence is statistical: the same fixed policies on
the same held-out instances reach the same final test accuracy on average (slow test).

## Token relevance cadence
The sub-envs' token relevance runs on the cadence of :class:`~traingym.envs.monitoring.token_monitor.RelevanceCadence`:
every step while augmentation is on (it masks the flagged tokens) or the flagged tokens changed; with augmentation
off and stable flags, every 2nd and then every 4th step.

## Determinism
Sub-env ``i``'s episode depends only on its seed and actions: its randomness comes from its own generators, and
no member's arithmetic reads another member's data (grouped matmuls are independent per member). So the same
seeds give the same episodes whichever sub-envs share a group or a worker process (tested exactly).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from traingym.envs.batched.stacked_bert import ArchitectureKey, StackedReviewBert, architecture_key, dropout_masks
from traingym.envs.batched.vector import BatchedVectorEnv, StepResult
from traingym.envs.monitoring.token_monitor import RelevanceCadence
from traingym.envs.tasks.reviews_model import ReviewClassifier, training_seed
from traingym.envs.training_env import TrainingEnv

TEXT_TASKS: tuple[str, ...] = ("reviews_bert", "reviews_shortcut")
"""Task families whose target network is a :class:`~traingym.envs.tasks.reviews_model.ReviewClassifier`."""


class BatchedTextEnv(BatchedVectorEnv):
    """``num_envs`` :class:`TrainingEnv` s of a reviews family, their training steps grouped by architecture.

    Gymnasium vector conventions as :class:`~traingym.envs.batched.vector.BatchedVectorEnv`. Every other keyword
    argument is a :class:`~traingym.envs.config.TrainingEnvConfig` field, as for ``gym.make``;
    ``max_episode_steps`` truncates like ``gym.make``'s ``TimeLimit``. ``relevance_cadence=False`` runs token
    relevance every step, as the single env.
    """

    def __init__(self, num_envs: int = 1, *, autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
                 max_episode_steps: int | None = None, relevance_cadence: bool = True, **kwargs: Any) -> None:
        if not isinstance(num_envs, int) or isinstance(num_envs, bool) or num_envs < 1:
            raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
        if max_episode_steps is not None and (not isinstance(max_episode_steps, int) or max_episode_steps < 1):
            raise ValueError(f"max_episode_steps must be None or an int >= 1, got {max_episode_steps!r}")
        self.envs = [TrainingEnv(**kwargs) for _ in range(num_envs)]
        config = self.envs[0].config
        if config.task not in TEXT_TASKS:
            raise ValueError(f"task {config.task!r} is not a text task; BatchedTextEnv trains {TEXT_TASKS}")
        self.max_episode_steps = max_episode_steps
        self._init_vector(num_envs, self.envs[0].observation_space, self.envs[0].action_space, autoreset_mode)
        self.device = self.envs[0].device
        if relevance_cadence:
            for env in self.envs:
                if env.token_relevance is not None:  # the flagged tokens act while augmentation masks them
                    env.token_relevance.cadence = RelevanceCadence(acting=lambda env=env: env.aug_level > 0)
        self._groups: dict[ArchitectureKey, StackedReviewBert] = {}
        """One stack per architecture; members in sub-env order."""

    def close_extras(self, **kwargs: Any) -> None:
        for env in getattr(self, "envs", ()):
            env.close()

    # ------------------------------------------------------------------ the two primitives
    def reset_envs(self, indices: Sequence[int], seeds: Sequence[int | None], options: dict[str, Any] | None
                   ) -> list[tuple[dict[str, np.ndarray], dict[str, Any]]]:
        """Each sub-env's own ``reset``; then the groups are restacked around the new networks."""
        out = []
        for i, seed in zip(indices, seeds):
            obs, info = self.envs[i].reset(seed=seed, options=options)
            self._env_obs[i] = obs
            out.append((obs, info))
        if out:
            self._regroup()
        return out

    @property
    def step_threads(self) -> int | None:
        """The sub-envs' ``num_threads``, as their own steps run."""
        return self.envs[0].config.num_threads

    def _step_envs(self, actions: np.ndarray, skip: np.ndarray | None) -> list[StepResult | None]:
        """Each running sub-env's move, the grouped K training steps, then each one's validation and observation."""
        run = [i for i in range(self.num_envs) if skip is None or not skip[i]]
        for i in run:
            self.envs[i].begin_step(actions[i])
        results: list[StepResult | None] = [None] * self.num_envs
        if not run:
            return results
        outcomes = self.train_steps(run)
        for i in run:
            env = self.envs[i]
            obs, reward, terminated, truncated, info = env.end_step(*env.finish_training(*outcomes[i]))
            if self.max_episode_steps is not None and env.elapsed_steps >= self.max_episode_steps:
                truncated = True  # as gym.make's TimeLimit
            results[i] = (obs, reward, terminated, truncated, info)
            self._env_obs[i] = obs
        return results

    # ------------------------------------------------------------------ internals
    def _model(self, i: int) -> ReviewClassifier:
        model = self.envs[i].model
        if not isinstance(model, ReviewClassifier):
            raise RuntimeError(f"sub-env {i} has not been reset")
        return model

    def _regroup(self) -> None:
        """Stack every reset sub-env's network with the others of its architecture (sub-env order)."""
        members: dict[ArchitectureKey, list[ReviewClassifier]] = {}
        for env in self.envs:
            if isinstance(env.model, ReviewClassifier):
                members.setdefault(architecture_key(env.model), []).append(env.model)
        groups = {}
        for key, models in members.items():
            group = self._groups.get(key) or StackedReviewBert(models[0].hf_model.config)
            if [id(m) for m in group.members] != [id(m) for m in models]:
                group.set_members(models)
            groups[key] = group
        self._groups = groups

    def train_steps(self, run: list[int]) -> dict[int, tuple[float, float, float]]:
        """The K training steps of the sub-envs ``run``, grouped (each one's ``TrainingEnv.train_steps``); returns
        each one's mean loss, accuracy and weight norm, for its ``finish_training``."""
        k = self.envs[0].config.steps_per_action
        batches: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        generators: dict[int, torch.Generator] = {}
        for i in run:
            env = self.envs[i]
            x_all, y_all = env.training_batches(env.draw_batch_indices())  # as TrainingEnv.train_steps
            # As TrainingEnv.train_steps' training_context: one draw from the env's generator seeds the dropout RNG.
            generators[i] = torch.Generator(device=self.device).manual_seed(training_seed(env.torch_generator))
            pairs = [env.augment_batch(xb, yb) for xb, yb in zip(x_all, y_all)]
            batches[i] = torch.stack([x for x, _ in pairs]), torch.stack([y for _, y in pairs])
        position = {id(self._model(i)): i for i in range(self.num_envs)
                    if isinstance(self.envs[i].model, ReviewClassifier)}
        sums: dict[int, list[torch.Tensor]] = {}
        for group in self._groups.values():
            rows = [position[id(m)] for m in group.members]
            active = [i for i in rows if i in batches]
            if not active:
                continue
            first = batches[active[0]]
            x = torch.stack([batches[i][0] if i in batches else first[0] for i in rows], 1)  # (K, n, B, L)
            y = torch.stack([batches[i][1] if i in batches else first[1] for i in rows], 1)
            gens = [generators.get(i) for i in rows]
            optimizers = [self.envs[i].optimizer for i in active]
            loss_sum = torch.zeros(len(rows), device=self.device)
            correct = torch.zeros(len(rows), dtype=torch.int64, device=self.device)
            for step in range(k):
                masks = dropout_masks(group.config, x.shape[2], x.shape[3], gens, self.device, group.mask_bits)
                losses, hits = group.loss_and_backward(x[step], y[step], masks)
                for optimizer in optimizers:
                    optimizer.step()
                loss_sum += losses
                correct += hits
            for r, i in enumerate(rows):
                if i in batches:
                    sums[i] = [loss_sum[r], correct[r]]
        out = {}
        for i in run:
            env, model = self.envs[i], self._model(i)
            with torch.no_grad():
                norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(list(model.parameters()))))
                loss, correct = sums[i]
                n_samples = batches[i][1].numel()
                mean_loss, accuracy, weight_norm = torch.stack(
                    [loss / k, correct.float() / n_samples, norm]).tolist()
            out[i] = (mean_loss, accuracy, weight_norm)
        return out

    def __repr__(self) -> str:
        return f"BatchedTextEnv({self.envs[0].config.task}, num_envs={self.num_envs})"
