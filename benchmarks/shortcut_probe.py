"""Is the planted-shortcut signal real? Train a small review BERT with and without the shortcut and look.

For each seed it trains, on one CPU thread, four runs of the same model on the same ~6000 training reviews:

* ``shortcut``: the planted token (``zqx``) inserted into 90 % of positive / 5 % of negative training reviews;
* ``clean``: no planted token (is any token flagged spuriously?);
* ``shortcut+mask``: as ``shortcut``, with token masking at ``--aug-level`` whose flagged tokens are the
  over-relevant tokens found by the relevance pass every ``--detect-every`` steps (the env's loop in small);
* ``shortcut+base``: as ``shortcut``, masking at the same level but nothing flagged (generic masking only).

Relevance statistics are computed on the *errors* of a diagnostic validation set drawn from the training
distribution (validation reviews with the token planted at the training rates: the shortcut is present there as
it would be in an i.i.d. split of a contaminated corpus). Held-out accuracy is measured on clean test reviews.

Run:  ``.venv/bin/python benchmarks/shortcut_probe.py --seeds 0 1 2 3 4 --out shortcut_probe.json``

Result with the defaults (1 layer, hidden 64, 400 Adam steps of batch 64 on 6000 reviews, level 2), seeds 0-4:

| condition      | clean test acc        | planted token on diag errors: rank / z / share  |
| -------------- | --------------------- | ----------------------------------------------- |
| shortcut       | 0.543 (0.47 - 0.63)   | 1 in 5/5 / 8.0 - 9.4 / 0.87 - 1.00              |
| clean          | 0.729 (0.72 - 0.74)   | (absent) top z 3.3 - 3.9, once 5.7 ("best")     |
| shortcut+mask  | 0.726 (0.72 - 0.73)   | 5 - 44 / 0.7 - 3.1 / 0.09 - 0.24                |
| shortcut+base  | 0.653 (0.61 - 0.71)   | 1 - 2 / 3.6 - 8.6 / 0.28 - 0.64                 |
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass

import torch
from traingym.envs.monitoring.relevance import TokenRelevanceStats, token_relevance
from traingym.envs.tasks.reviews_augment import mask_tokens
from traingym.envs.tasks.reviews_data import (
    PROTECTED_IDS,
    SHORTCUT_ID,
    ReviewsData,
    load_reviews,
    plant_shortcut,
    split_indices,
)
from traingym.envs.tasks.reviews_model import build_review_bert, forked_global_rng
from traingym.protocol.cli import IntTuple, StrTuple, parse_cli


@dataclass
class RunResult:
    seed: int
    condition: str
    test_acc: float
    diag_acc: float
    diag_errors: int
    shortcut_rank: int | None
    """1-based rank of the planted token by z among eligible tokens (None: not eligible / absent)."""
    shortcut_z: float | None
    shortcut_share: float | None
    top_tokens: list[tuple[str, float, float, int]]
    """Top-5 by z: (token, z, share, count)."""
    n_flagged: int
    """Tokens above the default threshold (z > 4) at the end."""
    n_above_3: int
    ms_per_step: float
    ms_relevance: float
    flagged_during_training: list[str]


def accuracy(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        pred = model(input_ids=ids, attention_mask=mask).logits.argmax(-1)
    model.train()
    return pred


def relevance_on_errors(model: torch.nn.Module, data: ReviewsData, ids: torch.Tensor, mask: torch.Tensor,
                        labels: torch.Tensor, min_count: int) -> tuple[TokenRelevanceStats, int, float]:
    pred = accuracy(model, ids, mask, labels)
    wrong = pred != labels
    stats = TokenRelevanceStats(data.vocab_size, data.id_to_token, min_count=min_count, ignore_ids=PROTECTED_IDS)
    t0 = time.perf_counter()
    if int(wrong.sum()):
        rel = token_relevance(model, ids[wrong], mask[wrong], target=pred[wrong])
        stats.update(ids[wrong], mask[wrong], rel)
    return stats, int(wrong.sum()), (time.perf_counter() - t0) * 1e3


def run(seed: int, condition: str, args: ProbeArgs, data: ReviewsData) -> RunResult:
    train_idx, val_idx, test_idx = split_indices(len(data), seed, (0.7, 0.15, 0.15))
    train_idx = torch.from_numpy(train_idx[: args.n_train])
    val_idx, test_idx = torch.from_numpy(val_idx), torch.from_numpy(test_idx)
    gen = torch.Generator().manual_seed(10_000 + seed)
    x, m, y = data.input_ids[train_idx], data.attention_mask[train_idx], data.labels[train_idx]
    xv, mv, yv = data.input_ids[val_idx], data.attention_mask[val_idx], data.labels[val_idx]
    xt, mt, yt = data.input_ids[test_idx], data.attention_mask[test_idx], data.labels[test_idx]
    planted = condition != "clean"
    if planted:
        x, m, _ = plant_shortcut(x, m, y, SHORTCUT_ID, args.p_pos, args.p_neg, generator=gen)
        xv, mv, _ = plant_shortcut(xv, mv, yv, SHORTCUT_ID, args.p_pos, args.p_neg, generator=gen)
    model_gen = torch.Generator().manual_seed(seed)  # same init for every condition of a seed
    model = build_review_bert(data.vocab_size, args.layers, args.hidden, args.heads, data.max_len,
                              generator=model_gen, dropout=args.dropout)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    level = args.aug_level if condition in ("shortcut+mask", "shortcut+base") else 0
    flagged: list[int] = []
    flagged_log: list[str] = []
    batch_gen = torch.Generator().manual_seed(20_000 + seed)
    model.train()
    t_train = 0.0
    for step in range(args.steps):
        if condition == "shortcut+mask" and step > 0 and step % args.detect_every == 0:
            stats, _, _ = relevance_on_errors(model, data, xv, mv, yv, args.min_count)
            new = stats.flagged_ids(k=5)
            # Sticky: a token stays flagged once found (else masking removes its relevance, it is unflagged
            # and relearned); at most 10 kept, newest last.
            flagged = ([i for i in flagged if i not in new] + new)[-10:] if args.sticky else new
            flagged_log.append(f"{step}:" + ",".join(data.id_to_token[i] for i in new))
        t0 = time.perf_counter()
        idx = torch.randint(0, x.shape[0], (args.batch,), generator=batch_gen)
        bx, bm = x[idx], m[idx]
        if level:
            bx = mask_tokens(bx, bm, level, flagged, generator=batch_gen)
        with forked_global_rng(batch_gen):
            loss = torch.nn.functional.cross_entropy(model(input_ids=bx, attention_mask=bm).logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        t_train += time.perf_counter() - t0
    test_acc = float((accuracy(model, xt, mt, yt) == yt).float().mean())
    diag_acc = float((accuracy(model, xv, mv, yv) == yv).float().mean())
    stats, n_err, ms_rel = relevance_on_errors(model, data, xv, mv, yv, args.min_count)
    top_all = stats.top(k=10_000, only_flagged=False)
    rank = next((i + 1 for i, row in enumerate(top_all) if row.token_id == SHORTCUT_ID), None)
    z = stats.z_scores()[SHORTCUT_ID]
    return RunResult(
        seed=seed, condition=condition, test_acc=test_acc, diag_acc=diag_acc, diag_errors=n_err,
        shortcut_rank=rank, shortcut_z=None if torch.isnan(z) else float(z),
        shortcut_share=float(stats.mean_share()[SHORTCUT_ID]) if stats.count[SHORTCUT_ID] > 0 else None,
        top_tokens=[(r.token, round(r.z, 2), round(r.share, 4), r.count) for r in top_all[:5]],
        n_flagged=len(stats.top(k=10_000)), n_above_3=sum(row.z > 3 for row in top_all),
        ms_per_step=t_train / args.steps * 1e3, ms_relevance=ms_rel, flagged_during_training=flagged_log,
    )


@dataclass(frozen=True)
class ProbeArgs:
    """Does token relevance find a planted shortcut token, and does masking it help? (see the module docstring)"""

    seeds: IntTuple = (0, 1, 2)
    """Training seeds."""
    conditions: StrTuple = ("shortcut", "clean", "shortcut+mask", "shortcut+base")
    """Conditions: shortcut, clean, shortcut+mask, shortcut+base."""
    steps: int = 400
    """Optimizer steps per run."""
    batch: int = 64
    """Batch size."""
    n_train: int = 6000
    """Training examples used."""
    layers: int = 1
    """Transformer layers."""
    hidden: int = 64
    """Hidden size."""
    heads: int = 4
    """Attention heads."""
    dropout: float = 0.1
    """Dropout probability."""
    lr: float = 1e-3
    """Adam learning rate."""
    p_pos: float = 0.9
    """Probability of planting the shortcut token in a positive review."""
    p_neg: float = 0.05
    """Probability of planting the shortcut token in a negative review."""
    aug_level: int = 2
    """Masking augmentation level of the +mask / +base conditions."""
    sticky: bool = True
    """Keep tokens flagged once found (default) or use only the latest detection."""
    detect_every: int = 50
    """Steps between relevance detections (shortcut+mask)."""
    min_count: int = 5
    """Minimum occurrences for a token to be ranked."""
    out: str | None = None
    """Write all results as JSON here."""


def main(argv: list[str] | None = None) -> None:
    args = parse_cli(ProbeArgs, argv, "benchmarks/shortcut_probe.py")
    torch.set_num_threads(1)
    data = load_reviews(32)
    results = []
    for seed in args.seeds:
        for condition in args.conditions:
            result = run(seed, condition, args, data)
            results.append(result)
            print(json.dumps(asdict(result)), flush=True)
    print("\nsummary (mean over seeds)")
    for condition in args.conditions:
        rows = [r for r in results if r.condition == condition]
        ranks = [r.shortcut_rank for r in rows]
        zs = [r.shortcut_z for r in rows if r.shortcut_z is not None]
        shares = [r.shortcut_share for r in rows if r.shortcut_share is not None]
        print(f"{condition:15s} test_acc {statistics.mean(r.test_acc for r in rows):.4f}  "
              f"diag_acc {statistics.mean(r.diag_acc for r in rows):.4f}  shortcut rank {ranks}  "
              f"z {[round(v, 1) for v in zs]}  share {[round(v, 3) for v in shares]}  "
              f"top1 {[r.top_tokens[0][:2] if r.top_tokens else None for r in rows]}  "
              f"flagged(z>4) {[r.n_flagged for r in rows]} (z>3) {[r.n_above_3 for r in rows]}  "
              f"ms/step {statistics.mean(r.ms_per_step for r in rows):.1f}  "
              f"ms/relevance {statistics.mean(r.ms_relevance for r in rows):.0f}")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump({"args": asdict(args), "results": [asdict(r) for r in results]}, handle, indent=1)


if __name__ == "__main__":
    main()
