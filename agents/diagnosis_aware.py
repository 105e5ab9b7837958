"""A hand controller that reads the advisor's diagnosis: steer, with targets that the findings move.

Its base targets are its own, tuned on TRAIN instances like steer's (``python -m traingym.agents.information_gap
--instance-set train --variants --write`` stores them in ``agents/tuned_defaults.json`` under
``"diagnosis_aware"``; without them it starts from steer's): a controller that backs off when the advisor reports
noisy labels can afford a higher base learning rate than one steering blind.

The yardstick of the information gap (``docs/results/information_gap.md``): what a controller that *knows what is
wrong* gains over the blind ones (steer, tuned static defaults, keep) on the same instances, before any agent
learns it. It sees only what the env observes: the advisor's findings in ``info["advisor"]`` (the env calls the
advisor because :attr:`DiagnosisAwarePolicy.env_overrides` adds the ``diagnosis`` key).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from traingym.advisors.findings import Finding, parse_finding
from traingym.agents.baselines import SteerPolicy
from traingym.protocol.moves import AUG_LEVELS, Move


@dataclass(frozen=True)
class Response:
    """How a finding moves the controller's targets, from the step it is first reported to the episode's end."""

    lr: float = 1.0
    """Factor on the learning-rate target (> 0)."""
    weight_decay: float = 1.0
    """Factor on the weight-decay target (> 0)."""
    aug_level: int = 0
    """Lowest augmentation-level target while the finding holds (0..4)."""
    neuron_scale: int = 0
    """Neuron-scaling move (-1, 0, +1) on the steps where the finding is reported."""

    def __post_init__(self) -> None:
        for name in ("lr", "weight_decay"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(f"Response.{name} must be a number > 0, got {value!r}")
        if self.aug_level not in range(AUG_LEVELS):
            raise ValueError(f"Response.aug_level must be in 0..{AUG_LEVELS - 1}, got {self.aug_level!r}")
        if self.neuron_scale not in (-1, 0, 1):
            raise ValueError(f"Response.neuron_scale must be -1, 0 or 1, got {self.neuron_scale!r}")


DEFAULT_RESPONSES: dict[Finding, Response] = {
    Finding.SHORTCUT_FEATURES: Response(aug_level=1),
    Finding.SHORTCUT_TOKENS: Response(aug_level=2),
    Finding.NOISY_LABELS: Response(lr=0.1),
    Finding.OVERFITTING: Response(weight_decay=10.0),
    Finding.DIVERGING: Response(lr=0.5),
}
"""The responses, chosen on TRAIN instances of ``TrainGym/DigitsPathologies-v0`` (``docs/results/information_gap.md``
lists what was tried). ``dead_units`` has none: steer already lowers a too-high LR, and scaling the flagged units
up on top of it lowered the test accuracy of dying-ReLU runs (0.72-0.78 against 0.97 with the LR halved alone)."""


def controller_targets(env_id: str) -> dict[str, Any]:
    """The controller's base targets for ``env_id`` (``lr``, ``weight_decay``, ``aug_level``): its own tuned entry,
    else steer's tuned defaults."""
    from traingym.agents.good_defaults import TUNED_DEFAULTS_PATH, tuned_defaults

    own = json.loads(TUNED_DEFAULTS_PATH.read_text()).get(env_id, {}).get("diagnosis_aware")
    return {k: own[k] for k in ("lr", "weight_decay", "aug_level")} if own else tuned_defaults(env_id)


def store_controller_targets(env_id: str, targets: dict[str, Any], how: dict[str, Any]) -> None:
    """Put the controller's chosen base targets (and how they were chosen) into ``tuned_defaults.json``."""
    from traingym.agents.good_defaults import TUNED_DEFAULTS_PATH, tuned_defaults

    tuned_defaults(env_id)  # steer's entry must exist: the controller's sits inside it
    table = json.loads(TUNED_DEFAULTS_PATH.read_text())
    table[env_id]["diagnosis_aware"] = {**{k: targets[k] for k in ("lr", "weight_decay", "aug_level")}, **how}
    TUNED_DEFAULTS_PATH.write_text(json.dumps(table, indent=1) + "\n")


class DiagnosisAwarePolicy(SteerPolicy):
    """Steer (the agent's own moves toward tuned targets) whose targets the advisor's findings move: a finding
    first reported at some step changes the targets by its :class:`Response` for the rest of the episode (a
    remedy is not undone when the symptom it cures fades)."""

    env_overrides = {"obs_keys": ("training_stats", "diagnosis"), "encoder": "hashing"}
    """The diagnosis key makes the env call the advisor; only ``info["advisor"]["findings"]`` is read, so the
    cheap text encoder suffices."""

    def __init__(self, lr: float, weight_decay: float, aug_level: int,
                 responses: Mapping[Finding, Response] | None = None) -> None:
        super().__init__(lr, weight_decay, aug_level)
        self.responses = dict(DEFAULT_RESPONSES if responses is None else responses)
        self.base_target = dict(self.target)
        self.seen: set[Finding] = set()

    def reset_episode(self) -> None:
        super().reset_episode()
        self.target = dict(self.base_target)
        self.seen = set()

    def observe_info(self, info: dict[str, Any]) -> None:
        super().observe_info(info)
        for name in (info.get("advisor") or {}).get("findings", ()):
            finding = parse_finding(name)
            if finding in self.responses and finding not in self.seen:
                self.seen.add(finding)
                response = self.responses[finding]
                self.target["lr"] *= response.lr
                self.target["weight_decay"] *= response.weight_decay
                self.target["aug_level"] = max(self.target["aug_level"], response.aug_level)

    def move(self, observation: dict[str, np.ndarray]) -> Move:
        d_lr, d_wd, d_aug, _ = super().move(observation)
        current = {parse_finding(name) for name in (self._info.get("advisor") or {}).get("findings", ())}
        scales = {self.responses[f].neuron_scale for f in current if f in self.responses} - {0}
        d_scale = scales.pop() if len(scales) == 1 else 0
        return (d_lr, d_wd, d_aug, d_scale)
