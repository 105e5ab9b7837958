"""Training an agent on a TrainGym env: vectorised envs, callbacks, atomic checkpoints and resume, the run
directory, then the final paired evaluation against baselines on the held-out instances."""

from __future__ import annotations

import json
import platform
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecMonitor, VecNormalize
from traingym.agents.algos import algo_class, build_model, uses_discrete_actions
from traingym.agents.args import Args
from traingym.agents.callbacks import HeldOutEvalCallback, TrainGymMetricsCallback, read_learning_curve
from traingym.agents.checkpoints import (
    AtomicCheckpointCallback,
    atomic_save,
    atomic_write_json,
    latest_checkpoint,
    save_agent,
)
from traingym.agents.env_factory import env_factory
from traingym.agents.episodes import EpisodeSettings
from traingym.agents.evaluate import PolicySummary, evaluate, run_evaluation, summarize
from traingym.agents.kickstart import DemonstrationLoss, Demonstrations, KickstartResult, kickstart
from traingym.agents.knob_subset import KnobSubsetVecEnv
from traingym.agents.policies import PolicySpec
from traingym.agents.tuning import EvaluationBaselines
from traingym.agents.tuning import prepare_baselines as prepare_tuned_baselines
from traingym.envs.batched.sb3 import make_batched_vec_env
from traingym.envs.tasks.base import TEST_SET_SIZE
from traingym.protocol.moves import KNOBS
from traingym.protocol.run_files import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    DEMONSTRATIONS_FILE,
    KICKSTART_FILE,
    LEARNING_CURVE_BASELINES,
    LEARNING_CURVE_CSV,
    MODEL_FILE,
    TIMING_FILE,
    TRAJECTORIES_FILE,
    TUNED_DEFAULTS_FILE,
)

if TYPE_CHECKING:
    from traingym.report.live import WatchServer



class RunError(ValueError):
    """A user-facing problem with the run directory (e.g. nothing to resume)."""


@dataclass
class TrainResult:
    """What a training run produced."""

    run_dir: Path
    model_path: Path
    num_timesteps: int
    resumed_from: int | None
    train_seconds: float
    eval_seconds: float = 0.0
    summaries: list[PolicySummary] = field(default_factory=list)


def default_run_dir(args: Args) -> Path:
    """``runs/<algo>-<env>-<timestamp>``."""
    env = args.env.split("/")[-1].removesuffix("-v0").lower()
    return Path("runs") / f"{args.algo}-{env}-{time.strftime('%Y%m%d-%H%M%S')}"


def load_run_args(run_dir: str | Path) -> dict[str, Any]:
    """The saved arguments of a run (``config.json``)."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        raise RunError(f"cannot resume: {path} does not exist")
    return json.loads(path.read_text())["args"]


def write_config(run_dir: Path, args: Args, resumed_from: int | None = None, algo_kwargs: dict[str, Any] | None = None,
                 versions: dict[str, str] | None = None) -> None:
    """``config.json``: the arguments (never secrets: API keys only ever come from environment variables),
    the resolved env kwargs, library versions, and per start (the first and every resume) the package's commit and
    the machine, so a run's timings can be read with the code and hardware behind them. ``algo_kwargs`` /
    ``versions``: another backend's settings (default: the SB3 algorithm's) and extra library versions."""
    import gymnasium
    import stable_baselines3
    import torch
    from traingym.protocol.provenance import git_commit, machine_description

    path = run_dir / CONFIG_FILE
    previous = json.loads(path.read_text()) if path.exists() else {}
    config = {
        "args": args.to_json(), "observation": args.observation_spec().to_json(),
        "env_kwargs": {k: list(v) if isinstance(v, tuple) else v for k, v in args.env_kwargs().items()},
        "algo_kwargs": args.algo_kwargs() if algo_kwargs is None else algo_kwargs,
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "gymnasium": gymnasium.__version__, "stable_baselines3": stable_baselines3.__version__,
                     **(versions or {})},
        "created": previous.get("created", time.strftime("%Y-%m-%dT%H:%M:%S")),
        "resumed": previous.get("resumed", []) + ([resumed_from] if resumed_from is not None else []),
        "starts": previous.get("starts", []) + [{"at": time.strftime("%Y-%m-%dT%H:%M:%S"), "step": resumed_from or 0,
                                                 "commit": git_commit(), "machine": machine_description()}],
    }
    atomic_write_json(path, config)


def build_training_env(args: Args) -> tuple[VecEnv, VecNormalize | None]:
    """``n_envs`` training envs on the TRAIN instances (batched, or SubprocVecEnv when more than one), optionally
    wrapped in VecNormalize. Returns the outermost env and the normalizer."""
    kwargs = {**args.env_kwargs(), "instance_set": "train"}
    venv: VecEnv
    if args.vec_env == "batched":
        venv = VecMonitor(make_batched_vec_env(args.env, args.n_envs, workers=args.env_workers, horizon=args.horizon,
                                               **kwargs))
    else:
        env_ids = args.training_env_ids()
        factories = [env_factory(env_id, args.horizon, kwargs, discrete=uses_discrete_actions(args.algo), monitor=True)
                     for env_id in env_ids]
        venv = SubprocVecEnv(factories) if args.n_envs > 1 else DummyVecEnv(factories)
        if args.train_envs:
            check_same_spaces(venv, env_ids)
    knobs = args.resolved_knobs()
    if knobs != KNOBS:
        venv = KnobSubsetVecEnv(venv, knobs)
    if not args.normalize:
        return venv, None
    normalizer = VecNormalize(venv, norm_obs=True, norm_reward=True, clip_obs=10.0, gamma=args.gamma,
                              norm_obs_keys=list(args.observation_spec().normalized_keys) or None)
    return normalizer, normalizer


def check_same_spaces(venv: VecEnv, env_ids: Sequence[str]) -> None:
    """One agent trains on all of ``venv``'s envs: their observation and action spaces must be equal.

    Raises:
        RunError: naming the first env id whose space differs from the first env's.
    """
    for name in ("observation_space", "action_space"):
        spaces = venv.get_attr(name)
        for env_id, space in zip(env_ids, spaces):
            if space != spaces[0]:
                venv.close()
                raise RunError(f"--train-envs: {env_id}'s {name.replace('_', ' ')} {space} differs from "
                               f"{env_ids[0]}'s {spaces[0]}; pick observation keys whose shape all families share "
                               "(training_stats)")


def restore(args: Args, run_dir: Path, venv: VecEnv) -> tuple[BaseAlgorithm, VecEnv, VecNormalize | None, int]:
    """Load the last complete checkpoint of ``run_dir``: model, VecNormalize statistics, replay buffer."""
    checkpoint = latest_checkpoint(run_dir / CHECKPOINT_DIR)
    if checkpoint is None:
        raise RunError(f"cannot resume: no checkpoint in {run_dir / CHECKPOINT_DIR} (latest.json missing)")
    normalizer = None
    env = venv
    if checkpoint.normalizer is not None:
        normalizer = VecNormalize.load(str(checkpoint.normalizer), venv)
        normalizer.training = True
        env = normalizer
    model = algo_class(args.algo).load(checkpoint.model, env=env, device=args.device,
                                       tensorboard_log=str(run_dir / "tb") if args.tensorboard else None)
    if checkpoint.replay_buffer is not None:
        model.load_replay_buffer(checkpoint.replay_buffer)  # type: ignore[attr-defined]
    model.set_random_seed(args.seed + checkpoint.step)
    venv.seed(args.seed + checkpoint.step)
    return model, env, normalizer, checkpoint.step


def periodic_eval_settings(args: Args) -> EpisodeSettings:
    """Periodic evaluations use the last held-out instances, the final evaluation the first ones, so selecting the
    best model does not bias the final table (disjoint while both counts add up to at most 128)."""
    first = TEST_SET_SIZE - args.eval_freq_episodes
    return EpisodeSettings(args.env, args.horizon, args.steps_per_action, tuple(range(first, TEST_SET_SIZE)),
                           advisor=args.resolved_advisor(), devices=tuple(args.device_kwargs().items()),
                           task=args.task)


def make_callbacks(args: Args, run_dir: Path, normalizer: VecNormalize | None) -> list[BaseCallback]:
    """Metrics, kickstarting's imitation term (--demo-coef), periodic held-out evaluation (best model) and atomic
    checkpoints."""
    callbacks: list[BaseCallback] = [TrainGymMetricsCallback()]
    if args.demo_coef > 0:
        callbacks.append(DemonstrationLoss(Demonstrations.load(run_dir / DEMONSTRATIONS_FILE), normalizer,
                                           args.demo_coef, args.total_timesteps, seed=args.seed))
    if args.eval_freq > 0:
        callbacks.append(HeldOutEvalCallback(
            periodic_eval_settings(args), run_dir, args.eval_freq, args.observation_spec(),
            uses_discrete_actions(args.algo), normalizer, args.seed, args.verbose, args.resolved_knobs()))
    if args.checkpoint_freq > 0:
        callbacks.append(AtomicCheckpointCallback(run_dir / CHECKPOINT_DIR, args.checkpoint_freq, normalizer,
                                                  verbose=args.verbose))
    return callbacks


def start_watch(args: Args, run_dir: Path) -> WatchServer | None:
    """The live watch page (``--watch PORT``), started; prints its URL with the token."""
    if args.watch is None:
        return None
    from traingym.report.live import LiveState, WatchServer

    server = WatchServer(LiveState(f"{args.algo} on {args.env}: {run_dir}"), port=args.watch)
    print(f"watch page: {server.start()}", flush=True)
    return server


def train(args: Args) -> TrainResult:
    """Train (or resume) the agent; saves ``model.zip`` (+ VecNormalize statistics) into the run directory."""
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(args)
    if not args.resume and (run_dir / CONFIG_FILE).exists():
        raise RunError(f"{run_dir} already holds a run; use --resume to continue it or another --run-dir")
    if args.eval_freq > 0 and args.eval_freq_episodes + args.eval_episodes > TEST_SET_SIZE:
        warnings.warn(f"--eval-freq-episodes {args.eval_freq_episodes} + --eval-episodes {args.eval_episodes} > "
                      f"{TEST_SET_SIZE}: best-model selection shares instances with the final table",
                      stacklevel=2)
    run_dir.mkdir(parents=True, exist_ok=True)
    venv, normalizer = build_training_env(args)
    resumed_from = None
    watch = None
    try:
        watch = start_watch(args, run_dir)
        start = time.perf_counter()  # the training time includes a kickstart's demonstrations and fits
        if args.resume:
            model, venv, normalizer, resumed_from = restore(args, run_dir, venv)
            print(f"resumed from checkpoint at step {resumed_from}")
        else:
            venv.seed(args.seed)
            kwargs = args.algo_kwargs()
            model = build_model(args.algo, venv, args.seed, args.device,
                                str(run_dir / "tb") if args.tensorboard else None, args.verbose, **kwargs)
            if args.kickstart:
                kicked = run_kickstart(args, run_dir, model, normalizer)
                print(f"kickstart: imitated {kicked.controller} for {kicked.env_steps} env steps "
                      f"(action accuracy {kicked.action_accuracy:.3f})")
        write_config(run_dir, args, resumed_from)
        remaining = args.total_timesteps - model.num_timesteps
        if remaining > 0:
            callbacks = make_callbacks(args, run_dir, normalizer)
            if watch is not None:
                from traingym.report.watch_callback import WatchCallback

                callbacks.append(WatchCallback(watch.state))
            # A kickstart's env steps are already on the counter: continue it rather than restart it.
            model.learn(remaining, callback=CallbackList(callbacks), progress_bar=args.progress_bar,
                        reset_num_timesteps=resumed_from is None and model.num_timesteps == 0, tb_log_name="tb")
        seconds = time.perf_counter() - start
        model_path = save_agent(model, normalizer, run_dir / MODEL_FILE)
        # Now, not only after the final evaluation: a run whose evaluation is cut off keeps its training time.
        atomic_write_json(run_dir / TIMING_FILE, {"train_seconds": seconds, "num_timesteps": model.num_timesteps})
    finally:
        venv.close()
        if watch is not None:
            watch.stop()
    print(f"trained {model.num_timesteps} env steps in {seconds:.0f} s; model saved to {model_path}")
    return TrainResult(run_dir, model_path, model.num_timesteps, resumed_from, seconds)


def run_kickstart(args: Args, run_dir: Path, model: BaseAlgorithm, normalizer: VecNormalize | None
                  ) -> KickstartResult:
    """Fit a fresh agent to ``--kickstart``'s demonstrations; their env steps go on the model's step counter and
    what happened into the run directory's ``KICKSTART_FILE``, the demonstrations into ``DEMONSTRATIONS_FILE``."""
    result, demonstrations = kickstart(
        model, normalizer, args.kickstart, args.env, args.env_kwargs(), args.resolved_obs_keys(),
        args.resolved_knobs(), args.kickstart_episodes, args.kickstart_epochs, args.horizon, args.gamma, args.seed,
        args.kickstart_rounds)
    model.num_timesteps = result.env_steps
    atomic_save(run_dir / DEMONSTRATIONS_FILE, demonstrations.save)
    atomic_write_json(run_dir / KICKSTART_FILE, result.to_json())
    return result


def prepare_baselines(args: Args) -> EvaluationBaselines:
    """The baselines the final evaluation runs, with the tuned defaults a user's family needs (swept now, or
    cached; see :func:`~traingym.agents.tuning.prepare_baselines`). Called before training, so a family whose
    sweep fails costs no training; the baselines it cannot serve are left out with one line."""
    return prepare_tuned_baselines(args.baselines, args.env, args.task, args.horizon, args.steps_per_action,
                                   args.eval_workers, args.tune_baselines)


def final_evaluation(args: Args, result: TrainResult, baselines: EvaluationBaselines | None = None) -> TrainResult:
    """Evaluate the agent and the baselines on the first ``eval_episodes`` held-out instances (paired), write
    eval.csv/json, the plots, the learning curve, the trajectory export (default ``<run-dir>/trajectories.jsonl``)
    and the run report ``report.html``. ``baselines``: from :func:`prepare_baselines` (default: prepared now)."""
    from traingym.report import write_report

    start = time.perf_counter()
    run_dir = result.run_dir
    prepared = baselines if baselines is not None else prepare_baselines(args)
    if prepared.tuning is not None:
        atomic_write_json(run_dir / TUNED_DEFAULTS_FILE, prepared.tuning.to_json())
    export = args.export_trajectories or str(run_dir / TRAJECTORIES_FILE)
    specs = [PolicySpec(args.algo, str(run_dir), args.seed)] + [PolicySpec(b, b, args.seed) for b in prepared.names]
    reference = "keep" if "keep" in prepared.names else specs[-1].label
    settings = EpisodeSettings(args.env, args.horizon, args.steps_per_action, tuple(range(args.eval_episodes)),
                               advisor=args.resolved_advisor(), devices=tuple(args.device_kwargs().items()),
                               record_trajectories=True, agent_model=args.eval_model, task=args.task,
                               tuned=prepared.tuned)
    _, summaries = run_evaluation(specs, settings, run_dir, reference, args.eval_workers, args.seed, export,
                                  title=f"{args.algo} vs baselines on {args.env}, held-out instances")
    plot_learning_curve(args, run_dir)
    print(f"run report: {write_report(run_dir)}")
    result = replace(result, eval_seconds=time.perf_counter() - start, summaries=summaries)
    atomic_write_json(run_dir / TIMING_FILE, {"train_seconds": result.train_seconds,
                                                "eval_seconds": result.eval_seconds,
                                                "num_timesteps": result.num_timesteps})
    return result


def plot_learning_curve(args: Args, run_dir: Path) -> Path | None:
    """``learning_curve.png`` with the keep and random baselines on the same periodic-evaluation instances."""
    from traingym.agents.plots import plot_learning_curve as plot

    rows = read_learning_curve(run_dir / LEARNING_CURVE_CSV)
    if not rows:
        return None
    settings = periodic_eval_settings(args)
    names = [b for b in ("keep", "random") if b in args.baselines]
    baselines = summarize(evaluate([PolicySpec(b, b, args.seed) for b in names], settings, args.eval_workers),
                          seed=args.seed) if names else []
    lines = {s.policy: s.test_accuracy.mean for s in baselines}
    atomic_write_json(run_dir / LEARNING_CURVE_BASELINES, lines)
    return plot(rows, run_dir / "learning_curve.png", lines)
