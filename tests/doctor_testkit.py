"""Shared pieces of the doctor tests: a user's own small model and data, and scripted advisors."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from traingym.advisors.diagnosis import Diagnosis


class TinyNet(nn.Module):
    """A user's model: conv -> ReLU -> linear -> ReLU -> head (functional activations, no TrainGym helpers)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, stride=2, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, 16)
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv(x.view(-1, 1, 8, 8)))
        return self.head(F.relu(self.fc(x.flatten(1))))


def digits(seed: int = 0) -> tuple[torch.Tensor, ...]:
    """sklearn's digits, split 1200 / 300 / rest."""
    from traingym.envs.tasks.digits import load_digits_tensors

    data = load_digits_tensors()
    order = torch.randperm(data.x.shape[0], generator=torch.Generator().manual_seed(seed))
    x, y = data.x[order], data.y[order]
    return x[:1200], y[:1200], x[1200:1500], y[1200:1500], x[1500:], y[1500:]


def plain_loop(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, steps: int,
               doctor: object | None = None, seed: int = 0) -> list[object]:
    """The user's training loop; returns the doctor's decisions."""
    gen = torch.Generator().manual_seed(seed)
    decisions = []
    for _ in range(steps):
        idx = torch.randint(0, x.shape[0], (32,), generator=gen)
        logits = model(x[idx])
        loss = F.cross_entropy(logits, y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if doctor is not None:
            decision = doctor.after_step(loss, logits, y[idx])  # type: ignore[attr-defined]
            if decision is not None:
                decisions.append(decision)
    return decisions


class LowerLRAdvisor:
    """Always suggests halving the learning rate (and says why)."""

    def diagnose(self, report: dict) -> Diagnosis:
        return Diagnosis(("diverging",), 0.9, (-1, 0, 0, 0), "loss is spiking: lower the learning rate")


class RaiseEverythingAdvisor:
    """Suggests raising the LR, weight decay, augmentation and flagged-neuron scale."""

    def diagnose(self, report: dict) -> Diagnosis:
        return Diagnosis(("plateau",), 0.8, (1, 1, 1, 1), "flat validation loss: raise the learning rate")


def setup_run(optimizer: str = "sgd", lr: float = 0.05, seed: int = 0):
    """A user's TinyNet, an optimizer with a decayed and an undecayed param group, and the digits splits."""
    torch.manual_seed(seed)
    model = TinyNet()
    decay = [p for p in model.parameters() if p.dim() > 1]
    rest = [p for p in model.parameters() if p.dim() <= 1]
    groups = [{"params": decay, "weight_decay": 1e-3}, {"params": rest, "weight_decay": 0.0}]
    opt = (torch.optim.SGD(groups, lr=lr, momentum=0.9) if optimizer == "sgd"
           else torch.optim.AdamW(groups, lr=lr))
    return model, opt, digits()
