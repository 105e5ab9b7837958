"""scikit-learn's breast-cancer (569 x 30, 2 classes) and wine (178 x 13, 3 classes) tables: an MLP family."""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from traingym.envs.hidden_layer import HiddenLayer
from traingym.envs.tasks.augmentation import augment_features
from traingym.envs.tasks.base import Instance, TaskData, TaskFamily
from traingym.envs.tasks.networks import build_mlp

DATASETS = ("breast_cancer", "wine")


@functools.lru_cache(maxsize=len(DATASETS))
def load_table(name: str) -> TaskData:
    """A table standardised per feature (over the whole table: the split is unknown here), once per process."""
    from sklearn.datasets import load_breast_cancer, load_wine

    loader = {"breast_cancer": load_breast_cancer, "wine": load_wine}[name]
    data = loader()
    x = data.data.astype(np.float64)
    x = (x - x.mean(0)) / (x.std(0) + 1e-8)
    y = torch.tensor(data.target, dtype=torch.int64)
    return TaskData(torch.tensor(x, dtype=torch.float32), y, int(y.max()) + 1, name)


class TabularMLP(TaskFamily):
    """MLP on a small table; the instance picks the dataset. Architecture: depth 1-2, width 16, 32 or 64."""

    name: ClassVar[str] = "tabular_mlp"
    modality: ClassVar[str] = "tabular"

    def datasets(self, instance: Instance) -> TaskData:
        dataset = instance.get("dataset", DATASETS[0])
        if dataset not in DATASETS:
            raise ValueError(f"instance['dataset'] must be one of {DATASETS}, got {dataset!r}")
        return load_table(dataset)

    def sample_architecture(self, rng: np.random.Generator) -> dict[str, Any]:
        return {"dataset": str(rng.choice(DATASETS)), "depth": int(rng.integers(1, 3)),
                "width": int(rng.choice([16, 32, 64]))}

    def build_model(self, instance: Instance, n_classes: int, generator: torch.Generator) -> nn.Module:
        n_in = self.datasets(instance).x.shape[1]
        return build_mlp(n_in, [instance["width"]] * instance["depth"], n_classes, generator)

    def hidden_layers(self, model: nn.Module) -> list[HiddenLayer]:
        return model.hidden_layers()  # type: ignore[operator]

    def augment(self, x: torch.Tensor, y: torch.Tensor, level: int, generator: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor]:
        return augment_features(x, level, generator), y

    def describe(self, instance: Instance) -> str:
        return f"MLP {instance['depth']}x{instance['width']} ReLU on {instance['dataset']}"
