"""The training doctor as a Hugging Face ``TrainerCallback``: the same :class:`TrainingDoctor`, driven by the Trainer.

::

    callback = DoctorCallback(val_data=(val_input_ids, val_labels), every=50, policy="advisor_greedy")
    trainer = Trainer(model=model, args=args, train_dataset=train, callbacks=[callback])
    trainer.train()        # callback.doctor.log holds the decisions

At ``on_train_begin`` the doctor attaches to the Trainer's model, optimizer and LR scheduler (an LR move scales
the scheduler's ``base_lrs`` too, so the schedule continues from the new level). The training loss of each
optimizer step is read from the model's output (``output.loss``) by a forward hook on the top module while the
model trains; the hook is removed at ``on_train_end``. Hidden layers are found automatically (BERT-style encoders:
the FFN intermediate units). ``forward`` turns the validation inputs into logits (default: ``model(x)``), e.g.
``lambda m, x: m(input_ids=x, attention_mask=(x != pad_id).long()).logits``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from traingym.doctor.doctor import TrainingDoctor
from transformers import TrainerCallback


class DoctorCallback(TrainerCallback):
    """Runs a :class:`TrainingDoctor` inside ``transformers.Trainer`` (see the module docstring).

    Args:
        val_data: the doctor's validation buffer (``(inputs, labels)`` tensors or a loader).
        every: optimizer steps between checks.
        forward: ``(model, inputs) -> logits`` for the validation passes (None: ``model(inputs)``).
        **doctor_kwargs: the other :class:`TrainingDoctor` arguments (``policy``, ``mode``, ``advisor``,
            ``log_path``, ...).
    """

    def __init__(self, val_data: Any, every: int = 50, forward: Callable[[nn.Module, torch.Tensor], torch.Tensor]
                 | None = None, **doctor_kwargs: Any) -> None:
        self.val_data, self.every, self.forward, self.doctor_kwargs = val_data, every, forward, doctor_kwargs
        self.doctor: TrainingDoctor | None = None
        self._losses: list[torch.Tensor] = []
        self._handle: Any = None

    def on_train_begin(self, args: Any, state: Any, control: Any, model: nn.Module | None = None,
                       optimizer: torch.optim.Optimizer | None = None, lr_scheduler: Any = None,
                       **kwargs: Any) -> None:
        if model is None or optimizer is None:
            raise ValueError("DoctorCallback needs the Trainer's model and optimizer at on_train_begin")
        total = int(state.max_steps) if getattr(state, "max_steps", 0) else None
        self.doctor = TrainingDoctor(model, optimizer, self.val_data, self.every, total_steps=total,
                                     scheduler=lr_scheduler, forward=self.forward, **self.doctor_kwargs)
        self._handle = model.register_forward_hook(self._record_loss)

    def _record_loss(self, module: nn.Module, inputs: Any, output: Any) -> None:
        loss = getattr(output, "loss", None)
        if module.training and isinstance(loss, torch.Tensor):
            self._losses.append(loss.detach())

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.doctor is None or not self._losses:
            return
        loss = torch.stack(self._losses).mean()  # the micro-batches of this optimizer step
        self._losses.clear()
        self.doctor.after_step(loss)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        if self.doctor is not None:
            self.doctor.close()
