"""The worked example of a task family of your own (docs/doctor.md): your data, your model, four methods.

``gym.make("TrainGym/Custom-v0", task="traingym.envs.tasks.custom_example:BlobsFamily")`` (the default task of
``TrainGym/Custom-v0``). Copy this file into your package and replace the data and the model.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from traingym.envs.hidden_layer import HiddenLayer
from traingym.envs.tasks.base import Instance, TaskData, TaskFamily


class BlobsNet(nn.Module):
    def __init__(self, width: int, generator: torch.Generator) -> None:
        super().__init__()
        self.fc, self.act, self.head = nn.Linear(2, width), nn.ReLU(), nn.Linear(width, 3)
        for layer in (self.fc, self.head):  # initial weights from the env's generator: reproducible episodes
            nn.init.normal_(layer.weight, std=0.5, generator=generator)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.fc(x)))


class BlobsFamily(TaskFamily):
    """Three Gaussian blobs in 2-D (your dataset) and a one-hidden-layer MLP (your model)."""

    name = "blobs"
    modality = "tabular"

    def datasets(self, instance: Instance) -> TaskData:
        rng = np.random.default_rng(0)  # the whole dataset; the env splits it per instance
        y = rng.integers(0, 3, 900)
        x = rng.normal(size=(900, 2)) + np.array([[0.0, 0.0], [2.0, 2.0], [0.0, 3.0]])[y]
        return TaskData(torch.tensor(x, dtype=torch.float32), torch.tensor(y), 3, "blobs")

    def sample_architecture(self, rng: np.random.Generator) -> dict[str, int]:
        return {"width": int(rng.choice([8, 16]))}

    def build_model(self, instance: Instance, n_classes: int, generator: torch.Generator) -> nn.Module:
        return BlobsNet(instance["width"], generator)

    def hidden_layers(self, model: nn.Module) -> list[HiddenLayer]:
        return [HiddenLayer("fc", model.act, model.fc.weight, model.fc.bias)]  # the ReLU's output holds the units

    def augment(self, x: torch.Tensor, y: torch.Tensor, level: int, generator: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor]:
        return x + 0.1 * level * torch.randn(x.shape, generator=generator), y
