"""Time the reviews task's pieces on one CPU thread, to choose env defaults (an env step is K training steps,
one validation pass and one relevance pass).

Times are CPU time of the process (see :func:`timed`). Run:  ``.venv/bin/python benchmarks/reviews_timing.py``
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

import torch
from traingym.envs.monitoring.relevance import TokenRelevanceStats, token_relevance
from traingym.envs.tasks.reviews_augment import mask_tokens
from traingym.envs.tasks.reviews_data import PROTECTED_IDS, ReviewsData, load_reviews, plant_shortcut
from traingym.envs.tasks.reviews_model import build_review_bert, forked_global_rng


def timed(fn, repeats: int) -> float:
    """Median CPU milliseconds of ``fn()`` over ``repeats`` calls (after one warm-up call).

    CPU time of this process (one torch thread), not wall time: on a shared machine the wall time also counts
    the time other processes hold the core. On an idle core the two agree.
    """
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append((time.process_time() - t0) * 1e3)
    return statistics.median(times)


def main() -> None:
    torch.set_num_threads(1)
    code = ("import time; from traingym.envs.tasks.reviews_data import load_reviews; "
            "t1 = time.process_time(); load_reviews(32); print(f'{(time.process_time() - t1) * 1e3:.0f}')")
    load_reviews(32)  # make sure the disk cache exists
    ms = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    print(f"load_reviews(32) in a fresh process, disk cache warm: {ms} ms (import of the package not counted)")
    data = load_reviews(32)
    gen = torch.Generator().manual_seed(0)
    x, m, y = data.input_ids[:6000], data.attention_mask[:6000], data.labels[:6000]
    print(f"plant_shortcut on 6000 rows: {timed(lambda: plant_shortcut(x, m, y, generator=gen), 5):.1f} ms")
    bx, bm = x[:64], m[:64]
    print(f"mask_tokens level 2, batch 64: {timed(lambda: mask_tokens(bx, bm, 2, [5], generator=gen), 50):.2f} ms")
    for layers, hidden, batch in [(1, 64, 32), (1, 64, 64), (2, 64, 32), (2, 64, 64), (1, 128, 32)]:
        time_model(data, x, m, y, layers, hidden, batch, gen)


def time_model(data: ReviewsData, x: torch.Tensor, m: torch.Tensor, y: torch.Tensor, layers: int, hidden: int,
               batch: int, gen: torch.Generator) -> None:
    """Print the times of one model shape: a training step, a validation pass, a relevance pass."""
    model = build_review_bert(data.vocab_size, layers, hidden, 4, 32, generator=gen)
    # fused=True: one kernel for all parameters; on CPU it cuts the Adam step from ~6 ms to ~1 ms here
    # (the dense 14k x 64 embedding dominates the parameter count).
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    bx, bm, by = x[:batch], m[:batch], y[:batch]

    def step() -> None:
        with forked_global_rng(gen):
            loss = torch.nn.functional.cross_entropy(model(input_ids=bx, attention_mask=bm).logits, by)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    def validate() -> None:
        model.eval()
        with torch.no_grad():
            model(input_ids=x[:512], attention_mask=m[:512])
        model.train()

    ms_step = timed(step, 30)
    ms_val = timed(validate, 5)
    rx, rm = x[:128], m[:128]
    ms_rel = timed(lambda: token_relevance(model, rx, rm), 5)
    stats = TokenRelevanceStats(data.vocab_size, data.id_to_token, ignore_ids=PROTECTED_IDS)
    rel = token_relevance(model, rx, rm)
    ms_stats = timed(lambda: (stats.update(rx, rm, rel), stats.top(5)), 5)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"layers {layers} hidden {hidden} batch {batch} ({n_params / 1e6:.2f} M params): "
          f"train step {ms_step:.1f} ms (K=50: {50 * ms_step / 1e3:.2f} s), val pass 512 {ms_val:.0f} ms, "
          f"relevance 128 errors {ms_rel:.0f} ms, stats update+top {ms_stats:.1f} ms")

if __name__ == "__main__":
    main()
