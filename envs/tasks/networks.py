"""Small target networks whose hidden layers are exposed as :class:`HiddenLayer` s."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from traingym.envs.hidden_layer import HiddenLayer
from traingym.envs.tasks.base import init_parameters


class MLP(nn.Module):
    """Linear -> ReLU blocks, then a linear classifier."""

    def __init__(self, n_in: int, widths: Sequence[int], n_out: int) -> None:
        super().__init__()
        self.linears = nn.ModuleList()
        self.acts = nn.ModuleList()
        prev = n_in
        for width in widths:
            self.linears.append(nn.Linear(prev, width))
            self.acts.append(nn.ReLU())
            prev = width
        self.head = nn.Linear(prev, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for linear, act in zip(self.linears, self.acts):
            x = act(linear(x))
        return self.head(x)

    def hidden_layers(self) -> list[HiddenLayer]:
        return [HiddenLayer(f"fc{i + 1}", act, lin.weight, lin.bias)
                for i, (lin, act) in enumerate(zip(self.linears, self.acts))]


class ConvNet(nn.Module):
    """3x3 Conv -> ReLU blocks (optionally strided), a ReLU fully connected layer, then a linear classifier."""

    def __init__(self, in_shape: tuple[int, int, int], channels: Sequence[int], strides: Sequence[int],
                 fc_width: int, n_out: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList()
        self.conv_acts = nn.ModuleList()
        c, h, w = in_shape
        for ch, stride in zip(channels, strides):
            self.convs.append(nn.Conv2d(c, ch, 3, stride=stride, padding=1))
            self.conv_acts.append(nn.ReLU())
            c, h, w = ch, (h + 2 - 3) // stride + 1, (w + 2 - 3) // stride + 1
        self.in_shape = in_shape
        self.fc = nn.Linear(c * h * w, fc_width)
        self.fc_act = nn.ReLU()
        self.head = nn.Linear(fc_width, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(-1, *self.in_shape)
        for conv, act in zip(self.convs, self.conv_acts):
            x = act(conv(x))
        return self.head(self.fc_act(self.fc(x.flatten(1))))

    def hidden_layers(self) -> list[HiddenLayer]:
        layers = [HiddenLayer(f"conv{i + 1}", act, conv.weight, conv.bias)
                  for i, (conv, act) in enumerate(zip(self.convs, self.conv_acts))]
        return [*layers, HiddenLayer("fc", self.fc_act, self.fc.weight, self.fc.bias)]


def _materialise(meta_model: nn.Module, generator: torch.Generator) -> nn.Module:
    """Allocate a model built on the meta device and draw every weight from ``generator``.

    Building on ``meta`` skips PyTorch's default initialisation, which would draw from (and advance) the global
    RNG and then be overwritten anyway.
    """
    model = meta_model.to_empty(device="cpu")
    covered = {id(p) for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d)) for p in m.parameters()}
    if any(id(p) not in covered for p in model.parameters()):
        raise TypeError(f"{type(model).__name__} has parameters outside Linear/Conv2d layers; init_parameters "
                        "would leave them uninitialised")
    return init_parameters(model, generator)


def build_mlp(n_in: int, widths: Sequence[int], n_out: int, generator: torch.Generator) -> MLP:
    with torch.device("meta"):
        model = MLP(n_in, widths, n_out)
    return _materialise(model, generator)  # type: ignore[return-value]


def build_convnet(in_shape: tuple[int, int, int], channels: Sequence[int], strides: Sequence[int], fc_width: int,
                  n_out: int, generator: torch.Generator) -> ConvNet:
    with torch.device("meta"):
        model = ConvNet(in_shape, channels, strides, fc_width, n_out)
    return _materialise(model, generator)  # type: ignore[return-value]
