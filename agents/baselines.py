"""Hand-written policies to compare agents against, with SB3's ``predict`` interface.

Every baseline works on one env at a time (the evaluation loop runs single envs) and reads what it needs from
``info`` (see :meth:`observe_info`), so it works with any observation keys. Optional hooks the evaluation loop
calls when a policy has them:

- ``begin_episode(seed)``: before each episode (seeds the random baseline per episode, so results do not depend
  on the order in which episodes run);
- ``observe_info(info)``: after ``reset`` and after every step, with that call's ``info``;
- ``override_instance(instance) -> instance``: change the instance's initial hyperparameters (good defaults);
- ``env_overrides``: ``gym.make`` kwargs the policy needs (e.g. the diagnosis key for the advisor-greedy policy).

In an env with ``mask_grid`` (the agent picks which grid cell of the input to decorrelate: a fifth action entry)
``predict`` appends :meth:`Baseline.mask_cell`: none for every baseline but the random one and the
diagnosis-aware controllers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from traingym.advisors.findings import Finding, parse_finding
from traingym.agents.tuned_defaults import TUNED_DEFAULTS_PATH, TunedValues, clear_tuned_cache, tuned_defaults
from traingym.protocol.moves import AUG_LEVELS, KEEP, LR_FACTOR, WD_FACTOR, Move, clip_move, move_to_action


class Baseline:
    """Base class: the SB3 ``predict`` signature over :meth:`move`, episode bookkeeping from ``episode_start``."""

    env_overrides: dict[str, Any] = {}
    """``gym.make`` kwargs this policy needs."""
    discrete_actions = False

    def __init__(self) -> None:
        self._info: dict[str, Any] = {}
        self._t = 0

    def begin_episode(self, seed: int) -> None:
        """Called before each episode with the episode's seed."""

    def observe_info(self, info: dict[str, Any]) -> None:
        """Remember the ``info`` of the last ``reset``/``step``; a ``reset`` info (step 0) starts a new episode."""
        if info.get("step") == 0:
            self.reset_episode()
        self._info = info

    def reset_episode(self) -> None:
        """Clear per-episode state (on a reset info, or on ``episode_start`` for info-less use)."""
        self._t = 0

    def move(self, observation: dict[str, np.ndarray]) -> Move:
        """The move for the current state."""
        raise NotImplementedError

    def mask_cell(self) -> int:
        """The grid cell to decorrelate this step in an env with ``mask_grid`` (1-based; 0 none)."""
        return 0

    def predict(self, observation: dict[str, np.ndarray], state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[np.ndarray, Any]:
        """SB3 interface: ``(action, state)`` for one (unbatched) observation."""
        if episode_start is not None and bool(np.asarray(episode_start).any()) and self._t != 0:
            self.reset_episode()
        action = move_to_action(self.move(observation))
        if "cell_relevance" in self._info:  # the env's mask_grid: its action ends with the cell to decorrelate
            action = np.append(action, self.mask_cell())
        self._t += 1
        return action, state


class KeepPolicy(Baseline):
    """Never moves: the instance's initial hyperparameters for the whole run."""

    def move(self, observation: dict[str, np.ndarray]) -> Move:
        return KEEP


class RandomPolicy(Baseline):
    """Uniformly random moves on every knob, seeded per episode from ``(seed, episode seed)``."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    def begin_episode(self, seed: int) -> None:
        self._rng = np.random.default_rng([self.seed, seed])

    def move(self, observation: dict[str, np.ndarray]) -> Move:
        return tuple(int(v) for v in self._rng.integers(-1, 2, size=4))  # type: ignore[return-value]

    def mask_cell(self) -> int:
        return int(self._rng.integers(len(self._info["cell_relevance"]) + 1))


class StepDecayPolicy(Baseline):
    """Step-decay schedule: halve the learning rate at fixed fractions of the run (default 50% and 75%), like
    ``torch.optim.lr_scheduler.MultiStepLR`` with gamma 0.5; other knobs stay."""

    def __init__(self, horizon: int, milestones: tuple[float, ...] = (0.5, 0.75)) -> None:
        super().__init__()
        self.horizon = horizon
        self._steps = {max(0, round(f * horizon) - 1) for f in milestones}

    def move(self, observation: dict[str, np.ndarray]) -> Move:
        # The move taken at action index t shapes optimizer steps t*K..(t+1)*K, so milestone f halves the LR from
        # env step round(f * T) on.
        return (-1, 0, 0, 0) if self._t in self._steps else KEEP


class PlateauPolicy(Baseline):
    """Reactive schedule, like ``ReduceLROnPlateau``: halve the LR when validation accuracy has not improved by
    ``min_delta`` for ``patience`` steps (then wait ``cooldown`` steps); raise weight decay when the
    train-validation accuracy gap exceeds ``gap_threshold`` and has grown for ``gap_patience`` steps."""

    def __init__(self, patience: int = 3, min_delta: float = 1e-3, cooldown: int = 1,
                 gap_threshold: float = 0.05, gap_patience: int = 2) -> None:
        super().__init__()
        self.patience, self.min_delta, self.cooldown = patience, min_delta, cooldown
        self.gap_threshold, self.gap_patience = gap_threshold, gap_patience
        self.reset_episode()

    def reset_episode(self) -> None:
        super().reset_episode()
        self._best = -np.inf
        self._bad = 0
        self._cool = 0
        self._gaps: list[float] = []

    def observe_info(self, info: dict[str, Any]) -> None:
        super().observe_info(info)  # resets the episode state on a reset info
        val = float(info["val_accuracy"])
        if val > self._best + self.min_delta:
            self._best, self._bad = val, 0
        else:
            self._bad += 1
        self._gaps.append(float(info["train_accuracy"]) - val)

    def move(self, observation: dict[str, np.ndarray]) -> Move:
        d_lr = d_wd = 0
        if self._cool > 0:
            self._cool -= 1
        elif self._bad >= self.patience:
            d_lr, self._bad, self._cool = -1, 0, self.cooldown
        recent = self._gaps[-(self.gap_patience + 1):]
        if (len(recent) == self.gap_patience + 1 and recent[-1] > self.gap_threshold
                and all(b > a for a, b in zip(recent, recent[1:]))):
            d_wd = 1
        return (d_lr, d_wd, 0, 0)


class AdvisorGreedyPolicy(Baseline):
    """Applies the advisor's suggested move (``info["advisor"]["suggested_move"]``) every step; keeps when the
    env provides no suggestion. Needs the ``diagnosis`` observation key (which makes the env call the advisor)."""

    env_overrides = {"obs_keys": ("training_stats", "diagnosis"), "encoder": "hashing"}
    """The diagnosis key makes the env call the advisor; the cheap text encoder suffices (the text encoding is
    not used, only ``info["advisor"]``)."""

    def move(self, observation: dict[str, np.ndarray]) -> Move:
        advisor = self._info.get("advisor") or {}
        suggested = advisor.get("suggested_move")
        return KEEP if suggested is None else clip_move(list(suggested))


class GoodDefaultsPolicy(KeepPolicy):
    """Reference, not a controller: re-runs the instance with tuned initial hyperparameters (picked by a sweep on
    the TRAIN instances, see :mod:`traingym.agents.tuning`) and never moves."""

    def __init__(self, lr: float, weight_decay: float, aug_level: int) -> None:
        super().__init__()
        self.hparams = {"lr": float(lr), "weight_decay": float(weight_decay), "aug_level": int(aug_level)}

    def override_instance(self, instance: dict[str, Any]) -> dict[str, Any]:
        return {**instance, **self.hparams}


class SteerPolicy(Baseline):
    """Hand controller with the agent's own moves: every step it nudges the learning rate (x2 / x0.5) and the
    weight decay (x3 / x1/3) toward tuned targets while they are more than half a move away in log space, moves
    the augmentation level one step toward its target and never scales neurons. It reads the current values
    from ``info`` (what the policy sees), never from the env's internals."""

    def __init__(self, lr: float, weight_decay: float, aug_level: int) -> None:
        super().__init__()
        if not (lr > 0 and weight_decay > 0 and aug_level >= 0):
            raise ValueError(f"SteerPolicy targets must be lr > 0, weight_decay > 0, aug_level >= 0, got "
                             f"{lr}, {weight_decay}, {aug_level}")
        self.target = {"lr": float(lr), "weight_decay": float(weight_decay), "aug_level": int(aug_level)}

    def move(self, observation: dict[str, np.ndarray]) -> Move:
        if "lr" not in self._info:
            raise ValueError("SteerPolicy needs the env's info (lr, weight_decay, aug_level): call observe_info")
        d_lr = _toward(float(self._info["lr"]), self.target["lr"], LR_FACTOR)
        d_wd = _toward(float(self._info["weight_decay"]), self.target["weight_decay"], WD_FACTOR)
        d_aug = int(np.sign(self.target["aug_level"] - int(self._info["aug_level"])))
        return (d_lr, d_wd, d_aug, 0)


# ---------------------------------------------------------------- the diagnosis-aware controller
# Steer whose targets the advisor's findings move: the yardstick of the information gap
# (docs/results/information_gap.md), what knowing *what is wrong* gains over the blind controllers above, before any
# agent learns it. It sees only what the env observes: the findings in info["advisor"]. Its base targets are its own,
# tuned on TRAIN instances like steer's (`python -m traingym.experiments.information_gap --instance-set train
# --variants --write` stores them in tuned_defaults.json under "diagnosis_aware"; without them it starts from
# steer's): a controller that backs off when the advisor reports noisy labels can afford a higher base LR.

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
    mask_cell: bool = False
    """In an env with ``mask_grid``: decorrelate the cell whose inputs were most relevant to the validation errors
    when the finding was first reported, from then on, instead of raising the augmentation target (which there
    decorrelates nothing: it is the family's own augmentation)."""

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
    Finding.SHORTCUT_FEATURES: Response(aug_level=1, mask_cell=True),
    Finding.SHORTCUT_TOKENS: Response(aug_level=2),
    Finding.NOISY_LABELS: Response(lr=0.1),
    Finding.OVERFITTING: Response(weight_decay=10.0),
    Finding.DIVERGING: Response(lr=0.5),
}
"""The responses, chosen on TRAIN instances of ``TrainGym/DigitsPathologies-v0`` (higher augmentation levels for a
shortcut, scaling its flagged units down, other LR / WD factors and an overfitting response with augmentation did no
better there). ``dead_units`` has none: steer already lowers a too-high LR, and scaling the flagged units up on top
of it made dying-ReLU runs worse."""


def controller_targets(env_id: str) -> dict[str, Any]:
    """The controller's base targets for ``env_id`` (``lr``, ``weight_decay``, ``aug_level``): its own tuned entry,
    else steer's tuned defaults."""
    own = json.loads(TUNED_DEFAULTS_PATH.read_text()).get(env_id, {}).get("diagnosis_aware")
    return {k: own[k] for k in ("lr", "weight_decay", "aug_level")} if own else tuned_defaults(env_id)


def store_controller_targets(env_id: str, targets: dict[str, Any], how: dict[str, Any]) -> None:
    """Put the controller's chosen base targets (and how they were chosen) into ``tuned_defaults.json``."""
    tuned_defaults(env_id)  # steer's entry must exist: the controller's sits inside it
    table = json.loads(TUNED_DEFAULTS_PATH.read_text())
    table[env_id]["diagnosis_aware"] = {**{k: targets[k] for k in ("lr", "weight_decay", "aug_level")}, **how}
    TUNED_DEFAULTS_PATH.write_text(json.dumps(table, indent=1) + "\n")
    clear_tuned_cache()


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
        self.cell = 0
        """With ``mask_grid``: the cell a ``mask_cell`` response chose (kept: a decorrelated shortcut stops being
        relevant, and the next most relevant cell is a stroke); the first of tied cells."""

    def reset_episode(self) -> None:
        super().reset_episode()
        self.target = dict(self.base_target)
        self.seen = set()
        self.cell = 0

    def observe_info(self, info: dict[str, Any]) -> None:
        super().observe_info(info)
        for name in (info.get("advisor") or {}).get("findings", ()):
            finding = parse_finding(name)
            if finding in self.responses and finding not in self.seen:
                self.seen.add(finding)
                response = self.responses[finding]
                self.target["lr"] *= response.lr
                self.target["weight_decay"] *= response.weight_decay
                if response.mask_cell and "cell_relevance" in info:
                    relevance = np.asarray(info["cell_relevance"])
                    self.cell = 1 + int(np.argmax(relevance)) if relevance.max() > 0 else 0  # none explained yet
                else:
                    self.target["aug_level"] = max(self.target["aug_level"], response.aug_level)

    def mask_cell(self) -> int:
        return self.cell

    def move(self, observation: dict[str, np.ndarray]) -> Move:
        d_lr, d_wd, d_aug, _ = super().move(observation)
        current = {parse_finding(name) for name in (self._info.get("advisor") or {}).get("findings", ())}
        scales = {self.responses[f].neuron_scale for f in current if f in self.responses} - {0}
        d_scale = scales.pop() if len(scales) == 1 else 0
        return (d_lr, d_wd, d_aug, d_scale)


class DiagnosisAwareDefaultsPolicy(DiagnosisAwarePolicy):
    """:class:`DiagnosisAwarePolicy` that also re-runs the instance from its base targets, as ``good_defaults``
    does: the same start as that static reference, so the two differ only by reading the diagnosis."""

    def override_instance(self, instance: dict[str, Any]) -> dict[str, Any]:
        return {**instance, **self.base_target}


def _toward(value: float, target: float, factor: float) -> int:
    """+1 / -1 when ``value`` is more than half a multiplicative step of ``factor`` below / above ``target``."""
    steps = np.log(target / value) / np.log(factor)
    return 0 if abs(steps) <= 0.5 else int(np.sign(steps))


def _steer(env_id: str, seed: int, horizon: int) -> SteerPolicy:
    return SteerPolicy(**tuned_defaults(env_id))


def _good_defaults(env_id: str, seed: int, horizon: int) -> GoodDefaultsPolicy:
    return GoodDefaultsPolicy(**tuned_defaults(env_id))


def _diagnosis_aware(env_id: str, seed: int, horizon: int) -> Baseline:
    return DiagnosisAwarePolicy(**controller_targets(env_id))


def _diagnosis_aware_defaults(env_id: str, seed: int, horizon: int) -> Baseline:
    return DiagnosisAwareDefaultsPolicy(**controller_targets(env_id))


BASELINES: dict[str, Callable[[str, int, int], Baseline]] = {
    "keep": lambda env_id, seed, horizon: KeepPolicy(),
    "random": lambda env_id, seed, horizon: RandomPolicy(seed),
    "step_decay": lambda env_id, seed, horizon: StepDecayPolicy(horizon),
    "plateau": lambda env_id, seed, horizon: PlateauPolicy(),
    "advisor_greedy": lambda env_id, seed, horizon: AdvisorGreedyPolicy(),
    "good_defaults": _good_defaults,
    "steer": _steer,
    "diagnosis_aware": _diagnosis_aware,
    "diagnosis_aware_defaults": _diagnosis_aware_defaults,
}
"""Baselines by name: ``factory(env_id, seed, horizon)``."""


_TUNED_CLASSES: dict[str, Callable[..., Baseline]] = {"steer": SteerPolicy, "good_defaults": GoodDefaultsPolicy}
"""The classes of :data:`~traingym.agents.tuned_defaults.TUNED_BASELINES`, built from explicit tuned values."""


def make_baseline(name: str, env_id: str, seed: int = 0, horizon: int = 20, tuned: TunedValues | None = None
                  ) -> Baseline:
    """A baseline by name (see :data:`BASELINES`). ``tuned``: the tuned defaults of the env's family when they
    are not in the package table (a user's family, :func:`traingym.agents.tuning.tune_family`); used by the
    baselines in :data:`~traingym.agents.tuned_defaults.TUNED_BASELINES` only."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose from {sorted(BASELINES)}")
    if tuned is not None and name in _TUNED_CLASSES:
        return _TUNED_CLASSES[name](**dict(tuned))
    return BASELINES[name](env_id, seed, horizon)
