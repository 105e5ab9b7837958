"""A hidden layer as the neuron log and the weight-scaling move see it."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True, eq=False)
class HiddenLayer:
    """One hidden layer of a target network.

    ``module``'s forward output is the layer's activation: ``(B, units)``, ``(B, units, H, W)`` for convolutions
    or ``(B, T, units)`` for transformer FFNs. Row ``i`` of ``weight`` (dim 0) and ``bias[i]`` are unit ``i``'s
    incoming weights, so scaling a unit means scaling that row (and bias entry).
    """

    name: str
    module: nn.Module
    weight: nn.Parameter
    bias: nn.Parameter | None
    unit_dim: int = 1
    """Dimension of the activation that indexes units (1 for ``(B, units, ...)``, -1 for ``(B, T, units)``)."""

    @property
    def units(self) -> int:
        return int(self.weight.shape[0])

    @torch.no_grad()
    def scale_units(self, unit_ids: torch.Tensor, factor: float) -> None:
        """Multiply the incoming weights (and biases) of ``unit_ids`` by ``factor``."""
        if unit_ids.numel() == 0:
            return
        self.weight[unit_ids] *= factor
        if self.bias is not None:
            self.bias[unit_ids] *= factor
