"""The training doctor: TrainGym's neuron logs, advisor and agents on a training run that TrainGym does not own.

Every ``every`` optimizer steps the doctor does what :class:`~traingym.envs.training_env.TrainingEnv` does after
its K steps, with the env's own code (:class:`~traingym.envs.monitoring.monitor.TrainingMonitor`): neuron-log
training stats, a validation pass on a fixed buffer (flagged neurons, events), the history, the TrainingReport, the
advisor's diagnosis and the observation. A policy proposes a move; in ``auto`` mode it is applied, in ``propose`` mode a
:class:`~traingym.protocol.proposals.Decider` (a human at the terminal, the live page) accepts, edits or skips it,
in ``watch`` mode nothing changes. A move changes the optimizer's learning rate and weight decay (every param
group, the env's factors), scales the flagged neurons' incoming weights (the env's factors) and sets
:attr:`TrainingDoctor.aug_level`, which the user's data pipeline may read. As in the env, the first decision is
taken at attach time, on the untrained (or partly trained) model.

Example (a plain PyTorch loop)::

    doctor = TrainingDoctor(model, optimizer, val_data=(x_val, y_val), every=50, policy="advisor_greedy")
    for xb, yb in batches:
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        doctor.after_step(loss, logits, yb)   # logits / labels optional (train accuracy)
    doctor.close()
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from traingym.doctor.decision_log import DecisionLog
from traingym.doctor.layers import find_hidden_layers
from traingym.doctor.optim import apply_hparam_move, optimizer_hparams
from traingym.doctor.policy import OBSERVATION_FIELDS, DoctorPolicy, resolve_policy
from traingym.doctor.rollback import HealthySnapshot, Rollback
from traingym.envs.config import TrainingEnvConfig
from traingym.envs.hidden_layer import HiddenLayer
from traingym.envs.monitoring.monitor import RunStatus, TrainingMonitor
from traingym.protocol.checks import check_range
from traingym.protocol.moves import AUG_LEVELS, KEEP, SCALE_DOWN, SCALE_UP, Move
from traingym.protocol.proposals import DecidedBy, Decider, Decision, Proposal


class DoctorMode(str, enum.Enum):
    """What the doctor does with the policy's move."""

    AUTO = "auto"
    """Apply it."""
    PROPOSE = "propose"
    """Ask a decider (the terminal by default); on no answer within ``timeout_s`` the default applies."""
    WATCH = "watch"
    """Log it; change nothing."""


class DefaultDecision(str, enum.Enum):
    """What applies in ``propose`` mode when nobody answers."""

    KEEP = "keep"
    """Change nothing."""
    POLICY = "policy"
    """The policy's proposed move."""


DEFAULT_HORIZON = TrainingEnvConfig.horizon
"""Checks assumed per run when neither ``total_steps`` nor the agent's training horizon says otherwise."""


class _Logits(nn.Module):
    """``x -> logits`` around a model whose forward returns an output object (Hugging Face) or a tuple."""

    def __init__(self, model: nn.Module, forward: Callable[[nn.Module, torch.Tensor], Any] | None = None) -> None:
        super().__init__()
        self.model = model
        self._forward = forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x) if self._forward is None else self._forward(self.model, x)
        if isinstance(out, torch.Tensor):
            return out
        logits = getattr(out, "logits", None)
        if isinstance(logits, torch.Tensor):
            return logits
        if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
            return out[0]
        raise TypeError(f"the model returned {type(out).__name__}; the doctor needs logits (a tensor, or an "
                        "output with .logits)")


class TrainingDoctor:
    """Watches and steers a user's training run (see the module docstring).

    Args:
        model: the network being trained (``model(x)`` returns logits ``(B, n_classes)`` or an output with
            ``.logits``).
        optimizer: any ``torch.optim.Optimizer``; moves scale the LR and weight decay of every param group.
        val_data: ``(x_val, y_val)`` tensors, or an iterable of ``(x, y)`` batches (the first ``val_size``
            samples become the fixed validation buffer).
        every: optimizer steps between checks (the env's K).
        policy: a run directory, ``"pretrained:<name>"``, ``"advisor_greedy"`` (default) or an object with
            ``predict``; see :data:`~traingym.doctor.policy.ACCEPTED_POLICIES`.
        mode: ``"auto"``, ``"propose"`` or ``"watch"`` (:class:`DoctorMode`).
        advisor: advisor spec (as the env's ``advisor``); default: the agent's training advisor, else heuristic.
        decider: ``propose`` mode's decider (default: :class:`~traingym.doctor.terminal.TerminalDecider`).
        timeout_s: seconds a decider waits for an answer.
        default: what applies when nobody answers: ``"keep"`` or ``"policy"`` (:class:`DefaultDecision`).
        log_path: the decision log (JSON Lines, capped and rotated); None keeps it in memory only.
        event_log_path: the neuron event log (JSON Lines, as the env's ``log_path``).
        hidden_layers: module names (or :class:`HiddenLayer` objects) to watch; None finds them.
        total_steps: the run's optimizer steps, if known (progress in the observation = check / (total / every)).
        n_classes: classes of the task (default: the model's output width on the validation buffer).
        scheduler: an LR scheduler whose ``base_lrs`` must follow LR moves (Hugging Face schedules, LambdaLR).
        aug_level: the starting augmentation level (0..4) your pipeline reads from :attr:`aug_level`.
        val_size: cap on the validation buffer (default 256, half the env's: a check costs about 5 training steps).
        task_name: the family name the advisor sees in the report.
        forward: ``(model, x) -> logits`` for the validation passes (None: ``model(x)``, or its ``.logits``).
        rollback: when the run breaks (auto and propose modes: diverged, or every unit of a hidden layer dead),
            restore the model and optimizer to the last healthy check and halve the LR before the policy is asked
            (:mod:`traingym.doctor.rollback`; keeps one copy of the model's and optimizer's state in memory).
            False: a broken run stays broken.
        settings: further env config fields for the observation (e.g. ``encoder="hashing"``, ``flag_top_k``).

    Raises:
        ValueError: a bad argument, a model without hidden layers, validation data of the wrong shape, or a
            policy trained on observations the doctor cannot build (one message naming the rule).
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, val_data: Any, every: int = 50, *,
                 policy: Any = "advisor_greedy", mode: str | DoctorMode = "auto", advisor: str | None = None,
                 decider: Decider | None = None, timeout_s: float = 30.0, default: str | DefaultDecision = "keep",
                 log_path: str | None = None, event_log_path: str | None = None,
                 hidden_layers: Sequence[str | HiddenLayer] | None = None, total_steps: int | None = None,
                 n_classes: int | None = None, scheduler: Any = None, aug_level: int = 0, val_size: int = 256,
                 task_name: str = "custom", forward: Callable[[nn.Module, torch.Tensor], Any] | None = None,
                 rollback: bool = True, **settings: Any) -> None:
        check_range("every", every, 1, 1_000_000, integer=True)
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ValueError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        self.mode = _choice("mode", mode, DoctorMode)
        self.default = _choice("default", default, DefaultDecision)
        if not (isinstance(timeout_s, (int, float)) and 0 < timeout_s <= 86_400):
            raise ValueError(f"timeout_s must be a number in (0, 86400], got {timeout_s!r}")
        if total_steps is not None and (not isinstance(total_steps, int) or total_steps < 1):
            raise ValueError(f"total_steps must be None or an int >= 1, got {total_steps!r}")
        check_range("aug_level", aug_level, 0, AUG_LEVELS - 1, integer=True)
        unknown = sorted(set(settings) - set(OBSERVATION_FIELDS) - {"max_loss", "max_weight_norm"})
        if unknown:
            raise ValueError(f"unknown TrainingDoctor argument(s) {unknown}; observation settings: "
                             f"{OBSERVATION_FIELDS + ('max_loss', 'max_weight_norm')}")
        self.policy: DoctorPolicy = resolve_policy(policy)
        self.model, self.optimizer, self.scheduler, self.every = model, optimizer, scheduler, every
        self.timeout_s = float(timeout_s)
        self.aug_level = aug_level
        """The augmentation level (0..4) the latest move set; the user's data pipeline reads it."""
        device = next(model.parameters()).device
        self._x_val, self._y_val = _validation_buffer(val_data, val_size, device)
        self._logits = _Logits(model, forward)
        observation = dict(self.policy.env_settings)
        if "diagnosis" not in self.policy.obs_keys:
            observation["encoder"] = "hashing"  # the diagnosis text is shown and logged, its vector is unused
        observation.update(settings)
        if advisor is not None:
            observation["advisor"] = advisor
        keys = tuple(k for k in ("training_stats", "neurons", "diagnosis")
                     if k in self.policy.obs_keys or k == "diagnosis")
        self.config = TrainingEnvConfig(obs_keys=keys, log_path=event_log_path, **observation)
        self.monitor = TrainingMonitor(self.config)
        self.policy.check_spaces(self.monitor.observation_space)
        self.layers = find_hidden_layers(model, hidden_layers)
        self.monitor.reset(self.layers)
        with torch.no_grad():
            was_training = model.training
            out_width = int(self._logits(self._x_val[:2]).shape[-1])
            model.train(was_training)
        self.n_classes = int(n_classes) if n_classes is not None else out_width
        if self.n_classes != out_width or self.n_classes < 2:
            raise ValueError(f"the model outputs {out_width} logits but n_classes={self.n_classes}; the doctor "
                             "needs a classifier with >= 2 classes")
        if int(self._y_val.max()) >= self.n_classes or int(self._y_val.min()) < 0:
            raise ValueError(f"val_data labels must be in [0, {self.n_classes - 1}]")
        horizon = math.ceil(total_steps / every) if total_steps else (self.policy.horizon or DEFAULT_HORIZON)
        self.horizon = max(1, horizon)
        self._task = {"family": task_name, "modality": "custom", "n_classes": self.n_classes,
                      "model": type(model).__name__, "n_params": int(sum(p.numel() for p in model.parameters()))}
        self.decider = decider
        if self.mode is DoctorMode.PROPOSE and decider is None:
            from traingym.doctor.terminal import TerminalDecider

            self.decider = TerminalDecider()
        self.log = DecisionLog(log_path)
        self.steps = 0
        """Optimizer steps seen (calls of :meth:`after_step`)."""
        self.check_index = 0
        self._losses: list[torch.Tensor] = []
        self._correct = torch.zeros((), dtype=torch.int64, device=device)
        self._seen = 0
        self._train_loss, self._train_acc = math.log(self.n_classes), 1.0 / self.n_classes
        self._diverged = False
        self._closed = False
        self._snapshot = HealthySnapshot() if rollback and self.mode is not DoctorMode.WATCH else None
        self.rollbacks: list[Rollback] = []
        """Every restore after the run broke (also in the decision log, under ``rollback``)."""
        self.last_report: dict[str, Any] = {}
        self.last_proposal: Proposal | None = None
        self.last_decision: Decision | None = None
        self._check(initial=True)

    # ------------------------------------------------------------------ the user's loop
    def after_step(self, loss: torch.Tensor | float, logits: torch.Tensor | None = None,
                   labels: torch.Tensor | None = None) -> Decision | None:
        """Call after each ``optimizer.step()`` with the step's loss (and optionally its logits and labels, for the
        training accuracy). Returns the decision of a check, None between checks."""
        if self._closed:
            raise RuntimeError("the TrainingDoctor is closed")
        self._losses.append(loss.detach() if isinstance(loss, torch.Tensor)
                            else torch.tensor(float(loss), device=self._correct.device))
        if logits is not None and labels is not None:
            self._correct += (logits.detach().argmax(-1) == labels).sum()
            self._seen += int(labels.numel())
        self.steps += 1
        if self.steps % self.every:
            return None
        return self._check()

    @property
    def lr(self) -> float:
        return optimizer_hparams(self.optimizer)[0]

    def close(self) -> None:
        """Write the last decision, remove hooks, close the logs. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.log.close()
        self.monitor.close()

    def __enter__(self) -> TrainingDoctor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ one check
    def _check(self, initial: bool = False) -> Decision:
        monitor, model = self.monitor, self.model
        was_training = model.training
        rollback = None
        if not initial:
            self.check_index += 1
            self._record_training()
        if self._diverged and self._can_roll_back(initial):
            rollback = self._roll_back("diverged")
        if self._diverged:
            val_loss, val_acc = monitor.diverged(self.check_index, self._train_loss, self.n_classes)
        else:
            val_loss, val_acc = monitor.validate(self._logits, self._x_val, self._y_val, self.check_index,
                                                 self._train_loss)
            if self._can_roll_back(initial) and self._dead_layer():
                # The neuron log of this validation pass shows the collapse; validate the restored model again.
                rollback = self._roll_back("dead_layer")
                val_loss, val_acc = monitor.validate(self._logits, self._x_val, self._y_val, self.check_index,
                                                     self._train_loss)
        monitor.events.end_step()
        model.train(was_training)
        if not math.isfinite(self._train_acc):  # no logits were given: no train/validation accuracy gap
            self._train_acc = val_acc
        lr, wd = optimizer_hparams(self.optimizer)
        status = RunStatus(self.check_index, max(self.horizon, self.check_index), lr, wd, self.aug_level,
                           self._train_loss, self._train_acc, val_loss, val_acc, self._diverged)
        self.log.complete({"step": self.check_index, "optimizer_step": self.steps, "val_accuracy": val_acc,
                           "val_loss": val_loss, "train_loss": self._train_loss, "diverged": self._diverged})
        observation, extra = monitor.observe(self._task, status)  # records the history first
        self.last_report = monitor.report(self._task, status)
        advisor = extra.get("advisor", {})
        info = {"step": self.check_index, "lr": lr, "weight_decay": wd, "aug_level": self.aug_level,
                "train_loss": self._train_loss, "train_accuracy": self._train_acc, "val_loss": val_loss,
                "val_accuracy": val_acc, "advisor": advisor}
        proposed = self.policy.move(observation, info)
        proposal = Proposal(step=self.check_index, report_hash=str(advisor.get("report_hash", "")),
                            proposed_move=proposed, diagnosis_text=str(advisor.get("text", "")),
                            findings=tuple(advisor.get("findings", ())),
                            suggested_move=_move_or_none(advisor.get("suggested_move")),
                            evidence={**_evidence(self.last_report),
                                      **({"rollback": rollback.as_dict()} if rollback else {})})
        decision = self._decide(proposal)
        self._apply(decision.applied_move)
        if self._snapshot is not None and not self._diverged:
            self._snapshot.save(model, self.optimizer, self.check_index, self.steps)
        self.log.add({"policy": self.policy.label, "step": self.check_index, "optimizer_step": self.steps,
                      "report": self.last_report, "report_hash": proposal.report_hash, "diagnosis": advisor,
                      "move": list(proposed), "applied_move": list(decision.applied_move),
                      "decided_by": decision.decided_by.value, "action": decision.action,
                      "rollback": None if rollback is None else rollback.as_dict(), "_val_accuracy_before": val_acc})
        self.last_proposal, self.last_decision = proposal, decision
        return decision

    def _can_roll_back(self, initial: bool) -> bool:
        return not initial and self._snapshot is not None and self._snapshot.available

    def _dead_layer(self) -> bool:
        """Every unit of some hidden layer was dead on the validation buffer (ReLU-like units output 0 for all
        inputs): no gradient flows through that layer any more."""
        log = self.monitor.log
        return log is not None and any(s.dead_fraction >= 1.0 for s in log.summaries)

    def _roll_back(self, reason: str) -> Rollback:
        assert self._snapshot is not None
        rollback = self._snapshot.restore(self.model, self.optimizer, reason, self.scheduler)
        self.rollbacks.append(rollback)
        self._diverged = False
        return rollback

    def _record_training(self) -> None:
        """Mean loss and accuracy since the last check, divergence, neuron-log training stats (the env's code)."""
        k = max(len(self._losses), 1)
        params = [p.detach() for p in self.model.parameters()]
        weight_norm = torch.linalg.vector_norm(torch.stack([p.norm() for p in params])).to(self._correct.device)
        mean_loss = torch.stack(self._losses).sum().to(weight_norm.device) / k if self._losses else weight_norm * 0
        accuracy = self._correct.float() / max(self._seen, 1)
        mean, acc, norm = torch.stack([mean_loss.float(), accuracy, weight_norm.float()]).tolist()  # one sync
        if not self._seen:
            acc = float("nan")  # no logits given: filled with the validation accuracy below
        self._train_loss, acc, self._diverged = self.monitor.training_outcome(mean, acc, norm)
        self._losses.clear()
        self._correct.zero_()
        self._seen = 0
        self._train_acc = acc

    def _decide(self, proposal: Proposal) -> Decision:
        if self.mode is DoctorMode.WATCH:
            return Decision(KEEP, DecidedBy.WATCH, "watch")
        if self.mode is DoctorMode.AUTO:
            return Decision(proposal.proposed_move, DecidedBy.POLICY, "accept")
        default = Decision(proposal.proposed_move if self.default is DefaultDecision.POLICY else KEEP,
                           DecidedBy.DEFAULT, "timeout")
        assert self.decider is not None
        return self.decider.decide(proposal, default, self.timeout_s)

    def _apply(self, move: Move) -> None:
        apply_hparam_move(self.optimizer, move[0], move[1], self.scheduler)
        self.aug_level = int(np.clip(self.aug_level + move[2], 0, AUG_LEVELS - 1))
        if move[3] != 0:
            assert self.monitor.log is not None
            self.monitor.log.scale_flagged(SCALE_UP if move[3] > 0 else SCALE_DOWN)


def _choice(name: str, value: Any, kind: type[enum.Enum]) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"{name} must be one of {[m.value for m in kind]}, got {value!r}") from None


def _move_or_none(value: Any) -> Move | None:
    if value is None:
        return None
    return tuple(int(v) for v in value)  # type: ignore[return-value]


def _evidence(report: dict[str, Any]) -> dict[str, Any]:
    """What a human sees besides the diagnosis: top flagged neurons per layer, flagged tokens, recent events."""
    return {"flagged_neurons": report.get("flagged_neurons", []), "flagged_tokens": report.get("flagged_tokens", []),
            "recent_events": report.get("events", {}).get("recent", []), "hparams": report.get("hparams", {}),
            "val_accuracy": (report.get("history", {}).get("val_acc") or [None])[-1]}


def _validation_buffer(val_data: Any, val_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed validation buffer: ``(x, y)`` tensors, or the first ``val_size`` samples of a loader."""
    if not isinstance(val_size, int) or val_size < 2:
        raise ValueError(f"val_size must be an int >= 2, got {val_size!r}")
    if isinstance(val_data, (tuple, list)) and len(val_data) == 2 and isinstance(val_data[0], torch.Tensor):
        x, y = val_data
    elif isinstance(val_data, Iterable):
        xs, ys, n = [], [], 0
        for batch in val_data:
            if not (isinstance(batch, (tuple, list)) and len(batch) >= 2):
                raise ValueError("val_data loader must yield (x, y) batches")
            xs.append(batch[0])
            ys.append(batch[1])
            n += int(batch[0].shape[0])
            if n >= val_size:
                break
        if not xs:
            raise ValueError("val_data loader yielded no batches")
        x, y = torch.cat(xs), torch.cat(ys)
    else:
        raise ValueError(f"val_data must be (x_val, y_val) tensors or a loader of (x, y) batches, got "
                         f"{type(val_data).__name__}")
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or y.dtype not in (torch.int64, torch.int32):
        raise ValueError("val_data labels must be a 1-D integer tensor of class indices")
    if x.shape[0] != y.shape[0] or x.shape[0] < 2:
        raise ValueError(f"val_data needs >= 2 samples and as many labels as inputs, got {x.shape[0]} inputs and "
                         f"{y.shape[0]} labels")
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise ValueError("val_data inputs hold non-finite values")
    return x[:val_size].to(device), y[:val_size].long().to(device)
