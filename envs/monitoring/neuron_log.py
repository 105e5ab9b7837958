"""Compressed neuron logs: selective (flagged neurons), summarised (per-layer statistics) and event-triggered.

The log never adds hooks to the training steps: gradient norms come from the gradients the last training step
already left on the parameters, and activations are captured by forward hooks that exist only during the
validation and error passes (a module with any hook takes PyTorch's slower call path, on every training step).
The selective part runs one extra forward/backward on the validation *errors* only (capped by
``max_error_samples``): importance of unit ``i`` is the first-order Taylor term ``|sum(a_i * g_i)|`` of the
predicted (wrong) class logit, averaged over the errors.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from traingym.envs.hidden_layer import HiddenLayer
from traingym.protocol.report import LAYER_FIELDS, MAX_LAYERS

LAYER_SLOTS = MAX_LAYERS
"""Hidden layers reported per network (later layers are dropped, missing ones padded with zeros)."""


@dataclass(frozen=True)
class ValidationPass:
    """A validation pass computed outside the log (a batched env's stacked passes for all its sub-envs at once):
    what :meth:`NeuronLog.validation_logits`, :meth:`NeuronLog.record_errors` and
    :meth:`NeuronLog.record_input_relevance` otherwise compute with the module (read by
    :meth:`NeuronLog.validation_logits` and :meth:`NeuronLog.record_computed`)."""

    logits: torch.Tensor
    """``(V, classes)``."""
    hidden: Sequence[torch.Tensor]
    """Each hidden layer's output ``(V, units)``, post-activation (what the forward hooks capture)."""
    importances: Sequence[torch.Tensor]
    """Each hidden layer's unit importances ``(units,)`` on the errors the error pass uses (the first
    ``max_error_samples``): mean ``|a * d logit_predicted / d a|``."""
    input_relevance: torch.Tensor | None
    """As :attr:`NeuronLog.input_relevance`, on the CPU (None when there were no errors, or when the run's
    validation runs no input relevance: :meth:`~traingym.envs.monitoring.monitor.TrainingMonitor.explains_inputs`)."""


@dataclass
class LayerSummary:
    """Summarised statistics of one hidden layer after one env step."""

    name: str
    grad_norm: float = 0.0
    """L2 norm of the incoming-weight gradient left by the last training step."""
    weight_change: float = 0.0
    """L2 norm of the incoming-weight change since the previous env step."""
    mean_abs_weight: float = 0.0
    dead_fraction: float = 0.0
    """Fraction of units never active (activation <= 0) on the whole validation buffer."""
    saturation: float = 0.0
    """Fraction of units active on more than 99% of validation activations (they no longer gate)."""
    error_share: float = 0.0
    """This layer's share of the total error relevance (sum of unit importances) over all layers."""

    def as_dict(self) -> dict[str, float | str]:
        return {"name": self.name, **{f: float(getattr(self, f)) for f in LAYER_FIELDS}}


class NeuronLog:
    """Per-layer statistics and flagged neurons of a target network, refreshed once per env step."""

    def __init__(self, layers: Sequence[HiddenLayer], top_k: int, max_error_samples: int, *,
                 selective: bool = True, summaries: bool = True) -> None:
        self.layers = list(layers)
        self.selective = selective
        """Run the error pass and flag the top-k units (off: nothing is flagged, scaling moves do nothing)."""
        self.summarised = summaries
        """Collect per-layer statistics (off: no activations are captured, summaries stay zero)."""
        self.top_k = top_k
        self.max_error_samples = max_error_samples
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._captured: dict[int, torch.Tensor] = {}
        self._previous_weights = [layer.weight.detach().clone() for layer in self.layers]
        self.summaries = [LayerSummary(layer.name) for layer in self.layers]
        self.dead_masks: list[torch.Tensor] = [torch.zeros(layer.units, dtype=torch.bool) for layer in self.layers]
        self.flagged: list[torch.Tensor] = [torch.zeros(0, dtype=torch.int64) for _ in self.layers]
        self.flagged_scores: list[torch.Tensor] = [torch.zeros(0) for _ in self.layers]
        self.n_errors = 0
        self.input_relevance: torch.Tensor | None = None
        """``(2, F)`` on the CPU, per input feature over the last :meth:`record_input_relevance`'s errors: the summed
        share of each error's contrastive gradient x input that the feature carries, and the number of errors in
        which the feature is non-zero (None when there were no errors)."""

    def _capture(self, index: int, module: nn.Module, inputs: object, output: torch.Tensor) -> None:
        self._captured[index] = output

    @contextlib.contextmanager
    def _capturing(self, enabled: bool = True) -> Iterator[None]:
        """Forward hooks on the hidden layers for the duration of one pass; removed afterwards."""
        if enabled:
            # A partial of a bound method (not a closure) keeps the model, and so the env, picklable.
            self._handles = [layer.module.register_forward_hook(functools.partial(self._capture, index))
                             for index, layer in enumerate(self.layers)]
        try:
            yield
        finally:
            self.close()

    # ------------------------------------------------------------------ per step
    @torch.no_grad()
    def record_training(self) -> None:
        """Gradient norms (from the last training step) and weight changes since the previous env step."""
        if not self.summarised or not self.layers:
            return
        stats = []
        for layer, previous in zip(self.layers, self._previous_weights):
            grad = layer.weight.grad
            weight = layer.weight.detach()
            grad_norm = grad.norm() if grad is not None else weight.new_zeros(())
            stats.append(torch.stack([grad_norm, (weight - previous).norm(), weight.abs().mean()]))
            previous.copy_(weight)
        # One device-to-host copy for every layer (on a GPU each float() would be a sync of its own).
        for summary, values in zip(self.summaries, torch.stack(stats).tolist()):
            summary.grad_norm, summary.weight_change, summary.mean_abs_weight = values

    def validation_logits(self, model: nn.Module, x_val: torch.Tensor, computed: ValidationPass | None = None
                          ) -> torch.Tensor:
        """The validation forward pass, capturing activations for the dead-unit and saturation statistics; with
        ``computed``, the pass was run elsewhere (a batched env's one stacked pass for all its sub-envs) and only
        its logits and hidden outputs are read."""
        if computed is None:
            with self._capturing(self.summarised), torch.no_grad():
                logits = model(x_val)
            acts: list[torch.Tensor | None] = [self._captured.pop(i, None) for i in range(len(self.layers))]
        else:
            logits = computed.logits
            acts = list(computed.hidden) if self.summarised else [None] * len(self.layers)
        for i, (layer, act) in enumerate(zip(self.layers, acts)):
            if act is None:
                continue
            active = _fold_units(act > 0, layer.unit_dim).float().mean(0)  # fraction of activations > 0 per unit
            flags = torch.stack([active == 0, active > 0.99]).cpu()  # dead, saturated: one host copy per layer
            self.dead_masks[i] = flags[0]
            summary = self.summaries[i]
            summary.dead_fraction, summary.saturation = flags.float().mean(1).tolist()
        return logits

    def record_errors(self, model: nn.Module, x_err: torch.Tensor, predicted: torch.Tensor) -> None:
        """Selective log: importance |a * g| of every unit on the validation errors; flags the top-k per layer."""
        self.n_errors = int(x_err.shape[0])
        if self.n_errors == 0 or not self.selective:
            self._clear_flags()
            return
        self._flag(self._importances(model, x_err, predicted))

    def record_computed(self, computed: ValidationPass, n_errors: int, explain: bool) -> None:
        """What :meth:`record_errors` and (``explain``) :meth:`record_input_relevance` record, from a pass computed
        elsewhere: its importances and input relevance, with the number of validation errors (not the errors)."""
        self.n_errors = n_errors
        if n_errors == 0 or not self.selective:
            self._clear_flags()
        else:
            self._flag(list(computed.importances))
        if explain:
            self.input_relevance = computed.input_relevance

    def _flag(self, importances: list[torch.Tensor]) -> None:
        """Flag the top-k units per layer by importance (each layer's ``(units,)``); set the layers' error shares."""
        # Flagging works on a few numbers per layer: one device-to-host copy, the rest on the CPU.
        importances = list(torch.cat(importances).cpu().split([imp.numel() for imp in importances]))
        sums = [imp.sum() for imp in importances]
        total = float(sum(sums)) or 1.0  # summed in float32, layer by layer
        for i, (imp, share) in enumerate(zip(importances, torch.stack(sums).tolist())):
            k = min(self.top_k, imp.numel())
            # Stable order: highest importance first, ties by lowest unit id.
            order = torch.argsort(-imp, stable=True)[:k]
            self.flagged[i] = order
            self.flagged_scores[i] = imp[order] / total
            self.summaries[i].error_share = share / total

    def _importances(self, model: nn.Module, x_err: torch.Tensor, predicted: torch.Tensor) -> list[torch.Tensor]:
        """Per hidden layer, mean ``|a * d logit_predicted / d a|`` per unit over the first errors."""
        x_err, predicted = x_err[: self.max_error_samples], predicted[: self.max_error_samples]
        try:
            with self._capturing(), torch.enable_grad():
                logits = model(x_err)
                activations = [self._captured.pop(i) for i in range(len(self.layers))]
                target = logits.gather(1, predicted[:, None]).sum()
                grads = torch.autograd.grad(target, activations, allow_unused=True)
        finally:
            self._captured.clear()
        importances = []
        for layer, act, grad in zip(self.layers, activations, grads):
            if grad is None:
                importances.append(torch.zeros(layer.units, dtype=act.dtype, device=act.device))
                continue
            taylor = _per_sample_units(act.detach() * grad, layer.unit_dim)  # (B, units)
            importances.append(taylor.abs().mean(0))
        return importances

    def record_input_relevance(self, model: nn.Module, x_err: torch.Tensor, predicted: torch.Tensor,
                               labels: torch.Tensor) -> None:
        """Input relevance on the validation errors (:attr:`input_relevance`): per error, the contrastive gradient x
        input ``x * d(logit_predicted - logit_true)/dx``, positive part (the features that pushed the wrong class
        past the right one), normalised to shares over the features."""
        x = x_err[: self.max_error_samples].detach().requires_grad_(True)
        if x.shape[0] == 0:
            self.input_relevance = None
            return
        predicted, labels = predicted[: self.max_error_samples], labels[: self.max_error_samples]
        with torch.enable_grad():
            logits = model(x)
            margin = (logits.gather(1, predicted[:, None]) - logits.gather(1, labels[:, None])).sum()
            (grad,) = torch.autograd.grad(margin, [x])
        flat = x.detach().flatten(1)
        relevance = (flat * grad.flatten(1)).clamp_min(0)
        shares = relevance / relevance.sum(1, keepdim=True).clamp_min(1e-12)
        self.input_relevance = torch.stack([shares.sum(0), (flat != 0).sum(0).to(shares.dtype)]).cpu()

    def _clear_flags(self) -> None:
        for i in range(len(self.layers)):
            self.flagged[i] = torch.zeros(0, dtype=torch.int64)
            self.flagged_scores[i] = torch.zeros(0)
            self.summaries[i].error_share = 0.0

    def scale_flagged(self, factor: float) -> int:
        """Scale the incoming weights of every flagged neuron by ``factor``; returns how many were scaled."""
        count = 0
        for layer, ids in zip(self.layers, self.flagged):
            layer.scale_units(ids, factor)
            count += int(ids.numel())
        return count

    # ------------------------------------------------------------------ outputs
    def summary_matrix(self) -> np.ndarray:
        """``(LAYER_SLOTS, len(LAYER_FIELDS))`` float32, zero padded."""
        out = np.zeros((LAYER_SLOTS, len(LAYER_FIELDS)), dtype=np.float32)
        for i, summary in enumerate(self.summaries[:LAYER_SLOTS]):
            out[i] = [getattr(summary, f) for f in LAYER_FIELDS]
        return out

    def flagged_matrix(self) -> np.ndarray:
        """``(LAYER_SLOTS, top_k)`` float32: the flagged neurons' normalised importances, zero padded."""
        out = np.zeros((LAYER_SLOTS, self.top_k), dtype=np.float32)
        for i, scores in enumerate(self.flagged_scores[:LAYER_SLOTS]):
            out[i, : scores.numel()] = scores.numpy()
        return out

    def flagged_report(self) -> list[dict]:
        return [{"layer": layer.name, "ids": ids.tolist(), "scores": [round(float(s), 6) for s in scores]}
                for layer, ids, scores in zip(self.layers, self.flagged, self.flagged_scores) if ids.numel()]

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def _fold_units(t: torch.Tensor, unit_dim: int) -> torch.Tensor:
    """``(N, units)``: every axis but the unit axis folded into N."""
    return t.movedim(unit_dim, -1).reshape(-1, t.shape[unit_dim])


def _per_sample_units(t: torch.Tensor, unit_dim: int) -> torch.Tensor:
    """``(B, units)``: summed over every axis but the batch and unit axes (conv positions, tokens)."""
    if t.dim() == 2:  # already (B, units): nothing to sum
        return t
    t = t.movedim(unit_dim, -1)
    return t.reshape(t.shape[0], -1, t.shape[-1]).sum(1)
