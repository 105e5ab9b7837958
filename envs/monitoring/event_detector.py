"""Event-triggered logging: decide, once per env step, which typed events fired, and write detailed records.

Nothing is recorded on a quiet step. Thresholds are documented on :class:`EventThresholds`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from traingym.envs.monitoring.event_log import EventLog
from traingym.envs.monitoring.neuron_log import NeuronLog
from traingym.protocol.events import EventType


@dataclass(frozen=True)
class EventThresholds:
    """When each event fires."""

    new_misclassification_fraction: float = 0.02
    """new_misclassifications: validation samples right at the previous step and wrong now, as a fraction of the
    buffer, at least this."""
    loss_spike_ratio: float = 2.0
    """loss_spike: train or validation loss above this multiple of its mean over the recent history."""
    gap_jump: float = 0.1
    """gap_jump: the loss gap (val - train) grew by more than this in one step."""
    dead_growth: float = 0.05
    """dead_unit_growth: a layer's dead-unit fraction grew by at least this in one step."""

    def __post_init__(self) -> None:
        for name in ("new_misclassification_fraction", "loss_spike_ratio", "gap_jump", "dead_growth"):
            if not getattr(self, name) > 0:
                raise ValueError(f"EventThresholds.{name} must be > 0, got {getattr(self, name)!r}")


class EventDetector:
    """Compares this step's statistics with the previous step's and emits events into an :class:`EventLog`."""

    def __init__(self, events: EventLog, thresholds: EventThresholds | None = None) -> None:
        self.events = events
        self.thresholds = thresholds or EventThresholds()
        self.reset()

    def reset(self) -> None:
        self._previous_errors: torch.Tensor | None = None
        self._previous_gap: float | None = None
        self._previous_dead: list[torch.Tensor] | None = None

    def detect(self, step: int, errors: torch.Tensor, train_loss: float, val_loss: float,
               history: dict[str, Sequence[float]], log: NeuronLog) -> None:
        """Call after the validation pass of ``step`` and before the history is updated with it."""
        th = self.thresholds
        errors = errors.cpu()
        if self._previous_errors is not None and self._previous_errors.shape == errors.shape:
            new = errors & ~self._previous_errors
            count = int(new.sum())
            if count >= th.new_misclassification_fraction * errors.numel():
                layer_index = max(range(len(log.layers)), key=lambda i: log.summaries[i].error_share, default=None)
                layer = log.layers[layer_index].name if layer_index is not None else None
                ids = log.flagged[layer_index].tolist() if layer_index is not None else []
                self.events.emit(step, EventType.NEW_MISCLASSIFICATIONS, layer, ids,
                                 {"count": count, "fraction": count / errors.numel()})
        self._previous_errors = errors
        for name, value in (("train_loss", train_loss), ("val_loss", val_loss)):
            past = list(history[name])
            if len(past) >= 2:
                mean = sum(past) / len(past)
                if mean > 0 and value > th.loss_spike_ratio * mean:
                    self.events.emit(step, EventType.LOSS_SPIKE, None, (),
                                     {"loss": value, "ratio": value / mean, "is_val": float(name == "val_loss")})
        gap = val_loss - train_loss
        if self._previous_gap is not None and gap - self._previous_gap > th.gap_jump:
            self.events.emit(step, EventType.GAP_JUMP, None, (), {"gap": gap, "delta": gap - self._previous_gap})
        self._previous_gap = gap
        dead = [mask.clone() for mask in log.dead_masks]
        if self._previous_dead is not None:
            for layer, now, before in zip(log.layers, dead, self._previous_dead):
                if now.shape != before.shape or now.numel() == 0:
                    continue
                growth = float(now.float().mean() - before.float().mean())
                if growth >= th.dead_growth:
                    died = (now & ~before).nonzero().flatten()
                    self.events.emit(step, EventType.DEAD_UNIT_GROWTH, layer.name, died.tolist(),
                                     {"dead_fraction": float(now.float().mean()), "delta": growth})
        self._previous_dead = dead
