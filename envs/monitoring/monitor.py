"""What a training run looks like to an agent and an advisor: the neuron log, events, history, report and
observation of one run, whoever owns the training loop.

:class:`TrainingMonitor` is the one implementation shared by :class:`~traingym.envs.training_env.TrainingEnv`
(which owns its run) and the training doctor (:mod:`traingym.doctor`, attached to a user's run): both hand it the
model's hidden layers, the validation buffer and the run's status (:class:`RunStatus`), and get back the same
``Dict`` observation and the same TrainingReport (:func:`traingym.protocol.report.build_report`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn
from traingym.envs.config import LR_BOUNDS, WD_BOUNDS, TrainingEnvConfig
from traingym.envs.hidden_layer import HiddenLayer
from traingym.envs.monitoring.event_detector import EventDetector
from traingym.envs.monitoring.event_log import EventLog, report_view
from traingym.envs.monitoring.input_relevance import InputRelevanceMonitor, feature_names
from traingym.envs.monitoring.input_relevance import feature_size as input_feature_size
from traingym.envs.monitoring.neuron_log import LAYER_SLOTS, NeuronLog, ValidationPass
from traingym.envs.monitoring.token_monitor import FEATURE_SIZE as TOKEN_FEATURE_SIZE
from traingym.envs.monitoring.token_monitor import TokenRelevanceMonitor
from traingym.envs.tasks.input_cells import input_cells
from traingym.protocol.events import EventType
from traingym.protocol.moves import AUG_LEVELS
from traingym.protocol.report import (
    HISTORY_KEYS,
    MAX_FLAGGED_TOKENS,
    MAX_RECENT_EVENTS,
    build_report,
    history_slopes,
)

TRAINING_FIELDS: tuple[str, ...] = (
    "log10_lr", "log10_weight_decay", "aug_level", "progress",
    "train_loss", "train_acc", "val_loss", "val_acc", "gap_loss", "gap_acc",
    "slope_val_loss", "slope_val_acc", "slope_gap_loss", "dead_fraction",
    *(f"log10_grad_norm_{i}" for i in range(LAYER_SLOTS)),
    *(f"log10_weight_change_{i}" for i in range(LAYER_SLOTS)),
)
"""Layout of the ``"training_stats"`` observation vector. ``aug_level`` is scaled to [0, 1]."""
OBS_BOUND = 10.0
"""Every observation entry is clipped to [-OBS_BOUND, OBS_BOUND] (non-finite values are sanitised first)."""
MAX_LOSS = 10.0
"""Losses are capped at this value in observations, history and reports."""


@dataclass(frozen=True)
class RunStatus:
    """The run's state at one check (an env step, or a doctor check every K optimizer steps)."""

    step: int
    horizon: int
    lr: float
    weight_decay: float
    aug_level: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    diverged: bool = False


class TrainingMonitor:
    """Neuron log, event log and detector, metric history, token relevance and the observation blocks of one run.

    Args:
        config: the env config whose logging and observation fields apply (``obs_keys``, ``neuron_log``,
            ``flag_top_k``, ``max_error_samples``, ``history_len``, ``event_log_capacity``, ``log_path``,
            ``relevance`` and the advisor / encoder fields of the diagnosis channel).
        vocabulary: token strings of a text model's input ids (token relevance runs then), else None (input
            relevance runs then, once :meth:`reset` is given the input shape).
    """

    def __init__(self, config: TrainingEnvConfig, vocabulary: tuple[str, ...] | None = None) -> None:
        self.config = config
        self.events = EventLog(config.event_log_capacity, config.log_path)
        self.detector = EventDetector(self.events)
        self.neuron_features = None
        self.diagnosis = None
        self.relevance: TokenRelevanceMonitor | None = None
        if vocabulary is not None and config.relevance:
            events = self.events if "events" in config.neuron_log else None
            self.relevance = TokenRelevanceMonitor(vocabulary, config.max_error_samples, events=events)
        obs_spaces: dict[str, spaces.Box] = {}
        if "training_stats" in config.obs_keys:
            obs_spaces["training_stats"] = _box(len(TRAINING_FIELDS))
        if "neurons" in config.obs_keys:
            from traingym.envs.monitoring.neuron_features import NeuronFeatures

            # Text families carry the token block, the others the input block (zeros with relevance off, or for
            # a run whose input shape is unknown), with the cell features when the agent picks a cell to mask: the
            # same space either way.
            self.neuron_features = NeuronFeatures(
                config.flag_top_k, TOKEN_FEATURE_SIZE if vocabulary is not None
                else input_feature_size(config.mask_grid ** 2))
            obs_spaces["neurons"] = _box(self.neuron_features.size)
        if "diagnosis" in config.obs_keys:
            from traingym.envs.diagnosis import make_diagnosis_channel

            self.diagnosis = make_diagnosis_channel(config)
            obs_spaces["diagnosis"] = self.diagnosis.observation_space
        self.observation_space = spaces.Dict(obs_spaces)
        self.advisor_accounting: dict[str, Any] = {}
        """Latest run-time accounting of the advisor (latency, caches, tokens)."""
        self.advisor_info: dict[str, Any] = {}
        """Latest reproducible diagnosis info (``info["advisor"]`` without the accounting)."""
        self.log: NeuronLog | None = None
        self.inputs: InputRelevanceMonitor | None = None
        """Input relevance of an image / table run (None for text, with ``relevance=False`` or no input shape)."""
        self.cells: tuple[np.ndarray, ...] | None = None
        """With ``mask_grid``: flat input ids per grid cell of the run's images (the agent's masking targets)."""
        self._text = vocabulary is not None
        self.history: dict[str, deque[float]] = {k: deque(maxlen=config.history_len) for k in HISTORY_KEYS}
        self.slopes: dict[str, float] = {}

    def reset(self, layers: list[HiddenLayer], input_shape: tuple[int, ...] | None = None) -> None:
        """Start a new run on a model with these hidden layers: fresh neuron log, empty history and event counts.
        ``input_shape`` (one input's shape, e.g. ``(1, 8, 8)``) turns on input relevance for non-text runs."""
        if self.log is not None:
            self.log.close()
        policies = self.config.neuron_log
        self.log = NeuronLog(layers, self.config.flag_top_k, self.config.max_error_samples,
                             selective="selective" in policies, summaries="summaries" in policies)
        self.history = {k: deque(maxlen=self.config.history_len) for k in HISTORY_KEYS}
        self.slopes = {}
        self.events.reset()
        self.detector.reset()
        if self.relevance is not None:
            self.relevance.reset()
        self.inputs = None
        self.cells = (input_cells(input_shape, self.config.mask_grid)
                      if self.config.mask_grid and input_shape is not None and not self._text else None)
        if input_shape is not None and not self._text and self.config.relevance:
            events = self.events if "events" in policies else None
            self.inputs = InputRelevanceMonitor(feature_names(input_shape), events=events, cells=self.cells or ())
        if self.diagnosis is not None:
            self.diagnosis.reset()

    def training_outcome(self, mean_loss: float, accuracy: float, weight_norm: float) -> tuple[float, float, bool]:
        """Divergence check and training statistics of the neuron log after the K optimizer steps (the model's
        parameters and last-step gradients are in place); returns mean train loss (capped), train accuracy and
        whether the run diverged (a non-finite or exploding loss, or exploding weights)."""
        assert self.log is not None
        config = self.config
        diverged = not (mean_loss <= config.max_loss and weight_norm <= config.max_weight_norm)  # NaN too
        if not diverged:
            self.log.record_training()
        return min(mean_loss, MAX_LOSS) if math.isfinite(mean_loss) else MAX_LOSS, accuracy, diverged

    def diverged(self, step: int, train_loss: float, n_classes: int) -> tuple[float, float]:
        """Record a divergence at ``step`` (no validation pass runs); returns the validation loss and accuracy
        that stand for it (the loss cap, chance accuracy)."""
        if "events" in self.config.neuron_log:
            self.events.emit(step, EventType.DIVERGENCE, values={"loss": train_loss})
        return MAX_LOSS, 1.0 / n_classes

    def explains_inputs(self, step: int) -> bool:
        """Whether :meth:`validate` at ``step`` runs input relevance on the errors: image and table runs with
        relevance on, not at step 0 (the env's reset: an untrained network has learned no reliance to diagnose)."""
        return self.inputs is not None and step > 0

    def validate(self, model: nn.Module, x_val: torch.Tensor, y_val: torch.Tensor, step: int,
                 train_loss: float, computed: ValidationPass | None = None) -> tuple[float, float]:
        """Validation pass on the fixed buffer; refreshes the neuron log and flagged neurons, detects events.
        ``computed``: the pass already run elsewhere (:class:`~traingym.envs.monitoring.neuron_log.ValidationPass`)."""
        assert self.log is not None
        if computed is None:
            model.eval()  # for the module's own passes; a computed pass reads nothing from the module
        logits = self.log.validation_logits(model, x_val, computed)
        predicted = logits.argmax(1)
        errors = predicted != y_val
        explain = self.explains_inputs(step)
        if computed is None:
            self.log.record_errors(model, x_val[errors], predicted[errors])
            if explain:
                self.log.record_input_relevance(model, x_val[errors], predicted[errors], y_val[errors])
        else:  # the log needs only the number of errors: no copies of them
            self.log.record_computed(computed, int(errors.sum()), explain)
        if explain:
            assert self.inputs is not None
            self.inputs.update(self.log.input_relevance, step)
        loss, acc = torch.stack([F.cross_entropy(logits, y_val), (~errors).float().mean()]).tolist()
        loss = min(loss, MAX_LOSS) if math.isfinite(loss) else MAX_LOSS
        if "events" in self.config.neuron_log:
            self.detector.detect(step, errors, train_loss, loss, self.history, self.log)
        return loss, acc

    def record_history(self, status: RunStatus) -> None:
        """Append this check's metrics and compute the slopes once, for the observation and the report alike."""
        for key, value in (("train_loss", status.train_loss), ("train_acc", status.train_acc),
                           ("val_loss", status.val_loss), ("val_acc", status.val_acc)):
            self.history[key].append(value)
        self.slopes = history_slopes(self.history)

    def training_vector(self, status: RunStatus) -> np.ndarray:
        """The ``"training_stats"`` block (layout :data:`TRAINING_FIELDS`)."""
        assert self.log is not None
        summaries = self.log.summaries[:LAYER_SLOTS]
        grad = [math.log10(s.grad_norm + 1e-8) for s in summaries]
        change = [math.log10(s.weight_change + 1e-8) for s in summaries]
        pad = [0.0] * (LAYER_SLOTS - len(summaries))
        dead = float(np.mean([s.dead_fraction for s in self.log.summaries])) if self.log.summaries else 0.0
        s = status
        values = [
            math.log10(s.lr), math.log10(s.weight_decay), s.aug_level / (AUG_LEVELS - 1), s.step / s.horizon,
            s.train_loss, s.train_acc, s.val_loss, s.val_acc,
            s.val_loss - s.train_loss, s.train_acc - s.val_acc,
            self.slopes["val_loss"], self.slopes["val_acc"], self.slopes["gap_loss"], dead,
            *grad, *pad, *change, *pad,
        ]
        return sanitise(np.asarray(values, dtype=np.float32))

    def report(self, task: dict[str, Any], status: RunStatus) -> dict[str, Any]:
        """The bounded JSON-able TrainingReport of the current state, as advisors read it."""
        assert self.log is not None
        return build_report(
            task=task, step=status.step, horizon=status.horizon,
            hparams={"lr": status.lr, "weight_decay": status.weight_decay, "aug_level": status.aug_level},
            bounds={"lr": list(LR_BOUNDS), "weight_decay": list(WD_BOUNDS), "aug_level": [0, AUG_LEVELS - 1]},
            history={k: list(v) for k, v in self.history.items()},
            slopes=self.slopes,
            layers=[s.as_dict() for s in self.log.summaries[:LAYER_SLOTS]],
            flagged_neurons=self.log.flagged_report(),
            flagged_tokens=self.relevance.report(MAX_FLAGGED_TOKENS) if self.relevance is not None else [],
            flagged_inputs=self.inputs.report() if self.inputs is not None else [],
            event_counts={k: v for k, v in self.events.counts().items() if v},
            recent_events=[report_view(r) for r in self.events.recent(MAX_RECENT_EVENTS)],
            diverged=status.diverged,
        )

    def observe(self, task: dict[str, Any], status: RunStatus, report: Callable[[], dict[str, Any]] | None = None
                ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Record the check's history, then build the observation (keys ``config.obs_keys``) and the extra info
        (``{"advisor": ...}`` when the diagnosis key is observed). ``report`` builds the report the advisor reads
        (default :meth:`report`; the env passes its own ``report`` method, so subclasses that override it are
        heard)."""
        self.record_history(status)
        obs: dict[str, np.ndarray] = {}
        extra: dict[str, Any] = {}
        if "training_stats" in self.config.obs_keys:
            obs["training_stats"] = self.training_vector(status)
        if self.neuron_features is not None:
            assert self.log is not None
            extra_block = (self.relevance.features() if self.relevance is not None
                           else self.inputs.features() if self.inputs is not None else None)
            obs["neurons"] = sanitise(self.neuron_features.vector(self.log, self.events, extra_block))
        if self.diagnosis is not None:
            built = report() if report is not None else self.report(task, status)
            vector, advisor, self.advisor_accounting = self.diagnosis.observe(built, status.step)
            self.advisor_info = advisor
            extra["advisor"] = {**advisor, **self.advisor_accounting} if self.config.advisor_accounting else advisor
            obs["diagnosis"] = vector
        return obs, extra

    def close(self) -> None:
        """Remove hooks, close the diagnosis channel and the event log file. Idempotent."""
        if self.log is not None:
            self.log.close()
        if self.diagnosis is not None:
            self.diagnosis.close()
        self.events.close()


def _box(size: int) -> spaces.Box:
    return spaces.Box(-OBS_BOUND, OBS_BOUND, shape=(size,), dtype=np.float32)


def sanitise(vector: np.ndarray) -> np.ndarray:
    """float32, non-finite values replaced, clipped to [-OBS_BOUND, OBS_BOUND]."""
    vector = np.nan_to_num(vector.astype(np.float32), nan=0.0, posinf=OBS_BOUND, neginf=-OBS_BOUND)
    return np.clip(vector, -OBS_BOUND, OBS_BOUND)
