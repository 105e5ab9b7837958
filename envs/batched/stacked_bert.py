"""Review BERTs of one architecture trained as one grouped computation: parameters stacked along a leading member
dimension, every linear layer one ``baddbmm`` for all members.

## Storage: the members' own parameters are views into the stack
:meth:`StackedReviewBert.set_members` stacks the members' parameters into tensors ``(n, *shape)`` (one leaf per
parameter name, gradient buffer attached) and then points each member's ``nn.Parameter`` at its row (``.data``
and ``.grad`` become views). Nothing is copied between the stack and the modules afterwards: the env's own
optimizer (fused AdamW over the module's parameters, its own learning rate and weight decay) updates the rows in
place, and validation, the neuron log, flagged-neuron scaling and token relevance read and write the module as in
the single env.

## The forward pass
:func:`grouped_forward` is ``BertForSequenceClassification``'s training forward written with ``torch`` ops on
the stacked parameters, op for op as Hugging Face computes it for eager attention (embeddings + LayerNorm,
per layer: Q/K/V, scaled dot product + additive padding mask, softmax, output dense + residual LayerNorm, GELU FFN
+ residual LayerNorm; pooler tanh, classifier), less what never reaches the logits: the pooler reads only the
first token, so the last layer computes queries, attention, output dense and FFN for that token alone (keys and
values for all tokens). That removes ~40% of a 2-layer member's forward + backward and most of a 1-layer one's.
Dropout takes precomputed masks (:func:`dropout_masks`): ``torch.nn.functional.dropout`` on the CPU multiplies by
``bernoulli(1 - p) / (1 - p)``, one ``bernoulli_`` per call, so drawing the same shapes in the same order from a
generator seeded like the single env's global RNG gives the single env's masks bit for bit (drawn as int64
``random_``, the same draws, where ATen's default kernel makes them: :func:`_bernoulli_is_random64_compare`).
Logits agree with the module's to float rounding (a one-row matmul may sum in another order: ~1e-9, tested to
1e-6), gradients too (~1e-8). The word embeddings' gradient is ``index_add_`` ed into its buffer directly
(:meth:`StackedReviewBert.loss_and_backward`).

Why grouped, not ``vmap(functional_call(hf_model))``: Hugging Face's mask creation branches on data
(``padding_mask.all()``), which ``vmap`` refuses; and ``vmap`` of these layers measured no faster than the
per-member loop on one CPU core (bmm on transposed batched layouts), while the explicit layout below is
1.2-1.4x faster per member-step (hidden 32; about equal at hidden 64, where the matmuls are compute-bound).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from traingym.envs.tasks.reviews_data import PAD_ID
from traingym.envs.tasks.reviews_model import ReviewClassifier
from transformers import BertConfig

ArchitectureKey = tuple[int, ...]
"""What must match for two review BERTs to share a stack: layers, hidden, heads, FFN width, vocabulary, length."""


def architecture_key(model: ReviewClassifier) -> ArchitectureKey:
    c = model.hf_model.config
    return (c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size, c.vocab_size,
            c.max_position_embeddings)


def dropout_shapes(config: BertConfig, batch: int, length: int) -> list[tuple[int, ...]]:
    """Shapes of the dropout draws of one training forward, in Hugging Face's order: embeddings; per layer the
    attention probabilities, the attention output and the FFN output; the pooled output before the classifier."""
    hidden = (batch, length, config.hidden_size)
    per_layer = [(batch, config.num_attention_heads, length, length), hidden, hidden]
    return [hidden, *per_layer * config.num_hidden_layers, (batch, config.hidden_size)]


def dropout_masks(config: BertConfig, batch: int, length: int, generators: Sequence[torch.Generator | None],
                  device: torch.device, scratch: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Per dropout site, the ``(n, *shape)`` multipliers ``bernoulli(1 - p) / (1 - p)`` that :func:`grouped_forward`
    applies: member ``r`` drawn from ``generators[r]`` in :func:`dropout_shapes` order (None: ones, a member that is
    not trained this step). The last layer's sites keep only their first token position (:func:`_first_only`): the
    rest is drawn, so the generators advance as the single env's global RNG does, but never used. ``scratch``: an
    int64 tensor the CPU draws may reuse (resized as needed; saves allocating a fresh buffer every step)."""
    keep = 1.0 - _dropout_p(config)
    shapes = dropout_shapes(config, batch, length)
    n = len(generators)
    if keep == 1.0 or device.type != "cpu" or not _bernoulli_is_random64_compare():
        full = [torch.ones((n, *shape), device=device) for shape in shapes]
        if keep != 1.0:
            for r, generator in enumerate(generators):
                if generator is not None:
                    for mask in full:
                        mask[r].bernoulli_(keep, generator=generator)
            for mask in full:
                mask.div_(keep)
        masks = [mask if dim is None else mask.narrow(dim, 0, 1) for mask, dim in zip(full, _first_only(config))]
    else:
        # The same draws as bernoulli_ (see _bernoulli_is_random64_compare), cheaper: the serial draw fills a reused
        # buffer, and only the used part of each site is compared and scaled (vectorized).
        sizes = [n * math.prod(shape) for shape in shapes]
        bits = torch.empty(0, dtype=torch.int64) if scratch is None else scratch
        bits = bits.resize_(sum(sizes))
        sites = [site.view(n, *shape) for site, shape in zip(bits.split(sizes), shapes)]
        for r, generator in enumerate(generators):
            if generator is not None:
                for site in sites:
                    site[r].random_(generator=generator)
        # .div_(keep): the division bernoulli_'s masks get, so the multipliers are theirs bit for bit.
        masks = [_kept(site if dim is None else site.narrow(dim, 0, 1), keep).float().div_(keep)
                 for site, dim in zip(sites, _first_only(config))]
    for r, generator in enumerate(generators):
        if generator is None:
            for mask in masks:
                mask[r].fill_(1.0)
    return masks


def _first_only(config: BertConfig) -> list[int | None]:
    """Per dropout site (:func:`dropout_shapes` order), the dimension of its ``(n, *shape)`` mask of which
    :func:`grouped_forward` uses only the first position, or None (all used): the last layer's query / token
    position (attention probabilities ``(n, B, heads, query, key)``, hidden ``(n, B, L, H)``)."""
    last = [3, 2, 2] if config.num_hidden_layers else []
    return [None, *[None, None, None] * (config.num_hidden_layers - 1), *last, None]


def _kept(bits: torch.Tensor, keep: float) -> torch.Tensor:
    """ATen's CPU ``bernoulli_(keep)`` test on ``random64`` draws ``bits``: the low 53 bits times 2**-53 (a double
    in [0, 1)) < ``keep``. Written on the integers: ``keep * 2**53`` is exact, so ``u < keep`` iff
    ``bits_53 < ceil(keep * 2**53)``."""
    return (bits & (2**53 - 1)) < math.ceil(keep * 2**53)


@functools.cache
def _bernoulli_is_random64_compare() -> bool:
    """Whether this build's CPU ``bernoulli_(p)`` draws one ``random64`` per element and keeps it as :func:`_kept`
    does (ATen's default kernel, which ``random_`` on int64 shares: one ``random64`` per element, kept mod 2**63).
    MKL builds on Intel CPUs draw bernoulli_ differently; there the masks come from bernoulli_ itself, so they stay
    the single env's."""
    a, b = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    expected = torch.empty(4096).bernoulli_(0.9, generator=a).bool()
    drawn = _kept(torch.empty(4096, dtype=torch.int64).random_(generator=b), 0.9)
    return torch.equal(drawn, expected) and torch.equal(a.get_state(), b.get_state())


def _dropout_p(config: BertConfig) -> float:
    if config.hidden_dropout_prob != config.attention_probs_dropout_prob or config.classifier_dropout not in (
            None, config.hidden_dropout_prob):
        raise ValueError("grouped training needs one dropout probability for hidden, attention and classifier")
    return float(config.hidden_dropout_prob)


WORD_EMBEDDINGS = "bert.embeddings.word_embeddings.weight"


def token_ids(input_ids: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Rows of the members' vocabularies flattened into one ``(n * vocab, H)`` table: ``(n, B * L)``."""
    n = input_ids.shape[0]
    return (input_ids + torch.arange(n, device=input_ids.device)[:, None, None] * vocab_size).view(n, -1)


def grouped_forward(params: dict[str, torch.Tensor], config: BertConfig, input_ids: torch.Tensor,
                    masks: Sequence[torch.Tensor] | None = None, words: torch.Tensor | None = None) -> torch.Tensor:
    """Logits ``(n, B, 2)`` of ``n`` stacked review BERTs on ``input_ids`` ``(n, B, L)``; ``masks`` from
    :func:`dropout_masks` (training) or None (eval: no dropout). ``params`` are keyed like
    ``ReviewClassifier.named_parameters()`` without the ``hf_model.`` prefix, each ``(n, *shape)``. ``words``:
    the word embeddings ``(n, B * L, H)`` of ``input_ids`` when computed by the caller (None: looked up here)."""
    n, batch, length = input_ids.shape
    hidden, heads = config.hidden_size, config.num_attention_heads
    head_dim, eps = hidden // heads, config.layer_norm_eps
    site = iter(masks) if masks is not None else None

    def drop(x: torch.Tensor) -> torch.Tensor:
        return x if site is None else x * next(site).reshape(x.shape)

    def linear(x: torch.Tensor, name: str) -> torch.Tensor:  # x (n, M, in) -> (n, M, out)
        return torch.baddbmm(params[name + ".bias"][:, None], x, params[name + ".weight"].transpose(1, 2))

    def layer_norm(x: torch.Tensor, name: str) -> torch.Tensor:
        return torch.addcmul(params[name + ".bias"][:, None], F.layer_norm(x, (hidden,), eps=eps),
                             params[name + ".weight"][:, None])

    if words is None:
        vocab = params[WORD_EMBEDDINGS]
        words = F.embedding(token_ids(input_ids, vocab.shape[1]), vocab.reshape(-1, hidden))  # (n, B*L, H)
    x = words + params["bert.embeddings.token_type_embeddings.weight"][:, :1]
    x = x.view(n, batch, length, hidden) + params["bert.embeddings.position_embeddings.weight"][:, None, :length]
    x = drop(layer_norm(x.view(n, batch * length, hidden), "bert.embeddings.LayerNorm"))
    padding = torch.where(input_ids != PAD_ID, 0.0, torch.finfo(x.dtype).min).view(n * batch, 1, 1, length)
    for i in range(config.num_hidden_layers):
        prefix = f"bert.encoder.layer.{i}."
        # The pooler reads the first token's output alone, so the last layer computes its queries, attention, output
        # dense and FFN for that token only (keys and values for all): Hugging Face's other rows never reach the
        # logits. Row for row the same ops (float rounding may differ); :func:`dropout_masks` gives its sites'
        # first-position slices.
        last = i == config.num_hidden_layers - 1
        rows = 1 if last else length
        x_in = x.view(n, batch, length, hidden)[:, :, 0] if last else x  # (n, B*rows, H)

        def split_heads(t: torch.Tensor, rows: int) -> torch.Tensor:
            return t.view(n * batch, rows, heads, head_dim).transpose(1, 2)

        q = split_heads(linear(x_in, prefix + "attention.self.query"), rows)
        k, v = (split_heads(linear(x, prefix + f"attention.self.{name}"), length) for name in ("key", "value"))
        scores = torch.matmul(q, k.transpose(2, 3)) * head_dim**-0.5 + padding
        probs = drop(F.softmax(scores, dim=-1))
        context = torch.matmul(probs, v).transpose(1, 2).reshape(n, batch * rows, hidden)
        attended = drop(linear(context, prefix + "attention.output.dense"))
        x = layer_norm(attended + x_in, prefix + "attention.output.LayerNorm")
        inner = F.gelu(linear(x, prefix + "intermediate.dense"))
        x = layer_norm(drop(linear(inner, prefix + "output.dense")) + x, prefix + "output.LayerNorm")
    first = x.view(n, batch, -1, hidden)[:, :, 0]
    pooled = drop(torch.tanh(linear(first, "bert.pooler.dense")))
    return linear(pooled, "classifier")


class StackedReviewBert:
    """The members of one architecture group, their parameters stacked (see the module doc)."""

    def __init__(self, config: BertConfig) -> None:
        self.config = config
        self.members: list[ReviewClassifier] = []
        self.params: dict[str, torch.Tensor] = {}
        """Stacked leaves ``(n, *shape)`` keyed without the ``hf_model.`` prefix; ``.grad`` is the members' grad."""
        self.mask_bits = torch.empty(0, dtype=torch.int64)
        """Scratch for :func:`dropout_masks`' draws, reused from step to step."""

    @property
    def n(self) -> int:
        return len(self.members)

    def set_members(self, members: Sequence[ReviewClassifier]) -> None:
        """Stack ``members`` (their current values and gradients) and point their parameters at the rows."""
        self.members = list(members)
        self.params = {}
        if not self.members:
            return
        named = [dict(m.hf_model.named_parameters()) for m in self.members]
        with torch.no_grad():
            for name in named[0]:
                rows = [parameters[name] for parameters in named]
                stacked = torch.stack([p.detach() for p in rows]).requires_grad_(True)
                stacked.grad = torch.stack([p.grad if p.grad is not None else torch.zeros_like(p) for p in rows])
                values = stacked.detach()
                for r, p in enumerate(rows):
                    p.data = values[r]
                    p.grad = stacked.grad[r]
                self.params[name] = stacked

    def loss_and_backward(self, input_ids: torch.Tensor, labels: torch.Tensor, masks: Sequence[torch.Tensor]
                          ) -> tuple[torch.Tensor, torch.Tensor]:
        """One training step's forward and backward for all members: ``input_ids`` ``(n, B, L)``, ``labels``
        ``(n, B)``. Leaves each member's gradient of its own mean cross-entropy in its ``.grad`` (the stacked
        gradient buffers) and returns the detached per-member losses ``(n,)`` and correct counts ``(n,)``."""
        for stacked in self.params.values():
            assert stacked.grad is not None
            stacked.grad.zero_()  # in place: the members' .grad are views of it
        # The word embeddings' gradient goes straight into its buffer by index_add_: autograd's embedding backward
        # would build a dense zero (n * vocab, H) table (fresh memory every step), index_add_ into it, then add it
        # to the buffer. Same additions in the same order, so the same gradient.
        vocab = self.params[WORD_EMBEDDINGS]
        ids = token_ids(input_ids, vocab.shape[1])
        table = vocab.detach().view(-1, vocab.shape[2])
        words = F.embedding(ids, table).requires_grad_(True)
        logits = grouped_forward(self.params, self.config, input_ids, masks, words)
        losses = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none").view(labels.shape).mean(1)
        losses.sum().backward()  # accumulates into the (zeroed) buffers: members do not share parameters
        assert vocab.grad is not None and words.grad is not None
        vocab.grad.view_as(table).index_add_(0, ids.flatten(), words.grad.flatten(0, 1))
        with torch.no_grad():
            correct = (logits.argmax(-1) == labels).sum(1)
        return losses.detach(), correct
