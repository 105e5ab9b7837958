"""The "good defaults" reference: instances re-run with tuned fixed hyperparameters, and the sweep that tunes them.

The sweep runs the keep policy with each grid point's (lr, weight_decay, aug_level) overriding the instance's
initial values on the first ``n_instances`` TRAIN instances (never the held-out ones) and picks the grid point with
the best mean final validation accuracy::

    python -m traingym.experiments.good_defaults --env TrainGym/DigitsMLP-v0 --n-instances 24

It writes its full table to ``docs/results/good_defaults_<family>.md`` and stores the chosen values, with the
sweep's settings and score, in the package's ``tuned_defaults.json``, which ``steer`` and ``good_defaults`` read,
so evaluations never re-run the sweep.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import gymnasium as gym
from traingym.agents.tuned_defaults import TUNED_DEFAULTS_PATH, store_tuned
from traingym.agents.tuning import GRIDS, env_optimizer, sweep, sweep_table
from traingym.envs.tasks.base import TRAIN_SET_SIZE
from traingym.protocol.checks import check_range


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
        check_range("--n-instances", self.n_instances, 1, TRAIN_SET_SIZE, integer=True)
        check_range("--workers", self.workers, 1, 64, integer=True)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m traingym.experiments.good_defaults``."""
    from traingym.experiments.results import family_page_name, write_result
    from traingym.protocol.cli import parse_cli

    args = parse_cli(SweepArgs, argv, "python -m traingym.experiments.good_defaults")
    grid = GRIDS[env_optimizer(args.env)]
    rows = sweep(args.env, args.n_instances, args.horizon, args.steps_per_action, args.workers, grid)
    for row in rows:
        print(json.dumps(row))
    settings = {"n_instances": args.n_instances, "instance_set": "train", "horizon": args.horizon,
                "steps_per_action": args.steps_per_action}
    print(f"best: {rows[0]}")
    if args.write:
        store_tuned(args.env, rows[0], settings)
        body = (f"Env `{args.env}` ({env_optimizer(args.env)}), TRAIN instances 0..{args.n_instances - 1}, "
                f"K={args.steps_per_action}, T={args.horizon}; every grid point overrides the instance's initial "
                f"lr, weight decay and augmentation and never moves (the keep policy). Ranked by mean final "
                f"validation accuracy; the first row is stored in `agents/tuned_defaults.json` (the targets of "
                f"`steer` and the values of `good_defaults`).\n\nGrid: `{json.dumps(grid)}`\n\n{sweep_table(rows)}")
        path = write_result(family_page_name("good_defaults", args.env),
                            f"Tuned defaults for {args.env} (sweep on TRAIN instances)", body,
                            data={"env": args.env, **settings, "grid": grid, "rows": rows})
        print(f"stored in {TUNED_DEFAULTS_PATH}; table in {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
