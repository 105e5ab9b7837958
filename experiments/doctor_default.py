"""Which policy should the training doctor default to? It must rescue a bad start and leave a healthy run alone.

Two settings, each from a far too low and from a healthy learning rate, every arm on the same seeds (paired):

- ``trainer``: a Hugging Face ``Trainer`` (the doctor's ``DoctorCallback``) training a 1-layer BERT from scratch
  (hidden 32, 4 heads) with AdamW on a token task (label: a planted token occurs in the 12-token sequence; 1536
  train / 256 validation / 256 test), ``--steps`` steps, a check every ``--every``; LR 1e-6 and 1e-3.
- ``plain``: a plain PyTorch loop, a conv net on scikit-learn's 8x8 digits (1200 / 300 / 297) with SGD + momentum,
  LR 1e-4 and 0.05.

Arms: no doctor and the doctor with each of ``--policies`` (baseline names, run directories, ``pretrained:<name>``).
Reported: mean final test accuracy per arm and setting::

    python -m traingym.experiments.doctor_default --write     # docs/results/doctor_default.md / .json
    python -m traingym.experiments.doctor_default --smoke     # seconds; prints JSON, writes nothing
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import tempfile
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from traingym.protocol.checks import check_range
from traingym.protocol.cli import StrTuple, parse_cli

VOCAB, LENGTH, PLANTED = 60, 12, 7
LRS = {"trainer": (1e-6, 1e-3), "plain": (1e-4, 0.05)}
"""Per setting: a far too low and a healthy starting learning rate."""


@dataclasses.dataclass(frozen=True)
class DefaultArgs:
    """The doctor's candidate default policies on bad and healthy starts (HF Trainer and a plain loop)."""

    policies: StrTuple = ("advisor_greedy", "pretrained:digits-mlp")
    """Doctor policies compared with no doctor (baseline names, run directories, pretrained:<name>)."""
    seeds: int = 3
    """Seeds per setting and learning rate (paired across arms)."""
    steps: int = 400
    """Optimizer steps per run."""
    every: int = 40
    """Optimizer steps between the doctor's checks."""
    smoke: bool = False
    """1 seed, 40 steps; prints JSON and writes nothing."""
    write: bool = False
    """Write docs/results/doctor_default.md and .json."""

    def __post_init__(self) -> None:
        check_range("--seeds", self.seeds, 1, 100, integer=True)
        check_range("--steps", self.steps, 1, 100_000, integer=True)
        check_range("--every", self.every, 1, self.steps, integer=True)
        if not self.policies:
            raise ValueError("--policies needs at least one policy")


class _TokenDataset(torch.utils.data.Dataset):
    def __init__(self, ids: torch.Tensor, labels: torch.Tensor) -> None:
        self.ids, self.labels = ids, labels

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "attention_mask": torch.ones(LENGTH, dtype=torch.long),
                "labels": self.labels[i]}


def token_task(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """2048 random 12-token sequences; label 1 (half of them) when the planted token occurs."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(6, VOCAB, (2048, LENGTH), generator=gen)
    ids[:, 0], ids[:, -1] = 2, 3  # [CLS], [SEP]
    ids[ids == PLANTED] = PLANTED + 1
    labels = (torch.rand(2048, generator=gen) < 0.5).long()
    position = torch.randint(1, LENGTH - 1, (2048,), generator=gen)
    ids[labels == 1, position[labels == 1]] = PLANTED
    return ids, labels


def trainer_run(seed: int, lr: float, policy: str | None, args: DefaultArgs) -> float:
    from traingym.doctor.hf_callback import DoctorCallback
    from traingym.envs.tasks.reviews_model import build_review_bert
    from transformers import Trainer, TrainingArguments

    ids, labels = token_task(seed)
    torch.manual_seed(seed)  # dropout
    model = build_review_bert(VOCAB, 1, 32, 4, LENGTH, generator=torch.Generator().manual_seed(seed))
    callbacks = [] if policy is None else [DoctorCallback((ids[1536:1792], labels[1536:1792]), every=args.every,
                                                          policy=policy, forward=lambda m, x: m(input_ids=x).logits)]
    with tempfile.TemporaryDirectory() as out:
        settings = TrainingArguments(output_dir=out, max_steps=args.steps, per_device_train_batch_size=32,
                                     learning_rate=lr, lr_scheduler_type="constant", report_to=[], save_strategy="no",
                                     logging_strategy="no", use_cpu=True, disable_tqdm=True, seed=seed)
        Trainer(model=model, args=settings, train_dataset=_TokenDataset(ids[:1536], labels[:1536]),
                callbacks=callbacks).train()
    model.eval()
    with torch.no_grad():
        return float((model(input_ids=ids[1792:]).logits.argmax(-1) == labels[1792:]).float().mean())


class _DigitsNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.fc, self.head = nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.Linear(64, 16), nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv(x.view(-1, 1, 8, 8)))
        return self.head(F.relu(self.fc(x.flatten(1))))


def plain_run(seed: int, lr: float, policy: str | None, args: DefaultArgs) -> float:
    from traingym.doctor import TrainingDoctor
    from traingym.envs.tasks.digits import load_digits_tensors

    data = load_digits_tensors()
    order = torch.randperm(data.x.shape[0], generator=torch.Generator().manual_seed(0))
    x, y = data.x[order], data.y[order]
    torch.manual_seed(seed)
    model = _DigitsNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-3)
    doctor = None if policy is None else TrainingDoctor(model, optimizer, (x[1200:1500], y[1200:1500]), args.every,
                                                        policy=policy, total_steps=args.steps)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(args.steps):
        idx = torch.randint(0, 1200, (32,), generator=gen)
        logits = model(x[idx])
        loss = F.cross_entropy(logits, y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if doctor is not None:
            doctor.after_step(loss, logits, y[idx])
    if doctor is not None:
        doctor.close()
    with torch.no_grad():
        return float((model(x[1500:]).argmax(1) == y[1500:]).float().mean())


def measure(args: DefaultArgs) -> list[dict[str, Any]]:
    torch.set_num_threads(1)
    runs = {"trainer": trainer_run, "plain": plain_run}
    rows = []
    for setting, lrs in LRS.items():
        for lr in lrs:
            for policy in (None, *args.policies):
                accuracy = [runs[setting](seed, lr, policy, args) for seed in range(args.seeds)]
                rows.append({"setting": setting, "lr": lr, "start": "bad" if lr == lrs[0] else "healthy",
                             "policy": policy or "no doctor", "test_accuracy": accuracy,
                             "mean": statistics.fmean(accuracy)})
                print(json.dumps(rows[-1]), flush=True)
    return rows


def table(rows: Sequence[dict[str, Any]]) -> str:
    lines = ["| setting | start (LR) | policy | mean final test acc | per seed |", "|---|---|---|---|---|"]
    lines += [f"| {r['setting']} | {r['start']} ({r['lr']:g}) | {r['policy']} | {r['mean']:.3f} | "
              f"{', '.join(f'{a:.3f}' for a in r['test_accuracy'])} |" for r in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_cli(DefaultArgs, argv, "python -m traingym.experiments.doctor_default")
    if args.smoke:
        args = dataclasses.replace(args, seeds=1, steps=40, every=20, write=False)
    rows = measure(args)
    print(table(rows))
    if args.write:
        from traingym.experiments.results import write_result

        body = (__doc__.split("\n\n", 1)[1].split("::")[0].strip() + "\n\n" + table(rows))
        print(write_result("doctor_default", "The training doctor's default policy: bad and healthy starts", body,
                           data={"args": dataclasses.asdict(args), "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
