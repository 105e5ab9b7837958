"""Static hyperparameter optimisation baselines: tune an instance's *starting* hyperparameters with Optuna.

One trial is one full training run of a TrainGym instance with the trial's learning rate, weight decay and
augmentation level, and no moves during the run (the keep action ``[1, 1, 1, 1]`` every step). The objective is
the final **validation** accuracy; the **test** accuracy of each run is only recorded
(``trial.user_attrs["test_accuracy"]``) and reported for the best trial. Compute is counted in target-network
optimizer steps: ``n_trials x horizon x steps_per_action`` (the budget; diverged runs stop early and use fewer,
see ``optimizer_steps_run``).

Samplers: ``tpe`` (Optuna's seeded :class:`~optuna.samplers.TPESampler`) and ``llm_tpe``
(:class:`~traingym.hpo.llm_tpe.LLMTPESampler`, SLLMBO's hybrid, with any TrainGym advisor).

A run is an episode of the agents' evaluation loop (:func:`~traingym.agents.episodes.run_episode`) with the
:class:`~traingym.agents.baselines.GoodDefaultsPolicy` (the trial's starting hyperparameters, then no moves) in an
env from :func:`~traingym.agents.env_factory.make_env`.

Example::

    python -m traingym.hpo study --sampler llm_tpe --advisor heuristic --instance-index 3 --n-trials 10
    python -m traingym.hpo compare --n-instances 20 --horizon 10     # see traingym.hpo.compare
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import gymnasium as gym
import optuna
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler, TPESampler
from traingym.agents.baselines import GoodDefaultsPolicy
from traingym.agents.env_factory import make_env
from traingym.agents.episodes import run_episode
from traingym.envs.config import INSTANCE_SETS, OPTIMIZERS, TrainingEnvConfig
from traingym.envs.tasks.base import LR_RANGES
from traingym.hpo.llm_tpe import REPORT_ATTR, LLMTPEConfig, LLMTPESampler
from traingym.protocol.checks import check_range
from traingym.protocol.moves import AUG_LEVELS

SAMPLERS = ("tpe", "llm_tpe")
"""Static HPO samplers."""


def hpo_search_space(optimizer: str = "sgd") -> dict[str, BaseDistribution]:
    """The static HPO search space, from the env's own instance distribution for ``optimizer``.

    ``lr`` log-uniform over the optimizer's instance LR range, ``weight_decay`` log-uniform over the instance WD
    range, ``aug_level`` an int over the env's augmentation levels.
    """
    if optimizer not in LR_RANGES:
        raise ValueError(f"optimizer must be one of {tuple(LR_RANGES)}, got {optimizer!r}")
    ranges = LR_RANGES[optimizer]
    return {
        "lr": FloatDistribution(*ranges.lr, log=True),
        "weight_decay": FloatDistribution(*ranges.weight_decay, log=True),
        "aug_level": IntDistribution(0, AUG_LEVELS - 1),
    }


@dataclass(frozen=True)
class HPOConfig:
    """One static HPO study on one TrainGym instance."""

    env_id: str = "TrainGym/DigitsMLP-v0"
    """Registered TrainGym environment id."""
    instance_set: str = "test"
    """Instance set the instance comes from: train or test (held out)."""
    instance_index: int = 0
    """Index of the instance in the set (0..127 for test, 0..511 for train)."""
    seed: int | None = None
    """Env reset seed of every run (network init, batch order, augmentation); None: ``instance_index``."""
    n_trials: int = 20
    """Training runs (trials) of the study, 1..10000."""
    horizon: int = TrainingEnvConfig.horizon
    """Env steps per run (the registered default is 20), 1..10000."""
    steps_per_action: int = TrainingEnvConfig.steps_per_action
    """Optimizer steps per env step (K), 1..10000."""
    optimizer: str = "sgd"
    """Target-network optimizer (sgd or adam); also picks the LR search range."""
    val_size: int = TrainingEnvConfig.val_size
    """Validation buffer size of the env, 16..100000."""
    sampler: str = "tpe"
    """``tpe`` or ``llm_tpe``."""
    advisor: str = "heuristic"
    """LLM-TPE advisor: heuristic, smollm, gemma, hf:<path>, openai:<model>."""
    p_llm: float = 0.5
    """LLM-TPE: probability that a trial is proposed by the advisor, in [0, 1]."""
    history_k: int = 5
    """LLM-TPE: recent trials shown to the advisor, 0..50."""
    min_distance: float = 0.01
    """LLM-TPE: proposals closer than this (normalised) to a tried configuration fall back to TPE, in [0, 1)."""
    sampler_seed: int = 0
    """Seed of the sampler (TPE and the LLM-TPE coin)."""
    n_startup_trials: int = 10
    """Random trials before TPE models the history (Optuna's default 10), 0..10000."""

    def __post_init__(self) -> None:
        if not isinstance(self.env_id, str) or not self.env_id.startswith("TrainGym/"):
            raise ValueError(f"env_id must be a registered TrainGym id (TrainGym/...), got {self.env_id!r}")
        if self.instance_set not in INSTANCE_SETS[:2]:
            raise ValueError(f"instance_set must be one of {INSTANCE_SETS[:2]}, got {self.instance_set!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        for name, low, high in (("instance_index", 0, 100_000), ("n_trials", 1, 10_000), ("horizon", 1, 10_000),
                                ("steps_per_action", 1, 10_000), ("val_size", 16, 100_000),
                                ("n_startup_trials", 0, 10_000), ("history_k", 0, 50)):
            check_range(name, getattr(self, name), low, high, integer=True)
        if self.seed is not None:
            check_range("seed", self.seed, 0, 2**32 - 1, integer=True)
        check_range("sampler_seed", self.sampler_seed, 0, 2**32 - 1, integer=True)
        if not (0.0 <= self.p_llm <= 1.0):
            raise ValueError(f"p_llm must be in [0, 1], got {self.p_llm!r}")
        if not (0.0 <= self.min_distance < 1.0):
            raise ValueError(f"min_distance must be in [0, 1), got {self.min_distance!r}")
        if not isinstance(self.advisor, str) or not self.advisor.strip():
            raise ValueError(f"advisor must be a non-empty spec string, got {self.advisor!r}")

    @property
    def run_seed(self) -> int:
        """The env reset seed used for every run."""
        return self.instance_index if self.seed is None else self.seed

    @property
    def steps_per_run(self) -> int:
        """Optimizer steps of one full run: ``horizon x steps_per_action``."""
        return self.horizon * self.steps_per_action

    def env_kwargs(self) -> dict[str, Any]:
        """``gym.make`` kwargs of the study's env (statistics observation only: no advisor, no encoder)."""
        return {"instance_set": self.instance_set, "steps_per_action": self.steps_per_action,
                "optimizer": self.optimizer, "val_size": self.val_size, "obs_keys": ("training_stats",)}

    def make_env(self) -> gym.Env:
        """The study's env (:func:`traingym.agents.env_factory.make_env`)."""
        return make_env(self.env_id, self.horizon, self.env_kwargs())


# ------------------------------------------------------------------------------------------------ one run
@dataclass(frozen=True)
class RunResult:
    """Outcome of one training run with fixed hyperparameters."""

    val_accuracy: float
    test_accuracy: float
    train_accuracy: float
    diverged: bool
    optimizer_steps_run: int
    """Optimizer steps actually run (fewer than the budget when the run diverged)."""
    final_report: dict[str, Any] = field(repr=False, default_factory=dict)
    """The env's final TrainingReport (bounded JSON-able dict)."""


def run_fixed_config(env: gym.Env, instance_index: int, seed: int, params: Mapping[str, Any]) -> RunResult:
    """Train instance ``instance_index`` from scratch with ``params`` (lr, weight_decay, aug_level), no moves."""
    policy = GoodDefaultsPolicy(params["lr"], params["weight_decay"], params["aug_level"])
    config = env.unwrapped.config
    episode = run_episode(policy, env, "fixed", instance_index, seed, config.horizon)
    return RunResult(val_accuracy=episode.val_accuracy[-1], test_accuracy=episode.test_accuracy,
                     train_accuracy=episode.train_accuracy, diverged=episode.diverged,
                     optimizer_steps_run=episode.steps * config.steps_per_action,
                     final_report=env.unwrapped.report())


class StaticHPOObjective:
    """Optuna objective: one keep-action training run of a fixed instance per trial; returns validation accuracy.

    Stores ``test_accuracy``, ``train_accuracy``, ``diverged``, ``optimizer_steps_run`` and the final
    TrainingReport (``final_report``, read by the heuristic LLM-TPE proposer) as trial user attributes.
    """

    def __init__(self, env: gym.Env, instance_index: int, seed: int, space: Mapping[str, BaseDistribution]) -> None:
        self.env, self.instance_index, self.seed, self.space = env, int(instance_index), int(seed), dict(space)

    def __call__(self, trial: optuna.Trial) -> float:
        params = {}
        for name, dist in self.space.items():
            if isinstance(dist, IntDistribution):
                params[name] = trial.suggest_int(name, dist.low, dist.high)
            else:
                assert isinstance(dist, FloatDistribution)
                params[name] = trial.suggest_float(name, dist.low, dist.high, log=dist.log)
        result = run_fixed_config(self.env, self.instance_index, self.seed, params)
        trial.set_user_attr("test_accuracy", result.test_accuracy)
        trial.set_user_attr("train_accuracy", round(result.train_accuracy, 4))
        trial.set_user_attr("diverged", result.diverged)
        trial.set_user_attr("optimizer_steps_run", result.optimizer_steps_run)
        trial.set_user_attr(REPORT_ATTR, result.final_report)
        return result.val_accuracy


# ------------------------------------------------------------------------------------------------ a study
@dataclass(frozen=True)
class TrialResult:
    """One trial of a finished study."""

    number: int
    params: dict[str, Any]
    val_accuracy: float
    test_accuracy: float
    diverged: bool
    optimizer_steps_run: int
    proposer: str
    """``tpe``, ``llm`` or ``tpe_fallback`` (``tpe`` for plain TPE studies)."""


@dataclass(frozen=True)
class BudgetResult:
    """The best trial (by validation accuracy; earliest on ties) among a study's first ``n_trials`` trials."""

    n_trials: int
    best_params: dict[str, Any]
    best_val_accuracy: float
    best_test_accuracy: float
    optimizer_steps: int
    """Budget spent: ``n_trials x horizon x steps_per_action``."""
    optimizer_steps_run: int
    """Optimizer steps actually run (diverged runs stop early)."""


@dataclass(frozen=True)
class HPOResult:
    """A finished static HPO study."""

    config: HPOConfig
    instance: dict[str, Any]
    trials: tuple[TrialResult, ...]
    sampler_stats: dict[str, Any] | None = None
    """LLM-TPE counters (:class:`~traingym.hpo.llm_tpe.LLMTPEStats`), None for TPE."""

    def best_at(self, n_trials: int | None = None) -> BudgetResult:
        """The result of the study truncated to its first ``n_trials`` trials (default: all).

        Samplers are sequential and seeded, so the first n trials of a longer study are exactly the trials an
        n-trial study would run: one 20-trial study gives the 5-, 10- and 20-trial results.
        """
        n = len(self.trials) if n_trials is None else int(n_trials)
        if not 1 <= n <= len(self.trials):
            raise ValueError(f"n_trials must be in [1, {len(self.trials)}], got {n_trials}")
        head = self.trials[:n]
        best = max(head, key=lambda t: (t.val_accuracy, -t.number))
        return BudgetResult(n, dict(best.params), best.val_accuracy, best.test_accuracy,
                            n * self.config.steps_per_run, sum(t.optimizer_steps_run for t in head))

    def as_dict(self) -> dict[str, Any]:
        best = self.best_at()
        return {"config": asdict(self.config), "instance": self.instance, "best": asdict(best),
                "trials": [asdict(t) for t in self.trials], "sampler_stats": self.sampler_stats}


def make_sampler(config: HPOConfig) -> BaseSampler:
    """The seeded sampler a config asks for."""
    if config.sampler == "tpe":
        return TPESampler(seed=config.sampler_seed, n_startup_trials=config.n_startup_trials)
    return LLMTPESampler(hpo_search_space(config.optimizer), config.advisor, LLMTPEConfig(
        p_llm=config.p_llm, seed=config.sampler_seed, history_k=config.history_k, min_distance=config.min_distance,
        n_startup_trials=config.n_startup_trials))


def run_study(config: HPOConfig, *, env: gym.Env | None = None, sampler: BaseSampler | None = None) -> HPOResult:
    """Run one static HPO study (quiet Optuna logging) and collect its trials.

    Args:
        config: the study.
        env: reuse an env built by :meth:`HPOConfig.make_env` with the same settings (built and closed here if None).
        sampler: override the sampler built from ``config`` (e.g. an LLM-TPE sampler with a custom advisor).
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    own_env = env is None
    env = env or config.make_env()
    try:
        instances = env.unwrapped.instances
        if config.instance_index >= len(instances):
            raise ValueError(f"instance_index must be in [0, {len(instances) - 1}], got {config.instance_index}")
        instance = dict(instances[config.instance_index])
        sampler = sampler or make_sampler(config)
        space = hpo_search_space(config.optimizer)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(StaticHPOObjective(env, config.instance_index, config.run_seed, space),
                       n_trials=config.n_trials)
    finally:
        if own_env:
            env.close()
    trials = tuple(
        TrialResult(t.number, dict(t.params), float(t.value), float(t.user_attrs["test_accuracy"]),
                    bool(t.user_attrs["diverged"]), int(t.user_attrs["optimizer_steps_run"]),
                    str(t.user_attrs.get("proposer", "tpe")))
        for t in study.trials if t.value is not None and math.isfinite(t.value))
    stats = sampler.stats.as_dict() if isinstance(sampler, LLMTPESampler) else None
    return HPOResult(config, instance, trials, stats)


def keep_run(config: HPOConfig, env: gym.Env | None = None) -> RunResult:
    """The instance trained with its own starting hyperparameters and the keep action (the "keep" baseline)."""
    own_env = env is None
    env = env or config.make_env()
    try:
        instance = env.unwrapped.instances[config.instance_index]
        return run_fixed_config(env, config.instance_index, config.run_seed, instance)
    finally:
        if own_env:
            env.close()
