"""The reference a TrainGym env step is compared with: a plain PyTorch loop doing the same training work.

The loop itself is written out by hand, so the comparison is against what a user would write: the same model
built by the task family for the same instance, the same optimizer and parameter groups and the same
hyperparameter moves (the env's own :mod:`traingym.envs.hparams` functions, so the two cannot drift apart), the
same K, batch size and augmentation level, and a validation pass over the same validation buffer (loss and
accuracy, one host sync). It does not track training loss or accuracy, log neurons, build observations or call
an advisor: everything TrainGym adds on top is overhead.
"""

from __future__ import annotations

import contextlib
import time
from contextlib import AbstractContextManager
from typing import Any

import torch
import torch.nn.functional as F
from traingym.envs.config import TrainingEnvConfig
from traingym.envs.hparams import initial_hparams, make_optimizer, moved_hparams, set_optimizer_hparams
from traingym.envs.tasks.base import TaskFamily


class BareLoop:
    """One training run of ``instance``; :meth:`step` = K optimizer steps + one validation pass."""

    def __init__(self, task: TaskFamily, instance: dict[str, Any], config: TrainingEnvConfig, seed: int) -> None:
        self.task, self.config = task, config
        device = torch.device(config.device)
        split = task.split(instance, config.val_size)
        self.x_train, self.y_train = split.x_train.to(device), split.y_train.to(device)
        self.x_val, self.y_val = split.x_val.to(device), split.y_val.to(device)
        self.x_test, self.y_test = split.x_test.to(device), split.y_test.to(device)
        self.gen = torch.Generator().manual_seed(seed)
        self.aug_gen = torch.Generator(device=device).manual_seed(seed + 1)
        self.device = device
        self.model = task.build_model(instance, split.n_classes, self.gen).to(device)
        self.lr, self.wd, self.aug = initial_hparams(instance)
        self.optimizer = make_optimizer(self.model, self.lr, self.wd, config.optimizer, config.momentum,
                                        task.fused_adam)
        self.train_s = self.val_s = self.test_s = 0.0
        """Seconds spent in the last step's training steps, validation pass and (at episode end) test pass."""

    def apply_move(self, move: tuple[int, ...]) -> None:
        """The hyperparameter part of a move (the bare loop has no neuron log, so no neuron scaling)."""
        self.lr, self.wd, self.aug = moved_hparams(self.lr, self.wd, self.aug, move)
        set_optimizer_hparams(self.optimizer, self.lr, self.wd)

    def step(self, move: tuple[int, ...], last: bool) -> tuple[float, float]:
        """Apply ``move``, train K steps, validate; on the ``last`` step of an episode also evaluate the test split.

        Returns validation loss and accuracy.
        """
        started = time.perf_counter()
        self.apply_move(move)
        k = self.config.steps_per_action
        b = min(self.config.batch_size, self.x_train.shape[0])
        self.model.train()
        batches = torch.randint(self.x_train.shape[0], (k, b), generator=self.gen).to(self.device)
        with self._training_context():
            for idx in batches:
                xb, yb = self.x_train[idx], self.y_train[idx]
                if self.aug > 0:
                    xb, yb = self.task.augment(xb, yb, self.aug, self.aug_gen)
                loss = F.cross_entropy(self.model(xb), yb)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
        trained = time.perf_counter()
        val_loss, val_acc = self._evaluate(self.x_val, self.y_val)
        validated = time.perf_counter()
        if last:
            self._evaluate(self.x_test, self.y_test)
        self.train_s, self.val_s = trained - started, validated - trained
        self.test_s = time.perf_counter() - validated
        return val_loss, val_acc

    def _training_context(self) -> AbstractContextManager[None]:
        """The family's own setting for training steps (e.g. the dropout RNG of a Hugging Face model)."""
        context = getattr(self.task, "training_context", None)
        return context(self.gen, self.device) if context is not None else contextlib.nullcontext()

    @torch.no_grad()
    def _evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        self.model.eval()
        logits = self.model(x)
        loss, acc = torch.stack([F.cross_entropy(logits, y), (logits.argmax(1) == y).float().mean()]).tolist()
        return loss, acc
