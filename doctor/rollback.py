"""Rollback on a broken run: the model and optimizer state of the last healthy check, restored when a run breaks.

A run that breaks between two checks cannot be steered back by a move: after a divergence (NaN or exploding loss,
runaway weights) its weights are gone; after a collapse (every unit of a hidden layer dead: no gradient reaches
the layers below it any more, typically after a too-large LR step) gradient descent cannot revive it. The doctor
keeps one in-memory copy of the model's and the optimizer's state at each healthy check; when the run breaks it
restores that copy but keeps the hyperparameters the run had when it broke, then halves the learning rate (the
env's LR move), so a run that breaks again walks the LR down instead of retrying it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from traingym.doctor.optim import apply_hparam_move, optimizer_hparams

HPARAM_KEYS = ("lr", "weight_decay")
"""Param-group entries that the restore keeps at their current values (the moves own them)."""


@dataclass
class Rollback:
    """What a restore did, for the decision log and the human's evidence."""

    reason: str
    """``diverged`` or ``dead_layer``."""
    restored_check: int
    """The check whose state was restored."""
    optimizer_step: int
    """The optimizer step of that check."""
    lr_at_divergence: float
    """The LR when the run broke (diverged or collapsed)."""
    lr_after: float
    """The LR after the restore: half of ``lr_at_divergence`` (before the policy's own move)."""

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


class HealthySnapshot:
    """One copy (on the model's device) of the model's and optimizer's state at the last healthy check."""

    def __init__(self) -> None:
        self._state: tuple[dict[str, Any], dict[str, Any], int, int] | None = None

    @property
    def available(self) -> bool:
        return self._state is not None

    def save(self, model: nn.Module, optimizer: torch.optim.Optimizer, check: int, optimizer_step: int) -> None:
        with torch.no_grad():
            self._state = (copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict()), check,
                           optimizer_step)

    def restore(self, model: nn.Module, optimizer: torch.optim.Optimizer, reason: str, scheduler: Any = None
                ) -> Rollback:
        """Load the copy, keep the current LR / weight decay, then halve the LR."""
        if self._state is None:
            raise RuntimeError("no healthy snapshot to restore")
        model_state, optimizer_state, check, step = self._state
        current = [{k: g[k] for k in HPARAM_KEYS if k in g} for g in optimizer.param_groups]
        lr_at_divergence = optimizer_hparams(optimizer)[0]
        model.load_state_dict(model_state)
        optimizer.load_state_dict(copy.deepcopy(optimizer_state))
        for group, values in zip(optimizer.param_groups, current, strict=True):
            group.update(values)
        apply_hparam_move(optimizer, -1, 0, scheduler)
        return Rollback(reason, check, step, lr_at_divergence, optimizer_hparams(optimizer)[0])
