"""scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes): an MLP and a CNN family."""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from traingym.envs.hidden_layer import HiddenLayer
from traingym.envs.tasks.augmentation import augment_images
from traingym.envs.tasks.base import Instance, TaskData, TaskFamily
from traingym.envs.tasks.networks import build_convnet, build_mlp

SHAPE = (1, 8, 8)


@functools.lru_cache(maxsize=1)
def load_digits_tensors() -> TaskData:
    """All 1797 digits as float32 in [0, 1] (pixel values / 16), loaded once per process."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.data / 16.0, dtype=torch.float32)
    return TaskData(x, torch.tensor(data.target, dtype=torch.int64), 10, "digits")


class _DigitsFamily(TaskFamily):
    modality: ClassVar[str] = "image"

    def datasets(self, instance: Instance) -> TaskData:
        return load_digits_tensors()

    def hidden_layers(self, model: nn.Module) -> list[HiddenLayer]:
        return model.hidden_layers()  # type: ignore[operator]

    def input_shape(self, instance: Instance) -> tuple[int, ...]:
        return SHAPE

    def augment(self, x: torch.Tensor, y: torch.Tensor, level: int, generator: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor]:
        return augment_images(x, level, SHAPE, generator), y


class DigitsMLP(_DigitsFamily):
    """MLP on 8x8 digits. Architecture: depth 1-3 hidden ReLU layers, width 32, 64 or 128."""

    name: ClassVar[str] = "digits_mlp"

    def sample_architecture(self, rng: np.random.Generator) -> dict[str, Any]:
        return {"depth": int(rng.integers(1, 4)), "width": int(rng.choice([32, 64, 128]))}

    def build_model(self, instance: Instance, n_classes: int, generator: torch.Generator) -> nn.Module:
        return build_mlp(64, [instance["width"]] * instance["depth"], n_classes, generator)

    def describe(self, instance: Instance) -> str:
        return f"MLP {instance['depth']}x{instance['width']} ReLU"


class DigitsCNN(_DigitsFamily):
    """CNN on 8x8 digits. Architecture: 1-2 conv layers (3x3, 8/16/32 channels), a 64-unit ReLU layer."""

    name: ClassVar[str] = "digits_cnn"

    def sample_architecture(self, rng: np.random.Generator) -> dict[str, Any]:
        return {"conv_layers": int(rng.integers(1, 3)), "channels": int(rng.choice([8, 16, 32]))}

    def build_model(self, instance: Instance, n_classes: int, generator: torch.Generator) -> nn.Module:
        n = instance["conv_layers"]
        strides = [1] * (n - 1) + [2]
        return build_convnet(SHAPE, [instance["channels"]] * n, strides, 64, n_classes, generator)

    def describe(self, instance: Instance) -> str:
        return f"CNN {instance['conv_layers']} conv x{instance['channels']}ch + fc64"
