"""How a training run's hyperparameters act on it: the optimizer with its two parameter groups, the clipped
starting values of an instance, and what a move does to the learning rate, weight decay and augmentation level.

Shared by :class:`~traingym.envs.training_env.TrainingEnv` and the bare-loop benchmark, so the benchmark's
reference does exactly the env's training work.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from traingym.envs.config import LR_BOUNDS, WD_BOUNDS
from traingym.protocol.moves import AUG_LEVELS, LR_FACTOR, WD_FACTOR


def initial_hparams(instance: Mapping[str, Any]) -> tuple[float, float, int]:
    """``(lr, weight_decay, aug_level)`` of an instance, clipped to the env's bounds."""
    return (float(np.clip(instance["lr"], *LR_BOUNDS)), float(np.clip(instance["weight_decay"], *WD_BOUNDS)),
            int(instance["aug_level"]))


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float, optimizer: str, momentum: float,
                   fused_adam: bool = False) -> torch.optim.Optimizer:
    """SGD with momentum or AdamW; weight decay on weight matrices/kernels only (group 0), none on biases/norms."""
    decay, no_decay = [], []
    for param in model.parameters():
        (decay if param.dim() > 1 else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if optimizer == "adam":
        return torch.optim.AdamW(groups, lr=lr, **({"fused": True} if fused_adam else {}))
    return torch.optim.SGD(groups, lr=lr, momentum=momentum)


def moved_hparams(lr: float, weight_decay: float, aug_level: int, move: Sequence[int]) -> tuple[float, float, int]:
    """The hyperparameters after the first three entries of ``move`` (lr x/÷ 2, weight decay x/÷ 3, aug ±1),
    clipped to the env's bounds."""
    d_lr, d_wd, d_aug = move[0], move[1], move[2]
    return (_clip(lr * LR_FACTOR**d_lr, *LR_BOUNDS), _clip(weight_decay * WD_FACTOR**d_wd, *WD_BOUNDS),
            int(_clip(aug_level + d_aug, 0, AUG_LEVELS - 1)))


def _clip(value: float, low: float, high: float) -> float:
    """``np.clip`` for one Python number (a step calls it three times; numpy's scalar overhead dominated)."""
    return float(min(max(value, low), high))


def set_optimizer_hparams(optimizer: torch.optim.Optimizer, lr: float, weight_decay: float) -> None:
    """Write ``lr`` into every parameter group and ``weight_decay`` into the decayed group."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.param_groups[0]["weight_decay"] = weight_decay
