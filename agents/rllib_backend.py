"""``train_agent.py --backend rllib``: RLlib PPO (new API stack) on the TrainGym envs, env runners on a Ray cluster.

The env runners build the same registered id with the same ``gym.make`` kwargs as an SB3 run (``Args.env_kwargs``
through :func:`traingym.agents.env_factory.make_env`); the env is never changed for RLlib. Its ``Dict`` observation
goes through RLlib's own ``FlattenObservations`` env-to-module connector and its ``MultiDiscrete`` actions through
the default PPO RLModule's multi-categorical distribution. Checkpoints are RLlib's (``Algorithm.save_to_path`` /
``restore_from_path``); the trained RLModule is evaluated by the shared evaluation path through
:class:`~traingym.agents.rllib_policy.RLlibPolicy` (``predict``), so the run directory holds the same
``config.json``, ``eval.csv/json`` and plots as an SB3 run.

Imported only when ``--backend rllib`` is asked for: the SB3 path never imports Ray.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import ray
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.connectors.env_to_module import FlattenObservations
from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
from traingym.agents.args import Args
from traingym.agents.checkpoints import atomic_write_json
from traingym.agents.env_factory import make_env
from traingym.agents.ray_support import connect
from traingym.agents.rllib_policy import MODEL_DIR
from traingym.agents.train import RunError, TrainResult, default_run_dir, write_config
from traingym.protocol.run_files import CHECKPOINT_DIR

LATEST = "rllib_latest.json"
"""Inside ``checkpoints/``: the step and directory of the last complete periodic checkpoint."""
ENV_RUNNERS_JSON = "ray_env_runners.json"
"""Inside the run directory: the Ray node (and host) of every env runner."""
DEFAULT_N_STEPS = 64
"""Rollout steps per env runner per update when ``--n-steps`` is not given (SB3's PPO default here, too)."""


class RLlibTrainGymEnv(gym.Wrapper):
    """The env class RLlib's env runners construct from ``env_config``: exactly the env ``make_env`` builds for an
    SB3 run (Monitor aside), passed through unchanged. A class, not a ``tune.register_env`` name: that registry
    keys names by the first Ray job of the process, so a second connection (``--resume`` in one process) would
    not find it."""

    def __init__(self, env_config: dict[str, Any]) -> None:
        super().__init__(make_env(env_config["env_id"], env_config["horizon"], dict(env_config["env_kwargs"])))


def flatten_observations(env: Any, spaces: Any, device: Any) -> FlattenObservations:
    """The env-to-module connector: RLlib's own piece that flattens the ``Dict`` observation into one vector."""
    return FlattenObservations()


def rllib_kwargs(args: Args) -> dict[str, Any]:
    """The PPO settings derived from ``args`` (recorded as ``algo_kwargs`` in ``config.json``)."""
    n_steps = args.n_steps or DEFAULT_N_STEPS
    batch = n_steps * args.num_env_runners
    return {"num_env_runners": args.num_env_runners, "rollout_fragment_length": n_steps,
            "train_batch_size_per_learner": batch, "minibatch_size": min(args.batch_size or 64, batch),
            "num_epochs": args.n_epochs, "lr": args.learning_rate or 1e-3, "gamma": args.gamma,
            "lambda_": args.gae_lambda, "entropy_coeff": args.ent_coef,
            "fcnet_hiddens": list(args.net_arch or (64, 64)), "seed": args.seed}


def ppo_config(args: Args) -> PPOConfig:
    """RLlib PPO on the new API stack, one env per env runner (one CPU each), on the TRAIN instances."""
    kw = rllib_kwargs(args)
    env_config = {"env_id": args.env, "horizon": args.horizon,
                  "env_kwargs": {**args.env_kwargs(), "instance_set": "train"}}
    return (PPOConfig()
            .environment(RLlibTrainGymEnv, env_config=env_config)
            .env_runners(num_env_runners=kw["num_env_runners"], num_envs_per_env_runner=1, num_cpus_per_env_runner=1,
                         rollout_fragment_length=kw["rollout_fragment_length"],
                         env_to_module_connector=flatten_observations)
            .training(train_batch_size_per_learner=kw["train_batch_size_per_learner"],
                      minibatch_size=kw["minibatch_size"], num_epochs=kw["num_epochs"], lr=kw["lr"],
                      gamma=kw["gamma"], lambda_=kw["lambda_"], entropy_coeff=kw["entropy_coeff"])
            .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=kw["fcnet_hiddens"]))
            .debugging(seed=kw["seed"]))


def build_algorithm(args: Args) -> Algorithm:
    """Build the PPO algorithm in the connected cluster (starts the env runners)."""
    return ppo_config(args).build_algo()


def env_runner_placement(algo: Algorithm) -> dict[str, Any]:
    """Where the env runners run: per remote env runner, the Ray node id and host name."""
    def where(_: Any) -> dict[str, str]:
        import socket

        return {"node_id": ray.get_runtime_context().get_node_id(), "host": socket.gethostname()}

    return {"env_runners": algo.env_runner_group.foreach_env_runner(where, local_env_runner=False)}


def save_directory(algo: Algorithm, path: Path) -> Path:
    """``algo.save_to_path`` into a sibling temporary directory, then swapped in: a crash leaves the old one."""
    tmp, old = path.with_name(path.name + ".tmp"), path.with_name(path.name + ".old")
    for stale in (tmp, old):
        shutil.rmtree(stale, ignore_errors=True)
    algo.save_to_path(str(tmp.resolve()))
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)
    return path


def save_checkpoint(algo: Algorithm, run_dir: Path, step: int) -> Path:
    """A periodic checkpoint ``checkpoints/rllib-step<N>``, then ``rllib_latest.json`` pointing at it."""
    directory = run_dir / CHECKPOINT_DIR
    directory.mkdir(parents=True, exist_ok=True)
    path = save_directory(algo, directory / f"rllib-step{step}")
    previous = latest_checkpoint(run_dir)
    atomic_write_json(directory / LATEST, {"step": step, "path": path.name})
    if previous is not None and previous[1] != path:
        shutil.rmtree(previous[1], ignore_errors=True)
    return path


def latest_checkpoint(run_dir: Path) -> tuple[int, Path] | None:
    """(env steps, directory) of the last complete periodic checkpoint, or None."""
    import json

    latest = run_dir / CHECKPOINT_DIR / LATEST
    if not latest.exists():
        return None
    data = json.loads(latest.read_text())
    return int(data["step"]), run_dir / CHECKPOINT_DIR / data["path"]


def sampled_env_steps(result: dict[str, Any]) -> int:
    """Env steps one ``algo.train()`` iteration sampled (over all env runners)."""
    return int(result["env_runners"]["num_env_steps_sampled"])


def train_rllib(args: Args) -> TrainResult:
    """Train (or ``--resume``) RLlib PPO; saves the final algorithm checkpoint to ``<run-dir>/rllib_model``."""
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(args)
    if not args.resume and (run_dir / "config.json").exists():
        raise RunError(f"{run_dir} already holds a run; use --resume to continue it or another --run-dir")
    resumed = latest_checkpoint(run_dir) if args.resume else None
    if args.resume and resumed is None:
        raise RunError(f"cannot resume: no RLlib checkpoint in {run_dir / CHECKPOINT_DIR} ({LATEST} missing)")
    started = connect(args.ray_address, num_cpus=max(os.cpu_count() or 1, args.num_env_runners))
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        algo = build_algorithm(args)
        try:
            atomic_write_json(run_dir / ENV_RUNNERS_JSON, env_runner_placement(algo))
            steps = 0
            if resumed is not None:
                steps = resumed[0]
                algo.restore_from_path(str(resumed[1].resolve()))
                print(f"resumed from checkpoint at step {steps}")
            write_config(run_dir, args, None if resumed is None else steps, algo_kwargs=rllib_kwargs(args),
                         versions={"ray": ray.__version__})
            start = time.perf_counter()
            steps = _train_loop(algo, args, run_dir, steps)
            seconds = time.perf_counter() - start
            model_path = save_directory(algo, run_dir / MODEL_DIR)
        finally:
            algo.stop()
    finally:
        if started:
            ray.shutdown()
    print(f"trained {steps} env steps in {seconds:.0f} s; RLlib checkpoint saved to {model_path}")
    return TrainResult(run_dir, model_path, steps, None if resumed is None else resumed[0], seconds)


def _train_loop(algo: Algorithm, args: Args, run_dir: Path, steps: int) -> int:
    from rich.progress import Progress

    next_checkpoint = (steps // args.checkpoint_freq + 1) * args.checkpoint_freq if args.checkpoint_freq else None
    with Progress(disable=not args.progress_bar) as progress:
        task = progress.add_task("RLlib PPO env steps", total=args.total_timesteps, completed=steps)
        while steps < args.total_timesteps:
            result = algo.train()
            steps += sampled_env_steps(result)
            progress.update(task, completed=min(steps, args.total_timesteps))
            if args.verbose:
                print(f"iteration {result['training_iteration']}: {steps} env steps, episode return mean "
                      f"{result['env_runners'].get('episode_return_mean', float('nan')):.3f}")
            if next_checkpoint is not None and steps >= next_checkpoint:
                save_checkpoint(algo, run_dir, steps)
                next_checkpoint = (steps // args.checkpoint_freq + 1) * args.checkpoint_freq
    return steps
