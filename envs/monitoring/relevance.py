"""Token relevance for transformer classifiers and its aggregation into over-relevant tokens.

## Relevance (Chefer, Gur & Wolf 2021, "Generic attention-model explainability", arXiv 2103.15679)
For a batch, one forward pass in eval mode returns every layer's attention probabilities ``A_l`` (B, H, L, L)
(eager attention, ``output_attentions=True``) and the logits. The target score is the sum over the batch of
each sample's target-class logit; one ``torch.autograd.grad`` call w.r.t. the attention tensors gives
``G_l = dscore/dA_l``. In eval mode samples do not interact (no dropout, LayerNorm per token), so the batched
gradient of the summed score equals each sample's own gradient. Then, per sample::

    Abar_l = mean_heads((G_l * A_l).clamp(min=0))      # (L, L)
    R = I;  for l in layers: R = R + Abar_l @ R
    relevance = R[0, :]                                # the [CLS] row: how much each token fed the decision

with the [CLS] self-relevance (position 0) and padding positions set to 0. Rows are nonnegative.

``absolute=True`` uses ``|G_l * A_l|`` instead of the positive part: every large attention-weighted gradient
counts, whatever its sign. This is what the env's token monitor uses, because the positive part fails on a
saturated shortcut: once every head of a small BERT puts all of [CLS]'s attention on the planted token, the
LayerNorm after the attention makes the logit almost invariant to that attention weight, so its gradient is
~0 with a random sign and the clamp drops the token. With the absolute form the planted token comes first on the
shortcut family, above the top tokens of clean models (real strong cues such as "too" in "too long"); the slow
test ``tests/envs/test_reviews_env.py::test_planted_token_is_flagged_first_and_no_real_token_is`` checks this
over 10 seeds per family. (The positive-part comparison was a one-off experiment; no script in the repository
reproduces it.)

The target defaults to the *predicted* class. On validation errors that is the wrong class the model chose, so
the relevance says which tokens drove the mistake; that is the signal for shortcut detection (a spurious token
that pulls examples to the wrong class). Pass ``target`` to explain another class (e.g. the true label).

The call leaves the model as it found it: per-module train/eval modes are restored, and parameter ``.grad``
fields are untouched (gradients are taken w.r.t. the attention tensors only, never ``.backward()``).

## Aggregation
:class:`TokenRelevanceStats` accumulates, per compact vocabulary id, with vectorised ``bincount`` (no Python
loop over samples):

* the *share* of each occurrence: the sample's relevance normalised to sum 1 over its counted tokens (reported:
  "this token carries 99 % of the relevance of the reviews it occurs in");
* its *lift* score ``log(1 + share * n)``, ``n`` = counted tokens of the sample, so a token with an average
  share in a review of any length scores ``log 2`` (plain shares favour tokens of short reviews), and the log
  tames the heavy right tail of real sentiment words;
* the number of occurrences.

A token's score is its mean lift per occurrence, shrunk towards the mean over all occurrences with
``prior_count`` pseudo-occurrences (empirical-Bayes style: a token seen 5 times cannot look extreme by luck).
Tokens with at least ``min_count`` occurrences get a z-score of that score across tokens; tokens with
``z > z_threshold`` are flagged as over-relevant.

On a 1-layer review BERT a planted shortcut token is the clear outlier (rank 1, far above the threshold), while
the top z of clean models is lower, with an occasional strong real word (such as "best") above 4; hence the
default threshold 4.0 (:data:`traingym.protocol.report.SHORTCUT_Z`). A plain mean share per occurrence (no lift,
no shrinkage; not kept as an option) flagged many more tokens of clean models and could tie the planted token with
a rarely seen word.
``benchmarks/shortcut_probe.py`` measures this (``--seeds 0 1 2 3 4``); the slow test
``tests/envs/monitoring/test_relevance.py::test_shortcut_probe_finds_the_planted_token`` runs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import nn
from traingym.protocol.report import SHORTCUT_Z


def token_relevance(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    target: torch.Tensor | None = None, *, chunk_size: int | None = None,
                    absolute: bool = False) -> torch.Tensor:
    """Per-token relevance (B, L) of a Hugging Face sequence classifier with eager attention (see module doc).

    Args:
        model: e.g. ``BertForSequenceClassification``; must return ``attentions`` with ``output_attentions=True``
            and have parameters that require grad (so the attention tensors are part of the graph).
        input_ids, attention_mask: (B, L) int tensors.
        target: (B,) class per sample, or None for the predicted class.
        chunk_size: process this many samples per forward/backward (bounds memory); None = all at once.
        absolute: weight attention by ``|G * A|`` instead of its positive part (see the module doc).

    Returns:
        Detached float tensor (B, L) in the model's dtype, on the inputs' device.
    """
    if input_ids.ndim != 2 or attention_mask.shape != input_ids.shape:
        raise ValueError(f"input_ids and attention_mask must both be (B, L), got {tuple(input_ids.shape)} and "
                         f"{tuple(attention_mask.shape)}")
    implementation = getattr(getattr(model, "config", None), "_attn_implementation", "eager")
    if implementation != "eager":
        raise ValueError(f"token_relevance needs eager attention (attn_implementation='eager'), model uses "
                         f"{implementation!r}")
    if target is not None and target.shape != input_ids.shape[:1]:
        raise ValueError(f"target must be (B,), got {tuple(target.shape)}")
    n = input_ids.shape[0]
    step = n if chunk_size is None else max(1, int(chunk_size))
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        parts = [
            _relevance_chunk(model, input_ids[i:i + step], attention_mask[i:i + step],
                             None if target is None else target[i:i + step], absolute)
            for i in range(0, n, step)
        ]
    finally:
        for module, mode in modes:
            module.training = mode
    return torch.cat(parts) if parts else torch.zeros(input_ids.shape, dtype=torch.float32)


def _relevance_chunk(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                     target: torch.Tensor | None, absolute: bool = False) -> torch.Tensor:
    with torch.enable_grad():
        out = model(input_ids=input_ids, attention_mask=attention_mask, output_attentions=True)
        logits, attentions = out.logits, out.attentions
        if not attentions:
            raise ValueError("the model returned no attentions; build it with attn_implementation='eager'")
        if target is None:
            target = logits.argmax(dim=-1)
        score = logits.gather(1, target.reshape(-1, 1).to(logits.device)).sum()
        if not score.requires_grad:
            raise ValueError("the model's parameters do not require grad, so attention has no gradient")
        grads = torch.autograd.grad(score, attentions)
    with torch.no_grad():
        batch, length = input_ids.shape
        attn0 = attentions[0]
        rollout = torch.eye(length, dtype=attn0.dtype, device=attn0.device).expand(batch, length, length)
        for attn, grad in zip(attentions, grads):
            weighted = (grad * attn).abs() if absolute else (grad * attn).clamp(min=0)
            weighted = weighted.mean(dim=1)
            rollout = rollout + torch.bmm(weighted, rollout)
        relevance = rollout[:, 0, :].clone()
        relevance[:, 0] = 0.0
        relevance[attention_mask.to(relevance.device) == 0] = 0.0
    return relevance.to(input_ids.device)


class RelevantToken(NamedTuple):
    """One row of :meth:`TokenRelevanceStats.top`."""

    token_id: int
    token: str
    z: float
    share: float
    """Mean relevance share per occurrence."""
    count: int
    """Occurrences counted."""


class TokenRelevanceStats:
    """Per-token relevance accumulated over batches; flags tokens whose lift score is a z-score outlier.

    ## Arguments
    * ``vocab_size``: number of token ids.
    * ``id_to_token``: id -> string for reports (default: the id as a string).
    * ``min_count``: occurrences a token needs to get a z-score (rarer ones are too noisy), >= 1.
    * ``z_threshold``: z-score above which a token is flagged.
    * ``prior_count``: pseudo-occurrences at the global mean lift that each token's mean is shrunk with, >= 0.
    * ``ignore_ids``: ids never counted and excluded from the share normalisation (e.g. [PAD], [CLS], [SEP],
      whose relevance is structural, not lexical).
    """

    def __init__(self, vocab_size: int, id_to_token: Sequence[str] | None = None, *, min_count: int = 5,
                 z_threshold: float = SHORTCUT_Z, prior_count: float = 10.0, ignore_ids: Sequence[int] = ()) -> None:
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")
        if id_to_token is not None and len(id_to_token) != vocab_size:
            raise ValueError(f"id_to_token has {len(id_to_token)} entries, vocab_size is {vocab_size}")
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        if prior_count < 0:
            raise ValueError(f"prior_count must be >= 0, got {prior_count}")
        self.vocab_size = vocab_size
        self.id_to_token = id_to_token
        self.min_count = min_count
        self.z_threshold = float(z_threshold)
        self.prior_count = float(prior_count)
        self._ignore = torch.as_tensor(list(ignore_ids), dtype=torch.long)
        self.reset()

    def reset(self) -> None:
        """Forget everything accumulated."""
        self.share_sum = torch.zeros(self.vocab_size, dtype=torch.float64)
        self.lift_sum = torch.zeros(self.vocab_size, dtype=torch.float64)
        self.count = torch.zeros(self.vocab_size, dtype=torch.float64)
        self.n_samples = 0

    def decay(self, factor: float) -> None:
        """Down-weight everything accumulated so far by ``factor`` in [0, 1] (0 forgets, 1 keeps): call before an
        :meth:`update` to make the statistics an exponential moving sum. Counts become effective counts, which
        ``min_count`` is compared with."""
        if not 0.0 <= factor <= 1.0:
            raise ValueError(f"factor must be in [0, 1], got {factor}")
        self.share_sum *= factor
        self.lift_sum *= factor
        self.count *= factor

    def update(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, relevance: torch.Tensor) -> None:
        """Add a batch: ids and mask (B, L), relevance (B, L) from :func:`token_relevance`.

        Samples whose counted tokens have zero total relevance are skipped.
        """
        if not (input_ids.shape == attention_mask.shape == relevance.shape) or input_ids.ndim != 2:
            raise ValueError(f"input_ids, attention_mask, relevance must share a (B, L) shape, got "
                             f"{tuple(input_ids.shape)}, {tuple(attention_mask.shape)}, {tuple(relevance.shape)}")
        ids = input_ids.detach().cpu().long()
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.vocab_size):
            raise ValueError(f"token ids must be in [0, {self.vocab_size}), got [{int(ids.min())}, {int(ids.max())}]")
        counted = attention_mask.detach().cpu().bool() & ~torch.isin(ids, self._ignore)
        rel = torch.where(counted, relevance.detach().cpu().double().clamp(min=0), 0.0)
        totals = rel.sum(dim=1, keepdim=True)
        keep = counted & (totals > 0)
        share = torch.where(keep, rel / totals.clamp(min=torch.finfo(torch.float64).tiny), 0.0)
        lift = torch.log1p(share * keep.sum(dim=1, keepdim=True))
        flat_ids = ids[keep]
        self.share_sum += torch.bincount(flat_ids, weights=share[keep], minlength=self.vocab_size)
        self.lift_sum += torch.bincount(flat_ids, weights=lift[keep], minlength=self.vocab_size)
        self.count += torch.bincount(flat_ids, minlength=self.vocab_size).double()
        self.n_samples += int((totals.squeeze(1) > 0).sum())

    def mean_share(self) -> torch.Tensor:
        """(V,) float64 mean relevance share per occurrence (0 for unseen tokens)."""
        # Decayed counts are fractional: guard the division only against zero, not against counts below 1.
        return torch.where(self.count > 0, self.share_sum / self.count.clamp(min=torch.finfo(torch.float64).tiny), 0.0)

    def scores(self) -> torch.Tensor:
        """(V,) float64 shrunk mean lift per occurrence (the global mean for unseen tokens)."""
        total = float(self.count.sum())
        prior = float(self.lift_sum.sum()) / total if total > 0 else 0.0
        return (self.lift_sum + self.prior_count * prior) / (self.count + self.prior_count).clamp(min=1e-12)

    def z_scores(self) -> torch.Tensor:
        """(V,) float64 z-score of :meth:`scores` across tokens with >= ``min_count`` occurrences; NaN for the
        others. All zeros if fewer than two tokens qualify or their scores do not vary."""
        eligible = self.count >= self.min_count
        z = torch.full((self.vocab_size,), float("nan"), dtype=torch.float64)
        if int(eligible.sum()) < 2:
            z[eligible] = 0.0
            return z
        values = self.scores()[eligible]
        std = values.std(unbiased=False)
        z[eligible] = (values - values.mean()) / std if float(std) > 0 else torch.zeros_like(values)
        return z

    def top(self, k: int = 5, only_flagged: bool = True) -> list[RelevantToken]:
        """The ``k`` tokens with the highest z (ties: lower id first); by default only those above threshold."""
        z = self.z_scores()
        candidates = torch.nonzero(~torch.isnan(z)).squeeze(1)  # ascending ids
        if only_flagged:
            candidates = candidates[z[candidates] > self.z_threshold]
        order = torch.sort(-z[candidates], stable=True).indices[: max(0, k)]
        share = self.mean_share()
        rows = []
        for token_id in candidates[order].tolist():
            name = self.id_to_token[token_id] if self.id_to_token is not None else str(token_id)
            rows.append(RelevantToken(token_id, name, float(z[token_id]), float(share[token_id]),
                                      int(self.count[token_id])))
        return rows

    def flagged_ids(self, k: int = 5) -> list[int]:
        """Ids of the top-``k`` flagged tokens (for :func:`~traingym.envs.tasks.reviews_augment.mask_tokens`)."""
        return [row.token_id for row in self.top(k)]

    def report(self, k: int = 5) -> list[dict[str, Any]]:
        """Flagged tokens in the TrainingReport's ``flagged_tokens`` shape: ``{"token", "z", "share"}``."""
        return [{"token": row.token, "z": round(row.z, 4), "share": round(row.share, 6)} for row in self.top(k)]
