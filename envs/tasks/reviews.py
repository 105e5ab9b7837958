"""Rotten Tomatoes review sentiment with a small BERT trained from scratch: the text task families.

## Data and splits
The 12,752 real review snippets of :func:`~traingym.envs.tasks.reviews_data.load_reviews` (``max_len`` 32,
compact vocabulary), label 1 = fresh, 0 = rotten. An instance's ``split_seed`` fixes a random 80/10/10
train / validation / test split (:func:`~traingym.envs.tasks.reviews_data.split_indices`); the validation
buffer is the first ``val_size`` reviews of the validation part. A *diagnostic* buffer of ``val_size`` reviews
is held out from the training part (never trained on): token relevance runs on its errors (see
:class:`~traingym.envs.tasks.base.Split` and :mod:`traingym.envs.monitoring.token_monitor`). Label noise flips training
labels only; validation, diagnostic and test labels are the true ones.

## Inputs and model
An input is a row of compact token ids (int64, ``(N, 32)``: ``[CLS] tokens... [SEP] [PAD]...``). The target
network is a ``BertForSequenceClassification`` initialised at random from the env's generator
(:func:`~traingym.envs.tasks.reviews_model.build_review_bert`: 4 heads, FFN 4 x hidden, dropout 0.1, eager
attention), wrapped as ``input_ids -> logits`` (:class:`~traingym.envs.tasks.reviews_model.ReviewClassifier`).
Instance range: ``n_layers`` 1 or 2, ``hidden`` 32 or 64. An env step (K=50, batch 32, one thread, neuron log
and relevance on) costs far more CPU than a digits step and grows with depth and width; explicit instances may use
up to 4 layers, slower still. ``benchmarks/reviews_timing.py`` times the pieces, ``benchmarks/run.py`` the step
(figure ``step_overhead``, family ``reviews_bert``).
The neuron log sees each layer's FFN intermediate units. Dropout draws from torch's global RNG, so the env's
training steps run inside :meth:`ReviewsBERT.training_context` (the global RNG is seeded from the env's generator
and restored after).

## Augmentation
Token masking (:func:`~traingym.envs.tasks.reviews_augment.mask_tokens`): at level k, ordinary tokens are
masked with 5k %, tokens the relevance monitor flags with 50-100 % (so raising augmentation takes away a
shortcut first). The env passes the monitor's flagged ids with :meth:`ReviewsBERT.set_flagged_tokens`.

## Planted shortcut (``reviews_shortcut``)
The same data, with the token ``"zqx"`` (:data:`~traingym.envs.tasks.reviews_data.SHORTCUT_ID`) inserted into
training reviews, and into the diagnostic buffer, with probability ``shortcut_p_pos`` (label 1) and
``shortcut_p_neg`` (label 0) (:func:`~traingym.envs.tasks.reviews_data.plant_shortcut`, seeded by the
instance's split seed). Validation and test reviews stay clean, so a model that relies on the token loses
accuracy there.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn
from traingym.envs.hidden_layer import HiddenLayer
from traingym.envs.tasks.base import Instance, Split, TaskData, TaskFamily, noisy_labels
from traingym.envs.tasks.reviews_augment import mask_tokens
from traingym.envs.tasks.reviews_data import PAD_ID, SHORTCUT_ID, load_reviews, plant_shortcut, split_indices

# reviews_model imports transformers (seconds, and its tokenizers): imported where a model is built, so that
# importing traingym.envs, or running a non-text env, does not pay for it.

if TYPE_CHECKING:
    from traingym.envs.config import TrainingEnvConfig

MAX_LEN = 32
"""Tokens per review, [CLS] and [SEP] included."""
HEADS = 4
"""Attention heads of every instance."""


@functools.lru_cache(maxsize=1)
def load_reviews_tensors() -> TaskData:
    """The tokenised reviews as a :class:`TaskData` (``x``: input ids), loaded once per process."""
    data = load_reviews(MAX_LEN)
    return TaskData(data.input_ids, data.labels, 2, "rotten_tomatoes")


class ReviewsBERT(TaskFamily):
    """Review sentiment (Rotten Tomatoes) with a 1-2 layer BERT (hidden 32/64) trained from scratch."""

    name: ClassVar[str] = "reviews_bert"
    modality: ClassVar[str] = "text"
    fractions: ClassVar[tuple[float, float, float]] = (0.8, 0.1, 0.1)
    fused_adam: ClassVar[bool] = True
    """The dense embedding matrix (~14k x hidden) dominates the parameters: a fused Adam step is ~3x faster."""

    def __init__(self) -> None:
        self.flagged_token_ids: tuple[int, ...] = ()
        """Token ids that augmentation masks first (set by the env from its relevance monitor)."""

    def datasets(self, instance: Instance) -> TaskData:
        return load_reviews_tensors()

    def vocabulary(self) -> tuple[str, ...]:
        return load_reviews(MAX_LEN).id_to_token

    def split(self, instance: Instance, val_size: int) -> Split:
        """Train / validation / test plus the diagnostic buffer held out from the training part."""
        data = self.datasets(instance)
        rng = np.random.default_rng(instance["split_seed"])
        train, val, test = (torch.from_numpy(part) for part in split_indices(data.x.shape[0], rng, self.fractions))
        diag, train, val = train[:val_size], train[val_size:], val[:val_size]
        x_train, y_train = data.x[train], data.y[train]
        x_diag, y_diag = data.x[diag], data.y[diag]
        x_train, x_diag = self.contaminate(x_train, y_train, x_diag, y_diag, rng)
        y_train = noisy_labels(y_train, float(instance.get("label_noise", 0.0)), data.n_classes, rng)
        return Split(x_train, y_train, data.x[val], data.y[val], data.x[test], data.y[test], data.n_classes,
                     x_diag=x_diag, y_diag=y_diag)

    def contaminate(self, x_train: torch.Tensor, y_train: torch.Tensor, x_diag: torch.Tensor, y_diag: torch.Tensor,
                    rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Alter the training-distribution inputs (training and diagnostic buffers); clean data here."""
        return x_train, x_diag

    def sample_architecture(self, rng: np.random.Generator) -> dict[str, Any]:
        return {"n_layers": int(rng.integers(1, 3)), "hidden": int(rng.choice([32, 64]))}

    def build_model(self, instance: Instance, n_classes: int, generator: torch.Generator) -> nn.Module:
        from traingym.envs.tasks.reviews_model import ReviewClassifier, build_review_bert

        if n_classes != 2:
            raise ValueError(f"the reviews model has 2 classes, got n_classes={n_classes}")
        return ReviewClassifier(build_review_bert(len(self.vocabulary()), instance["n_layers"], instance["hidden"],
                                                  HEADS, MAX_LEN, generator=generator))

    def hidden_layers(self, model: nn.Module) -> list[HiddenLayer]:
        from traingym.envs.tasks.reviews_model import ReviewClassifier, review_bert_hidden_layers

        assert isinstance(model, ReviewClassifier)
        return review_bert_hidden_layers(model.hf_model)

    def describe(self, instance: Instance) -> str:
        return f"BERT {instance['n_layers']} layer(s), hidden {instance['hidden']}, {HEADS} heads, from scratch"

    def augment(self, x: torch.Tensor, y: torch.Tensor, level: int, generator: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor]:
        return mask_tokens(x, x != PAD_ID, level, self.flagged_token_ids, generator=generator), y

    def set_flagged_tokens(self, token_ids: Sequence[int]) -> None:
        self.flagged_token_ids = tuple(int(i) for i in token_ids)

    def training_context(self, generator: torch.Generator, device: torch.device) -> AbstractContextManager[None]:
        """Dropout masks from the global RNG, seeded from ``generator`` (one draw) and restored afterwards."""
        from traingym.envs.tasks.reviews_model import forked_global_rng

        return forked_global_rng(generator, [device] if device.type == "cuda" else [])


class ReviewsShortcut(ReviewsBERT):
    """:class:`ReviewsBERT` with the planted shortcut token ``"zqx"`` in training (and diagnostic) reviews."""

    name: ClassVar[str] = "reviews_shortcut"
    report_name: ClassVar[str | None] = "reviews_bert"

    def __init__(self, p_pos: float = 0.9, p_neg: float = 0.05) -> None:
        super().__init__()
        for field, p in (("shortcut_p_pos", p_pos), ("shortcut_p_neg", p_neg)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{field} must be in [0, 1], got {p!r}")
        self.p_pos, self.p_neg = float(p_pos), float(p_neg)

    @classmethod
    def from_config(cls, config: TrainingEnvConfig) -> ReviewsShortcut:
        return cls(config.shortcut_p_pos, config.shortcut_p_neg)

    def contaminate(self, x_train: torch.Tensor, y_train: torch.Tensor, x_diag: torch.Tensor, y_diag: torch.Tensor,
                    rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The token planted at the same rates into the training and the diagnostic reviews."""
        generator = torch.Generator().manual_seed(int(rng.integers(2**63 - 1)))
        out = []
        for x, y in ((x_train, y_train), (x_diag, y_diag)):
            ids, _, _ = plant_shortcut(x, (x != PAD_ID).long(), y, SHORTCUT_ID, self.p_pos, self.p_neg,
                                       generator=generator)
            out.append(ids)
        return out[0], out[1]
