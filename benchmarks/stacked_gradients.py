"""Whether ``StackedMLP``'s written-out backward still earns its place against maintained machinery (issue 25).

The batched env trains N target MLPs as one stack; its gradients are written out with the kernels autograd would
call. The maintained alternatives compute the same gradients: ``torch.func`` (``vmap(grad(loss))`` over the
stacked parameters with ``functional_call``, the recipe of PyTorch's model-ensembling tutorial) and plain autograd
on the same batched forward (``baddbmm`` on stacked leaf tensors). All three share the same per-instance SGD update
(``_sgd_step``: torch.optim takes one learning rate per parameter group, here every instance has its own), so the
timing differs only in how the gradients are computed. Timed side by side in one process, one torch thread,
alternating the three per round, on DigitsMLP-sized networks (64 inputs, 10 classes, batch 64, K = 50 steps per
env step). The issue's rule: keep the written-out path only if it is at least 1.2x faster than the best
maintained one.

    .venv/bin/python -m benchmarks.stacked_gradients            # prints JSON
    .venv/bin/python -m benchmarks.stacked_gradients --write    # and docs/results/stacked_gradients.md
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap
from traingym.envs.batched.stacked_mlp import StackedMLP, _sgd_step
from traingym.envs.tasks.networks import MLP
from traingym.protocol.cli import IntTuple, parse_cli

KEEP_THRESHOLD = 1.2
"""The written-out backward stays only if it is at least this much faster than the best maintained path."""
N_IN, N_OUT, BATCH, MOMENTUM, LR, WD = 64, 10, 64, 0.9, 0.05, 1e-4


@dataclass(frozen=True)
class Args:
    """Time K SGD steps of N stacked MLPs three ways (written-out backward, torch.func, autograd)."""

    sizes: IntTuple = (8, 16)
    """Stack sizes N (sub-envs per worker)."""
    depth: int = 2
    """Hidden layers of every MLP (one architecture: a group the batched env trains together)."""
    width: int = 64
    """Units per hidden layer."""
    steps: int = 50
    """Optimizer steps per timed block (K of one env step)."""
    rounds: int = 31
    """Timed blocks per path; the paths alternate within a round, and the speed-up is the median of the per-round
    ratios (with quartiles)."""
    write: bool = False
    """Also write docs/results/stacked_gradients.md and .json."""

    def __post_init__(self) -> None:
        if not self.sizes or min(self.sizes) < 1:
            raise ValueError(f"--sizes must be positive, got {list(self.sizes)}")
        for name in ("depth", "width", "steps", "rounds"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}")


def make_models(n: int, widths: tuple[int, ...], seed: int = 0) -> list[MLP]:
    """``n`` MLPs of one architecture with seeded, different initial weights."""
    generator = torch.Generator().manual_seed(seed)
    models = []
    for _ in range(n):
        model = MLP(N_IN, widths, N_OUT)
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.empty_like(p).uniform_(-0.3, 0.3, generator=generator))
        models.append(model)
    return models


def make_data(n: int, steps: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` ``(K, n, B, N_IN)`` and ``y`` ``(K, n, B)``."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(steps, n, BATCH, N_IN, generator=generator)
    return x, torch.randint(N_OUT, (steps, n, BATCH), generator=generator)


class WrittenOut:
    """The batched env's path: ``StackedMLP.train``."""

    def __init__(self, models: list[MLP]) -> None:
        self.stack = StackedMLP(len(models), "sgd", MOMENTUM, torch.device("cpu"))
        for i, model in enumerate(models):
            self.stack.load(i, model, reset_state=True)

    def train(self, x: torch.Tensor, y: torch.Tensor) -> None:
        n = y.shape[1]
        self.stack.train(x, y, [LR] * n, [WD] * n)

    def parameters(self) -> list[torch.Tensor]:
        return [*self.stack.weights, *self.stack.biases]


class _Stacked:
    """Stacked parameters ``(n, out, in)`` / ``(n, out)`` in ``StackedMLP``'s order, updated by ``_sgd_step``."""

    def __init__(self, models: list[MLP]) -> None:
        n = len(models)
        layers = [[*m.linears, m.head] for m in models]
        self.weights = [torch.stack([ls[j].weight.detach() for ls in layers]).clone() for j in range(len(layers[0]))]
        self.biases = [torch.stack([ls[j].bias.detach() for ls in layers]).clone() for j in range(len(layers[0]))]
        self.state = [[torch.zeros_like(p)] for p in [*self.weights, *self.biases]]
        self.lr = [torch.full((n, 1, 1), LR)] * len(self.weights) + [torch.full((n, 1), LR)] * len(self.biases)
        self.wd = [torch.full((n, 1, 1), WD)] * len(self.weights)

    def update(self, grads_w: list[torch.Tensor], grads_b: list[torch.Tensor]) -> None:
        _sgd_step(self.weights, self.biases, grads_w, grads_b, self.state, self.lr, self.wd, MOMENTUM)

    def parameters(self) -> list[torch.Tensor]:
        return [*self.weights, *self.biases]


class TorchFunc(_Stacked):
    """``vmap(grad(loss))`` over the stacked parameters, the module called with ``functional_call``."""

    def __init__(self, models: list[MLP]) -> None:
        super().__init__(models)
        base = MLP(N_IN, [m.out_features for m in models[0].linears], N_OUT).to("meta")

        def loss(p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(functional_call(base, p, (x,)), y)

        self.grads = vmap(grad(loss))
        depth = len(self.weights)
        self.prefixes = [f"linears.{j}" for j in range(depth - 1)] + ["head"]  # the module's parameter names

    def train(self, x: torch.Tensor, y: torch.Tensor) -> None:
        for step in range(y.shape[0]):
            named = {}
            for prefix, w, b in zip(self.prefixes, self.weights, self.biases):
                named[f"{prefix}.weight"], named[f"{prefix}.bias"] = w, b
            g = self.grads(named, x[step], y[step])
            self.update([g[f"{p}.weight"] for p in self.prefixes], [g[f"{p}.bias"] for p in self.prefixes])


class Autograd(_Stacked):
    """The batched forward (``baddbmm``) on stacked leaf tensors, gradients by ``torch.autograd.grad``."""

    def train(self, x: torch.Tensor, y: torch.Tensor) -> None:
        for w in self.parameters():
            w.requires_grad_(True)
        depth = len(self.weights)
        for step in range(y.shape[0]):
            h = x[step]
            for j in range(depth - 1):
                h = torch.baddbmm(self.biases[j][:, None], h, self.weights[j].transpose(1, 2)).relu()
            logits = torch.baddbmm(self.biases[-1][:, None], h, self.weights[-1].transpose(1, 2))
            # Per-instance mean cross-entropy, summed over instances: each instance's gradient is its own.
            loss = F.cross_entropy(logits.flatten(0, 1), y[step].flatten(), reduction="sum") / BATCH
            grads = torch.autograd.grad(loss, self.parameters())
            with torch.no_grad():
                self.update(list(grads[:depth]), list(grads[depth:]))


PATHS: dict[str, Callable[[list[MLP]], WrittenOut | TorchFunc | Autograd]] = {
    "written_out": WrittenOut, "torch_func": TorchFunc, "autograd": Autograd}
"""The three ways of computing the stack's gradients, by name."""


def measure(args: Args) -> dict[str, object]:
    torch.set_num_threads(1)
    rows = []
    for n in args.sizes:
        x, y = make_data(n, args.steps)
        paths = {name: build(make_models(n, (args.width,) * args.depth)) for name, build in PATHS.items()}
        for path in paths.values():  # warm-up (first-call allocations, vmap tracing)
            path.train(x[:2], y[:2])
        seconds: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(args.rounds):
            for name, path in paths.items():
                start = time.perf_counter()
                path.train(x, y)
                seconds[name].append(time.perf_counter() - start)
        median = {name: float(np.median(s)) for name, s in seconds.items()}
        best = min(("torch_func", "autograd"), key=median.__getitem__)
        # Per-round ratios: the paths of one round ran back to back, under the same load.
        ratios = np.asarray(seconds[best]) / np.asarray(seconds["written_out"])
        rows.append({"n": n, "seconds_per_env_step": median, "best_maintained": best,
                     "written_out_speedup": float(np.median(ratios)),
                     "speedup_quartiles": [float(q) for q in np.quantile(ratios, [0.25, 0.75])]})
    return {"machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread",
            "widths": [args.width] * args.depth, "steps": args.steps, "rounds": args.rounds, "rows": rows,
            "keep_written_out": all(r["written_out_speedup"] >= KEEP_THRESHOLD for r in rows)}


def markdown(result: dict) -> str:
    lines = ["| N | written out s | torch.func s | autograd s | written out x best maintained [quartiles] |",
             "|---|---|---|---|---|"]
    for r in result["rows"]:
        s, (low, high) = r["seconds_per_env_step"], r["speedup_quartiles"]
        lines.append(f"| {r['n']} | {s['written_out']:.4f} | {s['torch_func']:.4f} | {s['autograd']:.4f} | "
                     f"{r['written_out_speedup']:.2f} [{low:.2f}, {high:.2f}] ({r['best_maintained']}) |")
    verdict = ("keeps its place (>= {:.1f}x at every N)" if result["keep_written_out"] else
               "does not earn its place (< {:.1f}x at some N)").format(KEEP_THRESHOLD)
    head = (f"MLP 64-{'-'.join(map(str, result['widths']))}-10, batch {BATCH}, SGD momentum {MOMENTUM}, "
            f"{result['steps']} steps per env step, {result['rounds']} alternating rounds (medians; the speed-up "
            "is the median of per-round ratios), one torch thread. Seconds per env step of the whole stack:")
    return (head + "\n\n" + "\n".join(lines)
            + f"\n\nThe written-out backward {verdict}.\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_cli(Args, argv, "python -m benchmarks.stacked_gradients")
    result = measure(args)
    print(json.dumps(result, indent=1))
    if args.write:
        from traingym.experiments.results import write_result

        write_result("stacked_gradients", "Stacked MLP gradients: written out vs torch.func vs autograd",
                     markdown(result), result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
