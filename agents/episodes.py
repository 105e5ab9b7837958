"""Running a policy for whole episodes on fixed instances: the one evaluation path for agents and baselines.

Episode ``i`` is instance ``i`` of the chosen instance set with ``reset(seed=i)``, for every policy, so results are
paired across policies and reproducible: the same policy and instance give the same numbers in any process and in
any order (stateful policies are reset per episode, the random baseline is reseeded from the episode seed).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from traingym.agents.env_factory import make_env
from traingym.agents.policies import PolicySpec, env_overrides, resolve_policy
from traingym.agents.tuned_defaults import TunedValues


@dataclass(frozen=True)
class EpisodeSettings:
    """Which env and which instances an evaluation runs (shared by every policy compared)."""

    env_id: str
    horizon: int
    steps_per_action: int
    instance_indices: tuple[int, ...]
    instance_set: str = "test"
    advisor: str | None = None
    """Advisor spec for policies whose env emits the diagnosis key."""
    record_trajectories: bool = False
    """Keep one record per step (report, diagnosis, move, reward) for the trajectory export."""
    agent_model: str = "final"
    """Which model of a run directory to evaluate: final or best."""
    devices: tuple[tuple[str, str], ...] = ()
    """Env device kwargs, e.g. ``(("device", "cuda"),)`` (see ``Args.device_kwargs``); empty: CPU."""
    task: str | None = None
    """The task family of ``TrainGym/Custom-v0`` (``module:Class``); None: the id's registered task."""
    tuned: TunedValues | None = None
    """Tuned defaults for the steer / good_defaults baselines when the family has none in the package table."""
    ablation: tuple[tuple[str, Any], ...] = ()
    """Env kwargs every policy's env gets, over the policy's own (an ablation of the env, e.g.
    ``(("relevance", False),)``); empty: none."""

    def env_kwargs(self, overrides: dict[str, Any]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"steps_per_action": self.steps_per_action, "instance_set": self.instance_set}
        if self.task is not None:
            kwargs["task"] = self.task
        if self.advisor is not None:
            kwargs["advisor"] = self.advisor
        kwargs.update(self.devices)
        kwargs.update(overrides)
        kwargs.update(self.ablation)
        return kwargs


@dataclass
class EpisodeResult:
    """The outcome of one episode and its per-step trajectory (index 0 is the state after reset)."""

    policy: str
    instance_index: int
    seed: int
    test_accuracy: float
    val_auc: float
    """Mean validation accuracy over the T steps (a diverged run counts at its post-divergence accuracy)."""
    diverged: bool
    steps: int
    episode_return: float
    initial_val_accuracy: float
    train_accuracy: float = math.nan
    """Training accuracy of the last step's K optimizer steps."""
    lr: list[float] = field(default_factory=list)
    weight_decay: list[float] = field(default_factory=list)
    aug_level: list[int] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    """Per-step training accuracy (the list twin of the final ``train_accuracy``; NaN after reset)."""
    moves: list[list[int]] = field(default_factory=list)
    """Per step the move (one entry per knob), then the cell decorrelated in an env with ``mask_grid``."""
    advisor_calls: int = 0
    advisor_fallbacks: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)

    def scalars(self) -> dict[str, Any]:
        """The per-episode numbers (no trajectories)."""
        skip = {"lr", "weight_decay", "aug_level", "val_accuracy", "train_loss", "val_loss", "train_acc", "moves",
                "records"}
        return {k: v for k, v in asdict(self).items() if k not in skip}


def run_episode(policy: Any, env: gym.Env, label: str, index: int, seed: int, horizon: int,
                record: bool = False) -> EpisodeResult:
    """Run ``policy`` for one episode on instance ``index`` with ``reset(seed=seed)``."""
    options: dict[str, Any] = {"instance_index": index}
    if hasattr(policy, "override_instance"):
        options = {"instance": policy.override_instance(episode_instance(env, index, seed))}
    if hasattr(policy, "begin_episode"):
        policy.begin_episode(seed)
    obs, info = env.reset(seed=seed, options=options)
    result = EpisodeResult(label, index, seed, math.nan, math.nan, False, 0, 0.0, float(info["val_accuracy"]))
    _append_state(result, info)
    state, start, done = None, True, False
    while not done:
        if hasattr(policy, "observe_info"):
            policy.observe_info(info)
        step_record = _step_record(env, info, result.steps) if record else None
        action, state = policy.predict(obs, state=state, episode_start=np.array([start]), deterministic=True)
        obs, reward, terminated, truncated, info = env.step(action)
        start, done = False, terminated or truncated
        result.steps += 1
        result.episode_return += float(reward)
        _append_state(result, info)
        result.moves.append([int(m) for m in info["move"]] + ([int(info["mask_cell"])] if "mask_cell" in info else []))
        if step_record is not None:
            step_record.update(move=[int(m) for m in info["move"]], reward=float(reward),
                               val_accuracy=float(info["val_accuracy"]))
            if "mask_cell" in info:
                step_record["mask_cell"] = int(info["mask_cell"])
            result.records.append(step_record)
    result.test_accuracy = float(info["test_accuracy"])
    result.train_accuracy = float(info["train_accuracy"])
    result.diverged = bool(info["diverged"])
    vals = result.val_accuracy[1:]
    vals += [vals[-1]] * (horizon - len(vals))  # a diverged run stays at its post-divergence accuracy
    result.val_auc = float(np.mean(vals))
    return result


def episode_instance(env: gym.Env, index: int, seed: int) -> dict[str, Any]:
    """The instance episode ``index`` plays: ``index`` of a fixed instance set, or for ``sampled`` the draw that
    ``reset(seed=seed)`` makes (an extra reset), so that a policy overriding the instance's settings plays the
    same draw as every other policy."""
    if env.unwrapped.config.instance_set == "sampled":  # type: ignore[attr-defined]
        return dict(env.reset(seed=seed)[1]["instance"])
    return dict(env.unwrapped.instances[index])  # type: ignore[attr-defined]


def _append_state(result: EpisodeResult, info: dict[str, Any]) -> None:
    result.lr.append(float(info["lr"]))
    result.weight_decay.append(float(info["weight_decay"]))
    result.aug_level.append(int(info["aug_level"]))
    result.val_accuracy.append(float(info["val_accuracy"]))
    result.train_loss.append(float(info["train_loss"]))
    result.val_loss.append(float(info["val_loss"]))
    result.train_acc.append(float(info["train_accuracy"]))
    advisor = info.get("advisor")
    if isinstance(advisor, dict):
        result.advisor_calls += int(bool(advisor.get("called")))
        result.advisor_fallbacks += int(advisor.get("fallback_reason") is not None)


def _step_record(env: gym.Env, info: dict[str, Any], step: int) -> dict[str, Any]:
    """What the advisor saw before the move: the env's report and the diagnosis of it (when the env has one)."""
    return {"step": step, "report": env.unwrapped.report(), "diagnosis": info.get("advisor")}


def run_policy(spec: PolicySpec, settings: EpisodeSettings, indices: tuple[int, ...] | None = None
               ) -> list[EpisodeResult]:
    """Resolve ``spec`` and run it on ``indices`` (default: all of ``settings.instance_indices``).

    A module-level function of picklable arguments, so a process pool can run it.
    """
    policy = resolve_policy(spec, settings.env_id, settings.horizon, settings.agent_model, settings.tuned)
    return run_policy_object(policy, spec.label, settings, indices)


def make_policy_env(policy: Any, settings: EpisodeSettings) -> gym.Env:
    """The env a policy is evaluated in (its observation keys, its action space)."""
    return make_env(settings.env_id, settings.horizon, settings.env_kwargs(env_overrides(policy)),
                    discrete=bool(getattr(policy, "discrete_actions", False)))


def run_policy_object(policy: Any, label: str, settings: EpisodeSettings, indices: tuple[int, ...] | None = None,
                      env: gym.Env | None = None) -> list[EpisodeResult]:
    """Run an already-built policy (e.g. the agent being trained) on ``indices``; ``env`` (from
    :func:`make_policy_env`) is reused and left open when given."""
    own_env = env is None
    env = make_policy_env(policy, settings) if env is None else env
    try:
        return [run_episode(policy, env, label, i, i, settings.horizon, settings.record_trajectories)
                for i in (settings.instance_indices if indices is None else indices)]
    finally:
        if own_env:
            env.close()
