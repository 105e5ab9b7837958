"""The task-family interface: data loaded once per process, instances, models and augmentation."""

from __future__ import annotations

import contextlib
import numbers
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn
from traingym.envs.hidden_layer import HiddenLayer

if TYPE_CHECKING:
    from traingym.envs.config import TrainingEnvConfig

Instance = dict[str, Any]
"""A task instance: a plain JSON-able dict (split seed, architecture, initial hyperparameters, label noise)."""

TRAIN_SET_SIZE = 512
TEST_SET_SIZE = 128
TEST_SPLIT_SEED_OFFSET = 1_000_000
"""Held-out instances use split seeds >= this offset, so train and test instance sets never share a split."""


@dataclass(frozen=True)
class TaskData:
    """A whole dataset as tensors (features already scaled), cached once per process."""

    x: torch.Tensor
    y: torch.Tensor
    n_classes: int
    name: str


@dataclass(frozen=True)
class Split:
    """Tensors of one instance: train (with label noise applied), validation buffer and test split.

    Text families also hold out a *diagnostic* buffer (``x_diag``, ``y_diag``) from the training portion: drawn
    from the training distribution (a planted shortcut token at the training rates), never trained on. Token
    relevance runs on its errors, since a spurious training-only feature never occurs in the clean validation
    buffer. The reward and the reported validation metrics use the validation buffer only.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    x_diag: torch.Tensor | None = None
    y_diag: torch.Tensor | None = None

    def to(self, device: torch.device) -> Split:
        """A copy with every tensor on ``device``."""
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)
                                if isinstance(getattr(self, f.name), torch.Tensor)})


@dataclass(frozen=True)
class HyperparameterRanges:
    """Documented distribution of an instance's initial hyperparameters (log-uniform LR and WD)."""

    lr: tuple[float, float]
    weight_decay: tuple[float, float] = (1e-6, 1e-2)
    aug_levels: tuple[int, ...] = (0, 0, 1, 2, 3, 4)
    label_noise_prob: float = 0.3
    label_noise_levels: tuple[float, ...] = (0.1, 0.2, 0.3)


LR_RANGES = {
    "sgd": HyperparameterRanges(lr=(1e-4, 1.0)),
    "adam": HyperparameterRanges(lr=(1e-5, 1e-1)),
}


class TaskFamily(ABC):
    """A family of training tasks. Subclasses fix the data, the architecture range and the augmentation."""

    name: ClassVar[str]
    modality: ClassVar[str]
    report_name: ClassVar[str | None] = None
    """The family name advisors see in reports (None: ``name``); variants that plant a problem report the
    neutral name of their base family."""
    fractions: ClassVar[tuple[float, float, float]] = (0.6, 0.2, 0.2)
    """Train / validation / test fractions of the dataset."""
    fused_adam: ClassVar[bool] = False
    """Build AdamW with ``fused=True`` (one kernel for all parameters; deterministic on CPU and CUDA)."""

    @classmethod
    def from_config(cls, config: TrainingEnvConfig) -> TaskFamily:
        """The family as an env with ``config`` uses it (families with config-dependent data override this)."""
        return cls()

    # ----------------------------------------------------------------- data
    @abstractmethod
    def datasets(self, instance: Instance) -> TaskData:
        """The (cached) dataset an instance trains on."""

    def split(self, instance: Instance, val_size: int) -> Split:
        """Deterministic split of the instance's dataset; label noise flips a fraction of training labels."""
        data = self.datasets(instance)
        rng = np.random.default_rng(instance["split_seed"])
        n = data.x.shape[0]
        order = torch.from_numpy(rng.permutation(n))
        n_train = int(round(self.fractions[0] * n))
        n_val = int(round(self.fractions[1] * n))
        tr, va, te = order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]
        va = va[:val_size]
        y_train = noisy_labels(data.y[tr], float(instance.get("label_noise", 0.0)), data.n_classes, rng)
        return Split(data.x[tr], y_train, data.x[va], data.y[va], data.x[te], data.y[te], data.n_classes)

    # ------------------------------------------------------------ instances
    def sample_instance(self, rng: np.random.Generator, optimizer: str, split_seed: int) -> Instance:
        """Draw one instance: architecture from the family's range, initial hyperparameters (bad ones included)."""
        ranges = LR_RANGES[optimizer]
        instance: Instance = {"family": self.name, "split_seed": int(split_seed)}
        instance.update(self.sample_architecture(rng))
        instance["lr"] = float(10 ** rng.uniform(*np.log10(ranges.lr)))
        instance["weight_decay"] = float(10 ** rng.uniform(*np.log10(ranges.weight_decay)))
        instance["aug_level"] = int(rng.choice(ranges.aug_levels))
        noisy = rng.random() < ranges.label_noise_prob
        instance["label_noise"] = float(rng.choice(ranges.label_noise_levels)) if noisy else 0.0
        return instance

    def instance_set(self, which: str, optimizer: str) -> list[Instance]:
        """The fixed, disjoint ``"train"`` (512) or ``"test"`` (128) instance set of this family."""
        stream = {"train": 0, "test": 1}[which]
        rng = np.random.default_rng([_stable_hash(self.name), stream])
        size, offset = (TRAIN_SET_SIZE, 0) if which == "train" else (TEST_SET_SIZE, TEST_SPLIT_SEED_OFFSET)
        return [self.sample_instance(rng, optimizer, split_seed=offset + i) for i in range(size)]

    @abstractmethod
    def sample_architecture(self, rng: np.random.Generator) -> dict[str, Any]:
        """Architecture fields of an instance (JSON-able)."""

    def validate_instance(self, instance: Instance) -> None:
        """Raise ValueError naming the first bad field of an explicit instance."""
        architecture = self.sample_architecture(np.random.default_rng(0))
        for key in ("split_seed", "lr", "weight_decay", "aug_level", *architecture):
            if key not in instance:
                raise ValueError(f"instance is missing field {key!r}; an instance needs {self.instance_fields()}")
        # Type checks first, so a wrong type gets a message naming the field rather than a bare TypeError.
        for key, example in (("split_seed", 0), ("aug_level", 0), ("lr", 0.1), ("weight_decay", 0.1),
                             ("label_noise", 0.0), *architecture.items()):
            value = instance.get(key, example)
            kinds = ((bool, bool, "True or False"), (str, str, "a string"), (int, numbers.Integral, "an integer"),
                     (float, numbers.Real, "a number"))
            expected = next(((accept, name) for kind, accept, name in kinds if isinstance(example, kind)), None)
            if expected is None:
                continue  # a structured field: the family's build_model checks it
            if isinstance(value, bool) is not isinstance(example, bool) or not isinstance(value, expected[0]):
                raise ValueError(f"instance[{key!r}] must be {expected[1]}, got {value!r}")
            if type(example) is int and key not in ("split_seed", "aug_level") and value < 1:
                raise ValueError(f"instance[{key!r}] must be >= 1 (sampled example: {example}), got {value!r}")
        if not int(instance["split_seed"]) >= 0:
            raise ValueError(f"instance['split_seed'] must be >= 0, got {instance['split_seed']}")
        if not (0 <= int(instance["aug_level"]) <= 4):
            raise ValueError(f"instance['aug_level'] must be in 0..4, got {instance['aug_level']}")
        if not (0.0 <= float(instance.get("label_noise", 0.0)) < 1.0):
            raise ValueError(f"instance['label_noise'] must be in [0, 1), got {instance['label_noise']}")
        for key in ("lr", "weight_decay"):
            if not float(instance[key]) > 0:
                raise ValueError(f"instance[{key!r}] must be > 0, got {instance[key]}")

    def instance_fields(self) -> list[str]:
        return ["split_seed", "lr", "weight_decay", "aug_level", "label_noise", *self.sample_architecture(
            np.random.default_rng(0)).keys()]

    # ---------------------------------------------------------------- model
    @abstractmethod
    def build_model(self, instance: Instance, n_classes: int, generator: torch.Generator) -> nn.Module:
        """A freshly initialised target network (all initial weights drawn from ``generator``)."""

    @abstractmethod
    def hidden_layers(self, model: nn.Module) -> list[HiddenLayer]:
        """The model's hidden layers, in forward order."""

    def describe(self, instance: Instance) -> str:
        """A short model description for reports."""
        return self.name

    def input_shape(self, instance: Instance) -> tuple[int, ...]:
        """One input's shape before flattening (images: ``(C, H, W)``), by which input relevance names the
        features; the default is the dataset's row shape."""
        return tuple(self.datasets(instance).x.shape[1:])

    def vocabulary(self) -> tuple[str, ...] | None:
        """Text families: token string of every input id (the env then monitors token relevance); None for
        families whose inputs are not tokens."""
        return None

    # --------------------------------------------------------- augmentation
    @abstractmethod
    def augment(self, x: torch.Tensor, y: torch.Tensor, level: int, generator: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment a training batch at ``level`` in 1..4 (level 0 is never passed)."""

    def set_flagged_tokens(self, token_ids: Sequence[int]) -> None:
        """Text families: the token ids the env's relevance monitor currently flags (augmentation masks them
        first). Other families ignore it."""
        return None

    # -------------------------------------------------------------- training
    def training_context(self, generator: torch.Generator, device: torch.device) -> AbstractContextManager[None]:
        """Entered around the env's K training steps. Families whose model draws from torch's global RNG
        (Hugging Face dropout) seed it from ``generator`` here and restore it on exit; the default does nothing
        and draws nothing."""
        return contextlib.nullcontext()


def noisy_labels(labels: torch.Tensor, noise: float, n_classes: int, rng: np.random.Generator) -> torch.Tensor:
    """A copy of ``labels`` where each label is, with probability ``noise``, replaced by a uniformly chosen other
    class (draws from ``rng`` only when ``noise > 0``)."""
    labels = labels.clone()
    if noise > 0:
        n = labels.shape[0]
        flip = torch.from_numpy(rng.random(n) < noise)
        shift = torch.from_numpy(rng.integers(1, n_classes, size=n))
        labels = torch.where(flip, (labels + shift) % n_classes, labels)
    return labels


def _stable_hash(text: str) -> int:
    """A process-independent seed from a family name (Python's ``hash`` is salted per process).

    Known limitation, kept on purpose: only the first 8 bytes of the name matter, so ``reviews_bert`` and
    ``reviews_shortcut`` share their instance sets (convenient for paired clean-vs-shortcut comparisons). A full
    hash would change every family's fixed instance sets and invalidate recorded results; do it together with a
    versioned instance-set name.
    """
    return int.from_bytes(text.encode(), "little") % (2**63)


def init_parameters(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """Re-initialise every Linear/Conv layer from ``generator`` (PyTorch's default scheme, no global RNG)."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                nn.init.kaiming_uniform_(module.weight, a=5**0.5, generator=generator)
                if module.bias is not None:
                    fan_in = module.weight[0].numel()
                    bound = 1.0 / fan_in**0.5
                    nn.init.uniform_(module.bias, -bound, bound, generator=generator)
    return model
