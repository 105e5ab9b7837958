"""Hand-written policies to compare agents against, with SB3's ``predict`` interface.

Every baseline works on one env at a time (the evaluation loop runs single envs) and reads what it needs from
``info`` (see :meth:`observe_info`), so it works with any observation keys. Optional hooks the evaluation loop
calls when a policy has them:

- ``begin_episode(seed)``: before each episode (seeds the random baseline per episode, so results do not depend
  on the order in which episodes run);
- ``observe_info(info)``: after ``reset`` and after every step, with that call's ``info``;
- ``override_instance(instance) -> instance``: change the instance's initial hyperparameters (good defaults);
- ``env_overrides``: ``gym.make`` kwargs the policy needs (e.g. the diagnosis key for the advisor-greedy policy).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from traingym.protocol.moves import KEEP, LR_FACTOR, WD_FACTOR, Move, clip_move, move_to_action


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

    def predict(self, observation: dict[str, np.ndarray], state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[np.ndarray, Any]:
        """SB3 interface: ``(action, state)`` for one (unbatched) observation."""
        if episode_start is not None and bool(np.asarray(episode_start).any()) and self._t != 0:
            self.reset_episode()
        action = move_to_action(self.move(observation))
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
    the TRAIN instances, see :mod:`traingym.agents.good_defaults`) and never moves."""

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


def _toward(value: float, target: float, factor: float) -> int:
    """+1 / -1 when ``value`` is more than half a multiplicative step of ``factor`` below / above ``target``."""
    steps = np.log(target / value) / np.log(factor)
    return 0 if abs(steps) <= 0.5 else int(np.sign(steps))


def _steer(env_id: str, seed: int, horizon: int) -> SteerPolicy:
    from traingym.agents.good_defaults import tuned_defaults

    return SteerPolicy(**tuned_defaults(env_id))


def _good_defaults(env_id: str, seed: int, horizon: int) -> GoodDefaultsPolicy:
    from traingym.agents.good_defaults import tuned_defaults

    return GoodDefaultsPolicy(**tuned_defaults(env_id))


def _diagnosis_aware(env_id: str, seed: int, horizon: int) -> Baseline:
    from traingym.agents.diagnosis_aware import DiagnosisAwarePolicy, controller_targets

    return DiagnosisAwarePolicy(**controller_targets(env_id))


BASELINES: dict[str, Callable[[str, int, int], Baseline]] = {
    "keep": lambda env_id, seed, horizon: KeepPolicy(),
    "random": lambda env_id, seed, horizon: RandomPolicy(seed),
    "step_decay": lambda env_id, seed, horizon: StepDecayPolicy(horizon),
    "plateau": lambda env_id, seed, horizon: PlateauPolicy(),
    "advisor_greedy": lambda env_id, seed, horizon: AdvisorGreedyPolicy(),
    "good_defaults": _good_defaults,
    "steer": _steer,
    "diagnosis_aware": _diagnosis_aware,
}
"""Baselines by name: ``factory(env_id, seed, horizon)``."""


def make_baseline(name: str, env_id: str, seed: int = 0, horizon: int = 20) -> Baseline:
    """A baseline by name (see :data:`BASELINES`)."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose from {sorted(BASELINES)}")
    return BASELINES[name](env_id, seed, horizon)
