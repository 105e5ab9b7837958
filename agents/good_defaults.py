"""The "good defaults" reference: instances re-run with tuned fixed hyperparameters, and the sweep that tunes them.

The sweep runs the keep policy with each grid point's (lr, weight_decay, aug_level) overriding the instance's
initial values on the first ``n_instances`` TRAIN instances (never the held-out ones) and picks the grid point with
the best mean final validation accuracy::

    python -m traingym.agents.good_defaults --env TrainGym/DigitsMLP-v0 --n-instances 24

It writes its full table to ``docs/results/good_defaults_<family>.md`` and stores the chosen values, with the
sweep's settings and score, in the package's ``tuned_defaults.json``, which ``steer`` and ``good_defaults`` read,
so evaluations never re-run the sweep.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from traingym.agents.baselines import GoodDefaultsPolicy
from traingym.agents.episodes import EpisodeSettings, run_policy_object
from traingym.envs.tasks.base import TRAIN_SET_SIZE

TUNED_DEFAULTS_PATH = Path(__file__).resolve().parent / "tuned_defaults.json"
"""Per env id: tuned ``lr``, ``weight_decay``, ``aug_level`` and how they were found (``sweep``); written by the
sweep's ``--write``."""

GRIDS: dict[str, dict[str, tuple[Any, ...]]] = {
    "sgd": {"lr": (0.01, 0.03, 0.1, 0.3), "weight_decay": (1e-5, 1e-4, 1e-3), "aug_level": (0, 1)},
    "adam": {"lr": (3e-4, 1e-3, 3e-3), "weight_decay": (1e-2,), "aug_level": (0, 2)},
}
"""The sweep's grid per optimizer (SGD with momentum 0.9 for the MLP and CNN families, AdamW for the BERTs). The
AdamW grid is smaller because a BERT episode costs ~25x an MLP one: weight decay stays at AdamW's usual 1e-2, and
augmentation level 2 is the one that masks the over-relevant (shortcut) tokens with 50-100% probability."""


@cache
def _tuned_table() -> dict[str, dict[str, Any]]:
    return json.loads(TUNED_DEFAULTS_PATH.read_text())


def env_optimizer(env_id: str) -> str:
    """The optimizer ``env_id`` trains its target network with (its registration kwargs, else the config's)."""
    from traingym.envs.config import TrainingEnvConfig

    return str(gym.spec(env_id).kwargs.get("optimizer", TrainingEnvConfig.optimizer))


def tuned_defaults(env_id: str) -> dict[str, Any]:
    """The tuned hyperparameters of ``env_id`` (``lr``, ``weight_decay``, ``aug_level``)."""
    table = _tuned_table()
    if env_id not in table:
        raise ValueError(f"no tuned defaults for {env_id!r} (have {sorted(table)}); run "
                         f"`python -m traingym.agents.good_defaults --env {env_id} --write`")
    return {k: table[env_id][k] for k in ("lr", "weight_decay", "aug_level")}


def _score(hparams: dict[str, Any], settings: EpisodeSettings) -> dict[str, Any]:
    episodes = run_policy_object(GoodDefaultsPolicy(**hparams), "good_defaults", settings)
    return {**hparams, "val_accuracy": float(np.mean([e.val_accuracy[-1] for e in episodes])),
            "test_accuracy": float(np.mean([e.test_accuracy for e in episodes])),
            "divergence_rate": float(np.mean([e.diverged for e in episodes]))}


def sweep(env_id: str, n_instances: int = 24, horizon: int = 20, steps_per_action: int = 50, workers: int = 2,
          grid: dict[str, Sequence[Any]] | None = None) -> list[dict[str, Any]]:
    """Score every grid point on the first ``n_instances`` TRAIN instances; best (by validation accuracy) first."""
    grid = grid or GRIDS[env_optimizer(env_id)]
    points = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    settings = EpisodeSettings(env_id, horizon, steps_per_action, tuple(range(n_instances)), instance_set="train")
    if workers > 1:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver")) as pool:
            rows = list(pool.map(_score, points, [settings] * len(points)))
    else:
        rows = [_score(p, settings) for p in points]
    return sorted(rows, key=lambda r: -r["val_accuracy"])


@dataclass(frozen=True)
class SweepArgs:
    """Tune fixed hyperparameters (lr, weight decay, augmentation) on TRAIN instances for the good-defaults
    reference and the steer controller."""

    env: str = "TrainGym/DigitsMLP-v0"
    """Gymnasium id of the TrainGym environment."""
    n_instances: int = 24
    """TRAIN instances per grid point."""
    horizon: int = 20
    """Env steps per episode (T)."""
    steps_per_action: int = 50
    """Optimizer steps per env step (K)."""
    workers: int = 2
    """Processes."""
    write: bool = False
    """Store the best grid point in the package's tuned_defaults.json and the table in docs/results/."""

    def __post_init__(self) -> None:
        import traingym.envs  # noqa: F401  (registers the ids)

        if self.env not in gym.registry or not self.env.startswith("TrainGym/"):
            raise ValueError(f"--env must be a registered TrainGym id, got {self.env!r}")
        if not 1 <= self.n_instances <= TRAIN_SET_SIZE:
            raise ValueError(f"--n-instances must be in [1, {TRAIN_SET_SIZE}], got {self.n_instances}")
        if not 1 <= self.workers <= 64:
            raise ValueError(f"--workers must be in [1, 64], got {self.workers}")


def sweep_table(rows: list[dict[str, Any]]) -> str:
    """The sweep's rows (best first) as a Markdown table."""
    lines = ["| rank | lr | weight decay | aug level | val acc | test acc | diverged |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {i} | {r['lr']:g} | {r['weight_decay']:g} | {r['aug_level']} | {r['val_accuracy']:.3f} | "
              f"{r['test_accuracy']:.3f} | {r['divergence_rate']:.0%} |" for i, r in enumerate(rows, 1)]
    return "\n".join(lines)


def store_tuned(env_id: str, best: dict[str, Any], settings: dict[str, Any]) -> None:
    """Put ``best`` (a sweep row) into ``tuned_defaults.json`` under ``env_id``."""
    table = json.loads(TUNED_DEFAULTS_PATH.read_text()) if TUNED_DEFAULTS_PATH.exists() else {}
    table[env_id] = {**table.get(env_id, {}),  # other entries (the diagnosis-aware controller's) are kept
                     "lr": best["lr"], "weight_decay": best["weight_decay"], "aug_level": best["aug_level"],
                     "sweep": {**settings, "val_accuracy": round(best["val_accuracy"], 4)}}
    TUNED_DEFAULTS_PATH.write_text(json.dumps(dict(sorted(table.items())), indent=1) + "\n")
    _tuned_table.cache_clear()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m traingym.agents.good_defaults``."""
    from traingym.agents.cli_args import parse_cli
    from traingym.agents.results import write_result

    args = parse_cli(SweepArgs, argv, "python -m traingym.agents.good_defaults")
    grid = GRIDS[env_optimizer(args.env)]
    rows = sweep(args.env, args.n_instances, args.horizon, args.steps_per_action, args.workers, grid)
    for row in rows:
        print(json.dumps(row))
    settings = {"n_instances": args.n_instances, "instance_set": "train", "horizon": args.horizon,
                "steps_per_action": args.steps_per_action}
    print(f"best: {rows[0]}")
    if args.write:
        store_tuned(args.env, rows[0], settings)
        family = gym.spec(args.env).kwargs["task"]
        body = (f"Env `{args.env}` ({env_optimizer(args.env)}), TRAIN instances 0..{args.n_instances - 1}, "
                f"K={args.steps_per_action}, T={args.horizon}; every grid point overrides the instance's initial "
                f"lr, weight decay and augmentation and never moves (the keep policy). Ranked by mean final "
                f"validation accuracy; the first row is stored in `agents/tuned_defaults.json` (the targets of "
                f"`steer` and the values of `good_defaults`).\n\nGrid: `{json.dumps(grid)}`\n\n{sweep_table(rows)}")
        path = write_result(f"good_defaults_{family}", f"Tuned defaults for {args.env} (sweep on TRAIN instances)",
                            body, data={"env": args.env, **settings, "grid": grid, "rows": rows})
        print(f"stored in {TUNED_DEFAULTS_PATH}; table in {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
