"""The training doctor as a PyTorch Lightning ``Callback``: the same :class:`TrainingDoctor`, driven by the Trainer.

::

    from traingym.doctor.lightning_callback import DoctorCallback   # pip install "traingym[lightning]"

    callback = DoctorCallback(val_data=(x_val, y_val), every=50, policy="advisor_greedy")
    trainer = lightning.pytorch.Trainer(max_steps=1000, callbacks=[callback])
    trainer.fit(module, train_loader)          # callback.doctor.log holds the decisions

At ``on_train_start`` the doctor attaches to the LightningModule (its ``forward`` gives the logits, or pass
``forward``), the Trainer's first optimizer and its first LR scheduler (an LR move scales the scheduler's
``base_lrs`` too). After each *optimizer* step (gradient accumulation: the micro-batches' mean loss) it gets the
loss that ``training_step`` returned (a tensor, or a dict with ``"loss"``); it closes at ``on_train_end``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import nn
from traingym.doctor.doctor import TrainingDoctor


class DoctorCallback(Callback):
    """Runs a :class:`TrainingDoctor` inside ``lightning.pytorch.Trainer`` (see the module docstring).

    Args:
        val_data: the doctor's validation buffer (``(inputs, labels)`` tensors or a loader).
        every: optimizer steps between checks.
        forward: ``(module, inputs) -> logits`` for the validation passes (None: ``module(inputs)``).
        **doctor_kwargs: the other :class:`TrainingDoctor` arguments (``policy``, ``mode``, ``advisor``,
            ``log_path``, ...).
    """

    def __init__(self, val_data: Any, every: int = 50, forward: Callable[[nn.Module, torch.Tensor], torch.Tensor]
                 | None = None, **doctor_kwargs: Any) -> None:
        self.val_data, self.every, self.forward, self.doctor_kwargs = val_data, every, forward, doctor_kwargs
        self.doctor: TrainingDoctor | None = None
        self._losses: list[torch.Tensor] = []
        self._step = 0

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.optimizers:
            raise ValueError("DoctorCallback needs an optimizer (configure_optimizers returned none)")
        configs = trainer.lr_scheduler_configs
        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        self.doctor = TrainingDoctor(pl_module, trainer.optimizers[0], self.val_data, self.every, total_steps=total,
                                     scheduler=configs[0].scheduler if configs else None, forward=self.forward,
                                     **self.doctor_kwargs)
        self._step = trainer.global_step

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if self.doctor is None or not isinstance(loss, torch.Tensor):
            return
        self._losses.append(loss.detach())
        if trainer.global_step == self._step:  # gradient accumulation: no optimizer step yet
            return
        self._step = trainer.global_step
        mean = torch.stack(self._losses).mean()
        self._losses.clear()
        self.doctor.after_step(mean)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.doctor is not None:
            self.doctor.close()
