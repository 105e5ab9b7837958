"""The target model of the reviews task: a small BERT classifier built and initialised deterministically.

:func:`build_review_bert` returns a ``transformers.BertForSequenceClassification`` (2 classes) with eager attention
(so ``output_attentions=True`` returns the attention probabilities the relevance rollout differentiates).

## Deterministic initialisation
Hugging Face initialises from torch's *global* RNG. The module is therefore constructed inside
``torch.random.fork_rng`` (the global RNG state is restored afterwards, so the call leaves it unchanged), and every
parameter is then re-initialised from the caller's ``torch.Generator`` in module order: Linear and Embedding
weights ~ N(0, ``initializer_range``), biases 0, the [PAD] embedding row 0, LayerNorm weight 1 / bias 0. Same
generator state, same weights.

Dropout masks during training still come from the global RNG. For reproducible training, wrap the training
steps in :func:`forked_global_rng`, which forks the global RNG, seeds it from the task's generator and restores
it on exit (this is the only place the global RNG is seeded, and it never stays changed). On CUDA pass the
model's device in ``devices``: dropout on a GPU draws from that device's RNG.

## In the env
:class:`ReviewClassifier` wraps the Hugging Face model as a plain ``input_ids -> logits`` module, so the env's
generic training, validation and neuron-log passes call it like any other target network.

## Hidden layers for neuron logging
:func:`review_bert_hidden_layers` lists each encoder layer's FFN intermediate units: the module is
``bert.encoder.layer[i].intermediate`` (its forward output is the activation after GELU, shape (B, L, I)), and
row ``j`` of ``intermediate.dense.weight`` plus ``intermediate.dense.bias[j]`` are unit ``j``'s incoming weights.
They are ``traingym.envs.hidden_layer.HiddenLayer`` objects with ``unit_dim=-1`` (activations are (B, L, units)).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from traingym.envs.hidden_layer import HiddenLayer
from traingym.envs.tasks.reviews_data import PAD_ID
from transformers import BertConfig, BertForSequenceClassification


@dataclass(frozen=True)
class ReviewBertConfig:
    """Shape of the target BERT."""

    vocab_size: int
    """Embedding rows: the compact vocabulary size (``ReviewsData.vocab_size``)."""
    n_layers: int = 1
    """Encoder layers, 1..4."""
    hidden: int = 64
    """Hidden size, 16..512, a multiple of ``heads``."""
    heads: int = 4
    """Attention heads, 1..16."""
    max_len: int = 32
    """Maximum sequence length (position embeddings), 8..512."""
    intermediate: int | None = None
    """FFN width (the logged units per layer); None = 4 * hidden."""
    dropout: float = 0.1
    """Hidden and attention-probability dropout, in [0, 0.5]."""
    initializer_range: float = 0.02
    """Std of the normal initialisation of weights, in (0, 1]."""

    def __post_init__(self) -> None:
        if self.vocab_size < 8:
            raise ValueError(f"vocab_size must be >= 8, got {self.vocab_size}")
        if not 1 <= self.n_layers <= 4:
            raise ValueError(f"n_layers must be in [1, 4], got {self.n_layers}")
        if not 1 <= self.heads <= 16:
            raise ValueError(f"heads must be in [1, 16], got {self.heads}")
        if not 16 <= self.hidden <= 512 or self.hidden % self.heads:
            raise ValueError(f"hidden must be in [16, 512] and a multiple of heads={self.heads}, got {self.hidden}")
        if not 8 <= self.max_len <= 512:
            raise ValueError(f"max_len must be in [8, 512], got {self.max_len}")
        if self.intermediate is not None and not 4 <= self.intermediate <= 4096:
            raise ValueError(f"intermediate must be None or in [4, 4096], got {self.intermediate}")
        if not 0.0 <= self.dropout <= 0.5:
            raise ValueError(f"dropout must be in [0, 0.5], got {self.dropout}")
        if not 0.0 < self.initializer_range <= 1.0:
            raise ValueError(f"initializer_range must be in (0, 1], got {self.initializer_range}")

    def bert_config(self) -> BertConfig:
        return BertConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden,
            num_hidden_layers=self.n_layers,
            num_attention_heads=self.heads,
            intermediate_size=self.intermediate or 4 * self.hidden,
            max_position_embeddings=self.max_len,
            type_vocab_size=1,
            hidden_dropout_prob=self.dropout,
            attention_probs_dropout_prob=self.dropout,
            initializer_range=self.initializer_range,
            pad_token_id=PAD_ID,
            num_labels=2,
            attn_implementation="eager",
        )


def build_review_bert(vocab_size: int, n_layers: int = 1, hidden: int = 64, heads: int = 4, max_len: int = 32,
                      *, generator: torch.Generator, dropout: float = 0.1, intermediate: int | None = None,
                      initializer_range: float = 0.02) -> BertForSequenceClassification:
    """A 2-class BERT with eager attention, initialised from ``generator`` (global RNG left unchanged)."""
    config = ReviewBertConfig(vocab_size=vocab_size, n_layers=n_layers, hidden=hidden, heads=heads,
                              max_len=max_len, intermediate=intermediate, dropout=dropout,
                              initializer_range=initializer_range)
    return build_review_bert_from_config(config, generator=generator)


def build_review_bert_from_config(config: ReviewBertConfig, *,
                                  generator: torch.Generator) -> BertForSequenceClassification:
    """:func:`build_review_bert` from a :class:`ReviewBertConfig`."""
    with torch.random.fork_rng(devices=[]):
        model = BertForSequenceClassification(config.bert_config())
    reinitialise(model, generator, config.initializer_range)
    return model


@torch.no_grad()
def reinitialise(model: nn.Module, generator: torch.Generator, std: float = 0.02) -> None:
    """Re-draw every parameter of a BERT-like model from ``generator`` (see the module docstring)."""
    done: set[int] = set()
    for module in model.modules():
        if isinstance(module, nn.Linear):
            module.weight.normal_(0.0, std, generator=generator)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.Embedding):
            module.weight.normal_(0.0, std, generator=generator)
            if module.padding_idx is not None:
                module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            if module.weight is not None:
                module.weight.fill_(1.0)
            if module.bias is not None:
                module.bias.zero_()
        else:
            continue
        done.update(id(p) for p in module.parameters(recurse=False))
    missed = [name for name, p in model.named_parameters() if id(p) not in done]
    if missed:
        raise ValueError(f"reinitialise does not know how to initialise parameters {missed}")


class ReviewClassifier(nn.Module):
    """``forward(input_ids) -> logits`` around a review BERT; the attention mask is ``input_ids != PAD_ID``.

    ``hf_model`` is the wrapped ``BertForSequenceClassification`` (token relevance needs its attentions).
    """

    def __init__(self, hf_model: BertForSequenceClassification) -> None:
        super().__init__()
        self.hf_model = hf_model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.hf_model(input_ids=input_ids, attention_mask=(input_ids != PAD_ID).long()).logits


def review_bert_hidden_layers(model: BertForSequenceClassification) -> list[HiddenLayer]:
    """The FFN intermediate units of each encoder layer, named ``"layer{i}.ffn"`` (``unit_dim=-1``)."""
    layers = []
    for i, layer in enumerate(model.bert.encoder.layer):
        dense = layer.intermediate.dense
        layers.append(HiddenLayer(f"layer{i}.ffn", layer.intermediate, dense.weight, dense.bias, unit_dim=-1))
    return layers


def training_seed(generator: torch.Generator) -> int:
    """The seed of the dropout RNG for one env step's training steps: one draw from ``generator``. The single env
    seeds torch's global RNG with it (:func:`forked_global_rng`); the batched text env seeds each member's own
    dropout generator with it, so both draw the same masks."""
    return int(torch.randint(0, 2**62, (1,), generator=generator).item())


@contextlib.contextmanager
def forked_global_rng(generator: torch.Generator, devices: Sequence[torch.device | int] = ()) -> Iterator[None]:
    """Run a block with torch's global RNG seeded from ``generator``, restoring the global state on exit.

    Use around training steps so dropout masks are reproducible from the task's generator. The generator is
    advanced by one draw. The CPU state is always restored; pass the CUDA devices the block uses in
    ``devices`` to restore theirs as well (``torch.manual_seed`` seeds every device).
    """
    seed = training_seed(generator)
    with torch.random.fork_rng(devices=list(devices)):
        torch.manual_seed(seed)
        yield
