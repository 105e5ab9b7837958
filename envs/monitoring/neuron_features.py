"""The ``"neurons"`` observation block: a fixed-size float32 view of the neuron log and the event log."""

from __future__ import annotations

import numpy as np
from traingym.envs.monitoring.event_log import EVENT_TYPES, EventLog
from traingym.envs.monitoring.neuron_log import LAYER_SLOTS, NeuronLog
from traingym.protocol.report import LAYER_FIELDS, SHORTCUT_Z

_LOG_FIELDS = {"grad_norm", "weight_change", "mean_abs_weight"}
"""Summary fields observed as log10 (they span decades); the others are fractions in [0, 1]."""
LOG_SCALE = 4.0
"""Decades that map to tanh(1) ~ 0.76 in the observed log10 fields (1e-4 -> -0.76, 1e-8 -> -0.96)."""
Z_SCALE = SHORTCUT_Z
"""Robust z that maps to tanh(1) ~ 0.76 in the token and input relevance blocks (the flagging threshold)."""


def squash(values: np.ndarray | float, scale: float) -> np.ndarray:
    """``tanh(values / scale)``: every feature of the block in (-1, 1), monotone, linear near 0.

    Why: the block's raw log10 summaries reach -8 and the relevance z-scores reach 100 on shortcut runs, which
    saturate a tanh policy network, and normalising them with running statistics blows the rare large values up
    further (``ablation_digits_mlp.md``). Bounded features did not by themselves make the neurons block help an
    agent (``docs/results/ablation_pathologies.md``)."""
    return np.tanh(np.asarray(values, dtype=np.float64) / scale)


class NeuronFeatures:
    """Layout, per layer slot (4 slots, zero padded, stable order = forward order of the hidden layers):

    1. ``top_k`` flagged-neuron importances (share of the total error relevance, highest first);
    2. the summaries of :data:`~traingym.protocol.report.LAYER_FIELDS` (grad norm, weight change and mean
       |weight| as ``squash(log10, LOG_SCALE)``, the rest as fractions);

    then, once: per event type (:data:`~traingym.envs.monitoring.event_log.EVENT_TYPES`), log1p of the events of the
    last step and log1p of the events since the episode began. Text tasks append the token block of
    :meth:`~traingym.envs.monitoring.token_monitor.TokenRelevanceMonitor.features` (``extra``; zeros when relevance
    is off).
    """

    def __init__(self, top_k: int, extra_size: int = 0) -> None:
        self.top_k = top_k
        self.extra_size = extra_size
        self.size = LAYER_SLOTS * (top_k + len(LAYER_FIELDS)) + 2 * len(EVENT_TYPES) + extra_size

    def vector(self, log: NeuronLog, events: EventLog, extra: np.ndarray | None = None) -> np.ndarray:
        summaries = log.summary_matrix()
        for j, name in enumerate(LAYER_FIELDS):
            if name in _LOG_FIELDS:
                summaries[:, j] = squash(np.log10(summaries[:, j] + 1e-8), LOG_SCALE) * (summaries[:, j] > 0)
        parts = [np.concatenate([log.flagged_matrix(), summaries], axis=1).reshape(-1),
                 np.log1p(events.count_vector("step")), np.log1p(events.count_vector("reset"))]
        if self.extra_size:
            parts.append(extra if extra is not None else np.zeros(self.extra_size, dtype=np.float32))
        return np.concatenate(parts).astype(np.float32)
