"""A move's learning-rate and weight-decay change on any torch optimizer, with the env's factors and bounds.

Every parameter group is scaled by the same factor (``LR_FACTOR`` / ``WD_FACTOR`` of :mod:`traingym.protocol.moves`)
and clipped to the env's bounds, so groups keep their ratios (e.g. a lower LR for an embedding group). Weight decay
changes only groups whose weight decay is > 0 (groups the user excluded from decay, such as biases and norms, stay
at 0). An LR scheduler that recomputes ``group["lr"]`` from its ``base_lrs`` (Hugging Face's schedules, LambdaLR)
gets its base values scaled too, so the change survives the scheduler's next step.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from traingym.envs.config import LR_BOUNDS, WD_BOUNDS
from traingym.protocol.moves import LR_FACTOR, WD_FACTOR


def apply_hparam_move(optimizer: torch.optim.Optimizer, d_lr: int, d_wd: int, scheduler: Any = None) -> None:
    """Multiply every group's LR by ``LR_FACTOR ** d_lr`` and every decayed group's weight decay by
    ``WD_FACTOR ** d_wd``, clipped to the env's bounds."""
    if d_lr:
        for group in optimizer.param_groups:
            group["lr"] = _scaled(group["lr"], LR_FACTOR**d_lr, LR_BOUNDS)
        base_lrs = getattr(scheduler, "base_lrs", None)
        if base_lrs is not None:
            scheduler.base_lrs = [_scaled(lr, LR_FACTOR**d_lr, LR_BOUNDS) for lr in base_lrs]
    if d_wd:
        for group in optimizer.param_groups:
            if group.get("weight_decay", 0.0) > 0:
                group["weight_decay"] = _scaled(group["weight_decay"], WD_FACTOR**d_wd, WD_BOUNDS)


def optimizer_hparams(optimizer: torch.optim.Optimizer) -> tuple[float, float]:
    """``(lr, weight_decay)`` as the report and observation show them: the first group's LR and the largest weight
    decay of any group, both clipped to the env's bounds (an optimizer without decay reports the lower bound)."""
    lr = float(optimizer.param_groups[0]["lr"])
    wd = max(float(g.get("weight_decay", 0.0)) for g in optimizer.param_groups)
    return float(np.clip(lr, *LR_BOUNDS)), float(np.clip(wd, *WD_BOUNDS))


def _scaled(value: float, factor: float, bounds: tuple[float, float]) -> float:
    return float(np.clip(float(value) * factor, *bounds))
