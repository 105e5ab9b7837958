"""The ablation grid: its arguments, its cells (observation-key subsets x advisors x seeds) and training one cell.

Shared by the local driver (:mod:`traingym.experiments.ablate`) and the Ray Tune backend
(:mod:`traingym.experiments.ray_tune`), which imports this module, never the driver.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from traingym.agents.args import Args
from traingym.envs.config import TrainingEnvConfig
from traingym.envs.tasks.base import TEST_SET_SIZE
from traingym.protocol.checks import check_range
from traingym.protocol.cli import IntTuple, StrTuple

NO_ADVISOR = "none"

PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {"obs_key_sets": ("training_stats", "training_stats+neurons"), "advisors": (NO_ADVISOR,),
              "seeds": (0,), "total_timesteps": 32, "horizon": 3, "steps_per_action": 5, "eval_episodes": 3,
              "n_envs": 1, "n_steps": 8, "workers": 1},
    "paper": {},
}
"""Overrides per preset (``paper`` is the dataclass defaults)."""


@dataclass(frozen=True)
class AblateArgs:
    """Train and evaluate a grid of observation-key subsets x advisors x seeds on held-out instances."""

    preset: Literal["paper", "smoke"] = "paper"
    """paper: the documented grid and budget; smoke: two tiny cells (seconds, for tests). Flags override it."""
    env: str = "TrainGym/DigitsMLP-v0"
    """Gymnasium id of the TrainGym environment."""
    task: str | None = None
    """Your own task family for --env TrainGym/Custom-v0 ('package.module:ClassName', as train_agent.py --task)."""
    algo: Literal["ppo", "a2c", "dqn", "recurrent_ppo"] = "ppo"
    """RL algorithm of every cell."""
    obs_key_sets: StrTuple = ("training_stats", "training_stats+neurons",
                                     "training_stats+neurons+diagnosis", "neurons+diagnosis")
    """Observation-key subsets, keys joined by '+'."""
    advisors: StrTuple = ("heuristic",)
    """Advisors for the subsets with the diagnosis key ('none' is the only value used for subsets without it)."""
    seeds: IntTuple = (0, 1, 2)
    """Training seeds per cell."""
    total_timesteps: int = Args.total_timesteps
    """Env steps per training run (the main job's budget)."""
    horizon: int = TrainingEnvConfig.horizon
    """Env steps per episode (T)."""
    steps_per_action: int = TrainingEnvConfig.steps_per_action
    """Optimizer steps per env step (K)."""
    n_envs: int = 0
    """Training envs per run; 0: the main job's (16 batched sub-envs for MLP families, else one per core)."""
    n_steps: int | None = None
    """PPO rollout steps per env; None: the algorithm's default."""
    eval_episodes: int = 64
    """Held-out instances 0..n-1 every agent and the keep baseline are evaluated on."""
    workers: int = 0
    """Evaluation processes; 0: min(2, os.cpu_count())."""
    out_dir: str = "runs/ablate"
    """Output directory (runs/, eval/, ablation.csv, ablation.json, ablation.png)."""
    backend: Literal["local", "ray"] = "local"
    """Where the cells train: local (one after another in this process) or ray (each cell x seed one Ray Tune
    trial on a Ray cluster, resumable after a crash of this driver; needs the [ray] extra; see docs/ray.md)."""
    ray_address: str = "local"
    """Ray cluster of --backend ray: local (start one in this process), auto, host:port or ray://host:port."""
    cpus_per_trial: int = 0
    """CPUs Ray reserves per trial (--backend ray); 0: the trial's training envs (--n-envs, at least 1)."""
    max_concurrent_trials: int = 0
    """Trials running at once (--backend ray); 0: as many as the cluster's CPUs hold."""

    def __post_init__(self) -> None:
        import os

        import gymnasium as gym
        import traingym.envs  # noqa: F401
        from traingym.envs.config import OBS_KEYS

        if self.env not in gym.registry or not self.env.startswith("TrainGym/"):
            raise ValueError(f"--env must be a registered TrainGym id, got {self.env!r}")
        from traingym.envs.custom import check_task_option

        check_task_option(self.env, self.task)
        for subset in self.obs_key_sets:
            keys = subset.split("+")
            if not keys or any(k not in OBS_KEYS for k in keys) or len(set(keys)) != len(keys):
                raise ValueError(f"--obs-key-sets entries must be '+'-joined distinct keys of {OBS_KEYS}, "
                                 f"got {subset!r}")
        if not self.seeds:
            raise ValueError("--seeds needs at least one seed")
        check_range("--eval-episodes", self.eval_episodes, 1, TEST_SET_SIZE, integer=True)
        if self.total_timesteps < 1:
            raise ValueError(f"--total-timesteps must be >= 1, got {self.total_timesteps}")
        for name in ("cpus_per_trial", "max_concurrent_trials"):
            check_range(f"--{name.replace('_', '-')}", getattr(self, name), 0, 1024, integer=True)
        if self.backend == "ray":
            from traingym.agents.ray_support import check_ray_address, require_ray

            check_ray_address(self.ray_address)
            require_ray("--backend ray", "tune")
        if self.workers == 0:
            object.__setattr__(self, "workers", min(2, os.cpu_count() or 1))

    def cells(self) -> list[tuple[tuple[str, ...], str]]:
        """(observation keys, advisor) pairs; the advisor only varies where the diagnosis key is present."""
        cells: list[tuple[tuple[str, ...], str]] = []
        for subset in self.obs_key_sets:
            keys = tuple(subset.split("+"))
            for advisor in (self.advisors if "diagnosis" in keys else (NO_ADVISOR,)):
                if (keys, advisor) not in cells:
                    cells.append((keys, advisor))
        return cells


def cell_name(keys: tuple[str, ...], advisor: str) -> str:
    """``training_stats+neurons`` or ``training_stats+diagnosis@heuristic``."""
    return "+".join(keys) + ("" if advisor == NO_ADVISOR else f"@{advisor}")


def grid_runs(args: AblateArgs) -> list[tuple[tuple[str, ...], str, int]]:
    """(observation keys, advisor, seed) of every training run, in table order."""
    return [(keys, advisor, seed) for keys, advisor in args.cells() for seed in args.seeds]


def cell_run_dir(args: AblateArgs, keys: tuple[str, ...], advisor: str, seed: int) -> Path:
    """``<out-dir>/runs/<cell>-seed<seed>``."""
    return Path(args.out_dir) / "runs" / f"{cell_name(keys, advisor)}-seed{seed}"


def train_cell(args: AblateArgs, keys: tuple[str, ...], advisor: str, seed: int) -> Path:
    """Train one agent (skipped when its run already has a final model); returns its run directory."""
    from traingym.agents.checkpoints import latest_checkpoint
    from traingym.agents.train import train

    run_dir = cell_run_dir(args, keys, advisor, seed)
    if (run_dir / "model.zip").exists():
        print(f"reusing {run_dir}")
        return run_dir
    resume = latest_checkpoint(run_dir / "checkpoints") is not None
    if not resume and run_dir.exists():
        shutil.rmtree(run_dir)  # an interrupted run of this ablation without a checkpoint: start it again
    train(Args(env=args.env, task=args.task, algo=args.algo, obs_keys=keys,
               advisor=None if advisor == NO_ADVISOR else advisor, total_timesteps=args.total_timesteps,
               n_envs=args.n_envs, seed=seed, run_dir=str(run_dir),
               resume=resume, horizon=args.horizon, steps_per_action=args.steps_per_action, n_steps=args.n_steps,
               eval_freq=0, checkpoint_freq=max(1, args.total_timesteps // 4), baselines=(), progress_bar=False,
               eval_workers=1))
    return run_dir
