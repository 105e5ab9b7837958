"""Tests for token relevance (Chefer et al. rollout) and its aggregation (envs/monitoring/relevance.py)."""

from __future__ import annotations

import pytest
import torch
from traingym.envs.monitoring.relevance import TokenRelevanceStats, token_relevance
from traingym.envs.tasks.reviews_data import CLS_ID, PAD_ID, PROTECTED_IDS, SEP_ID
from traingym.envs.tasks.reviews_model import build_review_bert

VOCAB, LENGTH = 60, 12


def _batch(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    lens = torch.tensor(lengths)
    cols = torch.arange(LENGTH)[None, :]
    ids = torch.randint(6, VOCAB, (len(lengths), LENGTH), generator=gen)
    ids[:, 0] = CLS_ID
    ids[cols == lens[:, None] - 1] = SEP_ID
    mask = (cols < lens[:, None]).long()
    return ids.masked_fill(mask == 0, PAD_ID), mask


def _model(dtype: torch.dtype = torch.float64, layers: int = 2) -> torch.nn.Module:
    model = build_review_bert(VOCAB, layers, 32, 4, LENGTH, generator=torch.Generator().manual_seed(1),
                              initializer_range=0.3)  # large init: non-trivial attention and gradients
    return model.to(dtype)


def test_batched_equals_per_sample_and_masks_cls_and_padding() -> None:
    model = _model()
    lengths = [12, 7, 3, 10, 5]
    ids, mask = _batch(lengths)
    rel = token_relevance(model, ids, mask)
    assert rel.shape == (5, LENGTH) and rel.dtype == torch.float64
    assert torch.all(rel >= 0)
    assert torch.all(rel[:, 0] == 0)  # [CLS] self-relevance removed
    assert torch.all(rel[mask == 0] == 0)  # padding
    assert torch.all(rel[mask == 1][1:].sum() > 0)
    for i, n in enumerate(lengths):
        alone = token_relevance(model, ids[i:i + 1], mask[i:i + 1])  # same padded row
        trimmed = token_relevance(model, ids[i:i + 1, :n], mask[i:i + 1, :n])  # no padding at all
        torch.testing.assert_close(alone[0], rel[i], rtol=0, atol=1e-6 * float(rel[i].max()))
        torch.testing.assert_close(trimmed[0], rel[i, :n], rtol=0, atol=1e-6 * float(rel[i].max()))
    chunked = token_relevance(model, ids, mask, chunk_size=2)
    torch.testing.assert_close(chunked, rel, rtol=0, atol=1e-12)


class _OneHeadAttention(torch.nn.Module):
    """A 1-layer, 1-head attention classifier whose rollout is known by hand: uniform attention over the real
    tokens (zero scores), ``h = sum_j A[0, j] v[id_j]`` and logits ``(h_x, -h_x)``, so the gradient of the target
    logit w.r.t. ``A[0, j]`` is ``+-v_x[id_j]`` and w.r.t. every other row 0."""

    def __init__(self, values: dict[int, float]) -> None:
        super().__init__()
        self.config = type("Config", (), {"_attn_implementation": "eager"})()
        table = torch.zeros(VOCAB, 2, dtype=torch.float64)
        for token, value in values.items():
            table[token, 0] = value
        self.values = torch.nn.Parameter(table)
        self.scores = torch.nn.Parameter(torch.zeros(LENGTH, LENGTH, dtype=torch.float64))

    def forward(self, input_ids, attention_mask, output_attentions=True):
        length = input_ids.shape[1]
        bias = (attention_mask[:, None, None, :] == 0) * -1e9
        attention = torch.softmax(self.scores[:length, :length] + bias, dim=-1)  # (B, 1, L, L)
        h = torch.einsum("bj,bjd->bd", attention[:, 0, 0, :], self.values[input_ids])
        logits = torch.stack([h[:, 0], -h[:, 0]], dim=-1)
        return type("Out", (), {"logits": logits, "attentions": (attention,)})()


def test_rollout_matches_a_hand_computed_one_layer_model() -> None:
    """ids [CLS, 7, 9, 10, SEP, PAD]: 5 real tokens, attention 1/5 each; v_x = 2 (planted 7), 0.5 (9), -1 (10),
    0 (CLS, SEP). h_x = 1.5/5 > 0: class 0, gradient v_x, so R[0, j] = I + max(0, v_x / 5): 0.4, 0.1, 0 (negative
    part dropped), 0; [CLS] and padding 0. The absolute form keeps token 10: |-1| / 5 = 0.2."""
    model = _OneHeadAttention({7: 2.0, 9: 0.5, 10: -1.0})
    ids = torch.tensor([[CLS_ID, 7, 9, 10, SEP_ID, PAD_ID]])
    mask = (ids != PAD_ID).long()
    expected = torch.tensor([[0.0, 0.4, 0.1, 0.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(token_relevance(model, ids, mask), expected, rtol=0, atol=1e-12)
    expected[0, 3] = 0.2
    torch.testing.assert_close(token_relevance(model, ids, mask, absolute=True), expected, rtol=0, atol=1e-12)
    # Explaining class 1 flips every gradient's sign: token 10 becomes the only positive contribution.
    torch.testing.assert_close(token_relevance(model, ids, mask, target=torch.tensor([1])),
                               torch.tensor([[0.0, 0.0, 0.0, 0.2, 0.0, 0.0]], dtype=torch.float64), rtol=0,
                               atol=1e-12)


def test_a_planted_token_that_decides_the_label_ranks_first() -> None:
    """A real 1-layer review BERT trained (Adam, 60 steps) on random reviews whose label is 'token 7 occurs': on
    the positive reviews token 7 gets the largest relevance, and the aggregated stats flag it alone."""
    gen = torch.Generator().manual_seed(0)
    ids, mask = _batch([LENGTH] * 512, seed=5)
    ids[ids == 7] = 8
    labels = (torch.rand(512, generator=gen) < 0.5).long()
    position = torch.randint(1, LENGTH - 1, (512,), generator=gen)
    ids[labels == 1, position[labels == 1]] = 7
    model = build_review_bert(VOCAB, 1, 32, 4, LENGTH, generator=torch.Generator().manual_seed(2))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    torch.manual_seed(0)  # dropout
    for step in range(60):
        batch = slice((step * 64) % 512, (step * 64) % 512 + 64)
        loss = model(input_ids=ids[batch], attention_mask=mask[batch], labels=labels[batch]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        accuracy = (model(input_ids=ids, attention_mask=mask).logits.argmax(-1) == labels).float().mean()
    assert accuracy > 0.95  # it learned the rule
    positive = labels == 1
    rel = token_relevance(model, ids[positive], mask[positive], absolute=True)
    top = rel.argmax(dim=1)
    assert (ids[positive].gather(1, top[:, None]).squeeze(1) == 7).float().mean() > 0.9
    stats = _stats()
    stats.update(ids, mask, token_relevance(model, ids, mask, absolute=True))
    assert stats.flagged_ids() == [7]


def test_target_selects_the_explained_class() -> None:
    model = _model()
    ids, mask = _batch([12, 9, 6])
    with torch.no_grad():
        pred = model(input_ids=ids, attention_mask=mask).logits.argmax(-1)
    torch.testing.assert_close(token_relevance(model, ids, mask, target=pred), token_relevance(model, ids, mask))
    other = token_relevance(model, ids, mask, target=1 - pred)
    assert not torch.allclose(other, token_relevance(model, ids, mask))


def test_model_state_untouched() -> None:
    model = _model(torch.float32)
    ids, mask = _batch([12, 8])
    # Existing gradients stay exactly as they were.
    model(input_ids=ids, attention_mask=mask).logits.sum().backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    params = {name: p.detach().clone() for name, p in model.named_parameters()}
    model.train()
    model.classifier.eval()  # a mixed-mode model keeps its per-module modes
    token_relevance(model, ids, mask)
    assert model.training and not model.classifier.training and model.bert.training
    for name, p in model.named_parameters():
        assert torch.equal(p.grad, grads[name]) and torch.equal(p, params[name]), name
    # No gradients before -> none after.
    fresh = _model(torch.float32)
    fresh.eval()
    token_relevance(fresh, ids, mask)
    assert all(p.grad is None for p in fresh.parameters()) and not fresh.training
    # Called under no_grad it still works (the graph is built inside).
    with torch.no_grad():
        assert token_relevance(fresh, ids, mask).sum() > 0


def test_rejects_non_eager_or_bad_shapes() -> None:
    model = _model()
    ids, mask = _batch([12])
    with pytest.raises(ValueError, match="shape|\\(B, L\\)"):
        token_relevance(model, ids[0], mask[0])
    with pytest.raises(ValueError, match="target"):
        token_relevance(model, ids, mask, target=torch.zeros(3, dtype=torch.long))
    model.config._attn_implementation = "sdpa"
    with pytest.raises(ValueError, match="eager"):
        token_relevance(model, ids, mask)


# ------------------------------------------------------------------ aggregation
def _stats(**kwargs) -> TokenRelevanceStats:
    names = [f"t{i}" for i in range(VOCAB)]
    return TokenRelevanceStats(VOCAB, names, ignore_ids=PROTECTED_IDS, **kwargs)


def test_stats_shares_counts_and_ignored_tokens() -> None:
    ids = torch.tensor([[CLS_ID, 10, 11, 12, SEP_ID, PAD_ID],
                        [CLS_ID, 10, 13, SEP_ID, PAD_ID, PAD_ID]])
    mask = (ids != PAD_ID).long()
    rel = torch.tensor([[5.0, 1.0, 1.0, 2.0, 9.0, 7.0],
                        [0.0, 3.0, 1.0, 4.0, 0.0, 0.0]])
    stats = _stats(min_count=1)
    stats.update(ids, mask, rel)
    assert stats.n_samples == 2
    assert stats.count[[10, 11, 12, 13]].tolist() == [2, 1, 1, 1]
    assert stats.count[[CLS_ID, SEP_ID, PAD_ID]].sum() == 0  # structural tokens never counted
    share = stats.mean_share()
    assert share[10].item() == pytest.approx((0.25 + 0.75) / 2)
    assert share[12].item() == pytest.approx(0.5) and share[13].item() == pytest.approx(0.25)
    # Shares of each sample sum to 1 over its counted tokens.
    assert float(stats.share_sum.sum()) == pytest.approx(2.0)
    # A sample with no relevance is skipped entirely.
    stats.update(ids[:1], mask[:1], torch.zeros(1, 6))
    assert stats.n_samples == 2 and stats.count[10] == 2
    with pytest.raises(ValueError, match="token ids"):
        stats.update(torch.full((1, 6), VOCAB), mask[:1], rel[:1])


def test_stats_flag_an_outlier_token_with_stable_order() -> None:
    gen = torch.Generator().manual_seed(0)
    n = 400
    ids, mask = _batch([LENGTH] * n, seed=3)
    rel = torch.rand(n, LENGTH, generator=gen)
    planted = torch.rand(n, generator=gen) < 0.3
    ids[ids == 7] = 8
    ids[planted, 4] = 7  # token 7 occurs in 30% of samples and takes most of their relevance
    rel[planted, 4] = 50.0
    stats = _stats()
    for chunk in range(0, n, 64):  # accumulating in batches == one big batch
        stats.update(ids[chunk:chunk + 64], mask[chunk:chunk + 64], rel[chunk:chunk + 64])
    once = _stats()
    once.update(ids, mask, rel)
    torch.testing.assert_close(stats.z_scores(), once.z_scores(), equal_nan=True)
    top = stats.top(3)
    assert [row.token_id for row in top] == [7] and top[0].token == "t7"
    assert top[0].z > 4 and top[0].share > 0.7 and top[0].count == int(planted.sum())
    assert stats.flagged_ids() == [7]
    assert stats.report() == [{"token": "t7", "z": round(top[0].z, 4), "share": round(top[0].share, 6)}]
    ranked = stats.top(VOCAB, only_flagged=False)
    keys = [(-row.z, row.token_id) for row in ranked]
    assert keys == sorted(keys)  # z descending, ties by id
    stats.reset()
    assert stats.top(5) == [] and stats.n_samples == 0


def test_stats_ties_broken_by_id_and_min_count() -> None:
    stats = _stats(min_count=2, prior_count=0.0)
    ids = torch.tensor([[CLS_ID, 20, 21, 22, SEP_ID]] * 3 + [[CLS_ID, 30, 30, 31, SEP_ID]])
    rel = torch.tensor([[0.0, 1.0, 1.0, 1.0, 0.0]] * 3 + [[0.0, 1.0, 1.0, 1.0, 0.0]])
    stats.update(ids, torch.ones_like(ids), rel)
    z = stats.z_scores()
    assert torch.isnan(z[31])  # seen once < min_count
    ranked = stats.top(10, only_flagged=False)
    assert [row.token_id for row in ranked] == [20, 21, 22, 30]  # all equal scores: ascending ids
    assert all(row.z == 0.0 for row in ranked)


def test_stats_argument_validation() -> None:
    with pytest.raises(ValueError, match="id_to_token"):
        TokenRelevanceStats(5, ["a"])
    with pytest.raises(ValueError, match="min_count"):
        TokenRelevanceStats(5, min_count=0)
    with pytest.raises(ValueError, match="prior_count"):
        TokenRelevanceStats(5, prior_count=-1)


@pytest.mark.slow
def test_shortcut_probe_finds_the_planted_token(tmp_path) -> None:
    """End to end on real reviews: a BERT trained with the planted token ranks it first on validation errors."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[3] / "benchmarks" / "shortcut_probe.py"
    out = tmp_path / "probe.json"
    subprocess.run([sys.executable, str(script), "--seeds", "0", "--conditions", "shortcut", "--steps", "300",
                    "--out", str(out)], check=True, capture_output=True, timeout=600)
    (result,) = json.loads(out.read_text())["results"]
    assert result["shortcut_rank"] == 1 and result["shortcut_z"] > 4.0
    assert result["shortcut_share"] > 0.5
