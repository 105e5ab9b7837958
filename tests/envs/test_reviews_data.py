"""Tests for the reviews task pieces: data loading/caching, splits, planted shortcut, BERT builder, masking."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from traingym.envs.tasks.reviews_augment import BASE_MASK_PROB, mask_tokens
from traingym.envs.tasks.reviews_data import (
    CLS_ID,
    MASK_ID,
    PAD_ID,
    RESERVED_TOKENS,
    SEP_ID,
    SHORTCUT_ID,
    load_reviews,
    plant_shortcut,
    split_indices,
)
from traingym.envs.tasks.reviews_model import (
    ReviewBertConfig,
    build_review_bert,
    forked_global_rng,
    review_bert_hidden_layers,
)


def _toy_batch(lengths: list[int], length: int, vocab: int = 50, seed: int = 0):
    """[CLS] random tokens [SEP] [PAD]... rows with the given lengths (CLS and SEP included)."""
    gen = torch.Generator().manual_seed(seed)
    n = len(lengths)
    lens = torch.tensor(lengths)
    cols = torch.arange(length)[None, :]
    ids = torch.randint(len(RESERVED_TOKENS), vocab, (n, length), generator=gen)
    ids[:, 0] = CLS_ID
    ids[cols == (lens[:, None] - 1)] = SEP_ID
    mask = (cols < lens[:, None]).long()
    return ids.masked_fill(mask == 0, PAD_ID), mask


# ---------------------------------------------------------------- data
def test_corpus_shape_labels_and_vocab(reviews) -> None:
    n = len(reviews)
    assert 12_000 < n < 12_808  # fresh + rotten rows, duplicates dropped, plot rows dropped
    assert reviews.input_ids.shape == reviews.attention_mask.shape == (n, 32)
    assert reviews.input_ids.dtype == reviews.attention_mask.dtype == reviews.labels.dtype == torch.int64
    assert set(reviews.labels.unique().tolist()) == {0, 1}
    assert 0.5 < reviews.labels.float().mean() < 0.65  # 7403 fresh vs 5405 rotten before dedup
    assert len(set(reviews.texts)) == n
    assert reviews.id_to_token[: len(RESERVED_TOKENS)] == RESERVED_TOKENS
    assert 8_000 < reviews.vocab_size < 16_000  # compact, not 30522
    assert int(reviews.input_ids.max()) < reviews.vocab_size
    lengths = reviews.attention_mask.sum(1)
    rows = torch.arange(n)
    assert torch.all(reviews.input_ids[:, 0] == CLS_ID)
    assert torch.all(reviews.input_ids[rows, lengths - 1] == SEP_ID)
    assert torch.all(reviews.input_ids[reviews.attention_mask == 0] == PAD_ID)
    assert not torch.any(reviews.input_ids == SHORTCUT_ID)  # the planted token never occurs naturally
    assert not torch.any(reviews.input_ids == MASK_ID)
    assert len(set(reviews.id_to_token)) == reviews.vocab_size
    # Tokens read back as the (lower-cased) words of the text.
    first = reviews.decode(reviews.input_ids[0])
    assert first[0] == "[CLS]" and first[-1] == "[SEP]"
    assert "".join(t.removeprefix("##") for t in first[1:-1]) == "".join(reviews.texts[0].lower().split())


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def reviews(cache_dir):
    return load_reviews(32, cache_dir=cache_dir)


def test_load_is_cached_in_process_and_on_disk(reviews, cache_dir) -> None:
    assert load_reviews(32, cache_dir=cache_dir) is reviews
    files = list(cache_dir.glob("reviews_rt_L32_*.pt"))
    assert len(files) == 1 and not list(cache_dir.glob("*.tmp"))
    payload = torch.load(files[0], weights_only=True)
    assert torch.equal(payload["input_ids"], reviews.input_ids)
    # A fresh process reads the cache file instead of tokenising (no pandas / tokenizers import needed).
    code = (
        "import sys; from traingym.envs.tasks.reviews_data import load_reviews; "
        f"d = load_reviews(32, cache_dir={str(cache_dir)!r}); "
        "assert 'tokenizers' not in sys.modules and 'pandas' not in sys.modules; print(len(d))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout) == len(reviews)


def test_load_rejects_bad_max_len() -> None:
    with pytest.raises(ValueError, match="max_len"):
        load_reviews(4)


def test_split_indices_deterministic_disjoint_complete() -> None:
    a = split_indices(1000, 7, (0.7, 0.15, 0.15))
    b = split_indices(1000, 7, (0.7, 0.15, 0.15))
    c = split_indices(1000, 8, (0.7, 0.15, 0.15))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])
    assert [len(p) for p in a] == [700, 150, 150]
    assert np.array_equal(np.sort(np.concatenate(a)), np.arange(1000))
    assert all(p.dtype == np.int64 for p in a)
    from_gen = split_indices(10, np.random.default_rng(3), (0.5, 0.5))
    assert [len(p) for p in from_gen] == [5, 5]
    for bad in [(0.5, 0.6), (1.0, 0.0), ()]:
        with pytest.raises(ValueError, match="fractions"):
            split_indices(10, 0, bad)


# ---------------------------------------------------------------- shortcut
def test_plant_shortcut_inserts_once_keeps_structure() -> None:
    lengths = [3, 5, 10, 16, 16, 2 + 7]
    ids, mask = _toy_batch(lengths, 16)
    labels = torch.ones(len(lengths), dtype=torch.long)
    before = ids.clone()
    new_ids, new_mask, planted = plant_shortcut(ids, mask, labels, SHORTCUT_ID, 1.0, 0.0,
                                                generator=torch.Generator().manual_seed(0))
    assert torch.equal(ids, before)  # inputs untouched
    assert planted.all()
    for row, n in enumerate(lengths):
        got = new_ids[row][new_mask[row].bool()].tolist()
        old = ids[row, :n].tolist()
        assert got.count(SHORTCUT_ID) == 1 and got[0] == CLS_ID and got[-1] == SEP_ID
        pos = got.index(SHORTCUT_ID)
        assert 1 <= pos <= len(got) - 2
        without = got[:pos] + got[pos + 1:]
        if n < 16:  # room: one token longer, everything else kept in order
            assert len(got) == n + 1 and without == old
        else:  # full row: last real token dropped, [SEP] kept
            assert len(got) == 16 and without == old[:-2] + [SEP_ID]
        assert torch.all(new_ids[row][new_mask[row] == 0] == PAD_ID)


def test_plant_shortcut_rates_and_determinism(reviews) -> None:
    ids, mask, labels = reviews.input_ids[:4000], reviews.attention_mask[:4000], reviews.labels[:4000]
    out = plant_shortcut(ids, mask, labels, generator=torch.Generator().manual_seed(1))
    again = plant_shortcut(ids, mask, labels, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(a, b) for a, b in zip(out, again))
    new_ids, new_mask, planted = out
    assert torch.equal((new_ids == SHORTCUT_ID).any(1), planted)
    assert abs(planted[labels == 1].float().mean().item() - 0.9) < 0.03
    assert abs(planted[labels == 0].float().mean().item() - 0.05) < 0.03
    assert torch.equal(new_ids[~planted], ids[~planted])
    positions = (new_ids == SHORTCUT_ID).nonzero()[:, 1]
    assert positions.min() == 1 and positions.float().std() > 3  # spread over the sequence
    with pytest.raises(ValueError, match="p_pos"):
        plant_shortcut(ids, mask, labels, p_pos=1.5, generator=torch.Generator())


# ---------------------------------------------------------------- model
def test_build_review_bert_deterministic_and_leaves_global_rng() -> None:
    state = torch.random.get_rng_state()
    a = build_review_bert(200, 2, 32, 4, 16, generator=torch.Generator().manual_seed(5))
    assert torch.equal(state, torch.random.get_rng_state())
    b = build_review_bert(200, 2, 32, 4, 16, generator=torch.Generator().manual_seed(5))
    c = build_review_bert(200, 2, 32, 4, 16, generator=torch.Generator().manual_seed(6))
    for (name, pa), pb, pc in zip(a.named_parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb), name
        if name.endswith("weight") and "LayerNorm" not in name:
            assert not torch.equal(pa, pc), name
    assert a.config._attn_implementation == "eager"
    assert torch.all(a.bert.embeddings.word_embeddings.weight[PAD_ID] == 0)
    assert abs(a.bert.encoder.layer[0].intermediate.dense.weight.std().item() - 0.02) < 0.003
    ids, mask = _toy_batch([5, 16], 16, vocab=200)
    out = a(input_ids=ids, attention_mask=mask, output_attentions=True)
    assert out.logits.shape == (2, 2) and len(out.attentions) == 2
    assert out.attentions[0].shape == (2, 4, 16, 16)


def test_review_bert_hidden_layers_are_ffn_units() -> None:
    model = build_review_bert(100, 3, 32, 2, 16, generator=torch.Generator().manual_seed(0), intermediate=48)
    layers = review_bert_hidden_layers(model)
    assert [layer.name for layer in layers] == ["layer0.ffn", "layer1.ffn", "layer2.ffn"]
    captured = []
    handle = layers[1].module.register_forward_hook(lambda _m, _i, out: captured.append(out))
    ids, mask = _toy_batch([7, 16], 16, vocab=100)
    model(input_ids=ids, attention_mask=mask)
    handle.remove()
    assert captured[0].shape == (2, 16, 48)  # (B, L, units): unit_dim -1
    assert layers[1].unit_dim == -1 and layers[1].units == 48
    assert layers[1].weight.shape == (48, 32) and layers[1].bias.shape == (48,)
    assert captured[0].min() >= -0.2  # after GELU (its minimum is about -0.17)


@pytest.mark.parametrize("field,value", [("n_layers", 5), ("hidden", 30), ("heads", 0), ("dropout", 0.9),
                                         ("max_len", 4), ("vocab_size", 2)])
def test_review_bert_config_validation(field: str, value: float) -> None:
    kwargs = {"vocab_size": 100, field: value}
    with pytest.raises(ValueError, match=field):
        ReviewBertConfig(**kwargs)


def test_forked_global_rng_reproducible_and_restores() -> None:
    state = torch.random.get_rng_state()
    with forked_global_rng(torch.Generator().manual_seed(3)):
        a = torch.rand(4)
    with forked_global_rng(torch.Generator().manual_seed(3)):
        b = torch.rand(4)
    assert torch.equal(a, b) and torch.equal(state, torch.random.get_rng_state())


# ---------------------------------------------------------------- masking
def test_mask_tokens_levels_and_protected_positions() -> None:
    ids, mask = _toy_batch([16] * 200 + [6] * 200, 16, vocab=40)
    flagged_id = 20
    for level in range(5):
        out = mask_tokens(ids, mask, level, [flagged_id], generator=torch.Generator().manual_seed(level))
        changed = out != ids
        assert torch.all(out[changed] == MASK_ID)
        keep = torch.isin(ids, torch.tensor([PAD_ID, CLS_ID, SEP_ID])) | (mask == 0)
        assert not changed[keep].any()  # [CLS], [SEP], [PAD] never masked
        ordinary = (~keep) & (ids != flagged_id)
        flagged = ids == flagged_id
        rate = changed[ordinary].float().mean().item()
        assert abs(rate - BASE_MASK_PROB[level]) < 0.02
        flagged_rate = changed[flagged].float().mean().item()
        if level == 0:
            assert not changed.any()
        else:
            assert flagged_rate >= 0.4 and flagged_rate > 2 * rate  # flagged tokens are masked first
    assert torch.all(mask_tokens(ids, mask, 4, [flagged_id], generator=torch.Generator())[ids == flagged_id]
                     == MASK_ID)
    with pytest.raises(ValueError, match="level"):
        mask_tokens(ids, mask, 5, [], generator=torch.Generator())
