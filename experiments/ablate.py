"""Ablations: {observation-key subsets} x {advisors} x {training seeds} at one budget, evaluated on held-out data.

CLI::

    python -m traingym.experiments.ablate --preset smoke --out-dir /tmp/ablate    # seconds (tests)
    python -m traingym.experiments.ablate --preset paper                          # see docs/agents.md for its time

Every cell trains one agent per seed (runs under ``<out-dir>/runs/``; a run whose ``model.zip`` exists is reused,
so an interrupted ablation continues where it stopped), then all agents and the keep baseline run the same
held-out instances. Per cell the table pools the seeds (per instance, the mean over seeds) and gives the mean
final test accuracy with a 95% bootstrap CI over instances and the paired difference to keep.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from traingym.agents.episodes import EpisodeResult, EpisodeSettings
from traingym.agents.evaluate import evaluate, summarize, write_outputs
from traingym.agents.policies import PolicySpec
from traingym.agents.stats import bootstrap_mean, paired_difference
from traingym.experiments.ablate_grid import (
    NO_ADVISOR,
    PRESETS,
    AblateArgs,
    cell_name,
    cell_run_dir,
    grid_runs,
    train_cell,
)

__all__ = ["NO_ADVISOR", "PRESETS", "AblateArgs", "aggregate", "cell_name", "cell_run_dir", "grid_runs", "main",
           "run_ablation", "train_cell"]


def aggregate(args: AblateArgs, results: dict[str, list[EpisodeResult]], seed: int = 0) -> list[dict[str, Any]]:
    """One row per cell: seeds pooled per instance, bootstrap CI over instances, paired difference to keep."""
    keep = np.array([e.test_accuracy for e in results["keep"]])
    rows = []
    for keys, advisor in args.cells():
        name = cell_name(keys, advisor)
        per_seed = np.array([[e.test_accuracy for e in results[f"{name}-seed{s}"]] for s in args.seeds])
        pooled = per_seed.mean(axis=0)
        mean = bootstrap_mean(pooled, seed)
        diff = paired_difference(pooled, keep, seed)
        diverged = np.mean([[e.diverged for e in results[f"{name}-seed{s}"]] for s in args.seeds])
        rows.append({"cell": name, "obs_keys": "+".join(keys), "advisor": advisor, "seeds": len(args.seeds),
                     "episodes": int(pooled.size), "test_accuracy": mean.mean, "ci_low": mean.low,
                     "ci_high": mean.high, "seed_means": [float(m) for m in per_seed.mean(axis=1)],
                     "diff_vs_keep": diff.mean, "diff_ci_low": diff.low, "diff_ci_high": diff.high,
                     "divergence_rate": float(diverged)})
    return rows


def run_ablation(args: AblateArgs) -> list[dict[str, Any]]:
    """Train every cell and seed (here, or as Ray Tune trials), evaluate them with keep on the held-out instances,
    write the table and plot."""
    out = Path(args.out_dir)
    if args.backend == "ray":
        from traingym.experiments.ray_tune import train_grid_on_ray

        run_dirs = train_grid_on_ray(args)
    else:
        run_dirs = [train_cell(args, keys, advisor, seed) for keys, advisor, seed in grid_runs(args)]
    specs = [PolicySpec("keep", "keep")]
    specs += [PolicySpec(run_dir.name, str(run_dir), seed) for run_dir, (_, _, seed) in zip(run_dirs, grid_runs(args))]
    settings = EpisodeSettings(args.env, args.horizon, args.steps_per_action, tuple(range(args.eval_episodes)),
                               task=args.task)
    results = evaluate(specs, settings, args.workers)
    write_outputs(out / "eval", settings, results, summarize(results, "keep"), "keep", plot=False)
    rows = aggregate(args, results)
    _write_table(out, args, rows, float(np.mean([e.test_accuracy for e in results["keep"]])))
    _print_rows(rows)
    return rows


def _write_table(out: Path, args: AblateArgs, rows: list[dict[str, Any]], keep_mean: float) -> None:
    from traingym.agents.plots import plot_ablation

    out.mkdir(parents=True, exist_ok=True)
    with open(out / "ablation.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[k for k in rows[0] if k != "seed_means"])
        writer.writeheader()
        writer.writerows([{k: v for k, v in r.items() if k != "seed_means"} for r in rows])
    config = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(args).items()}
    (out / "ablation.json").write_text(json.dumps({"args": config, "rows": rows}, indent=1) + "\n")
    plot_ablation(rows, out / "ablation.png", ("keep", keep_mean))


def _print_rows(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Ablation (held-out final test accuracy, seeds pooled per instance)")
    for column in ("cell", "seeds", "n", "test acc [95% CI]", "Δ vs keep [95% CI]", "diverged"):
        table.add_column(column, justify="left" if column == "cell" else "right")
    for r in rows:
        table.add_row(r["cell"], str(r["seeds"]), str(r["episodes"]),
                      f"{r['test_accuracy']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]",
                      f"{r['diff_vs_keep']:+.3f} [{r['diff_ci_low']:+.3f}, {r['diff_ci_high']:+.3f}]",
                      f"{r['divergence_rate']:.0%}")
    Console(width=140).print(table)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m traingym.experiments.ablate``."""
    from traingym.protocol.cli import parse_cli, usage_error

    prog = "python -m traingym.experiments.ablate"
    args = parse_cli(AblateArgs, argv, prog)  # first pass: which preset; then the flags again over its values
    if PRESETS[args.preset]:
        args = parse_cli(AblateArgs, argv, prog, default=AblateArgs(preset=args.preset, **PRESETS[args.preset]))
    from traingym.agents.ray_support import RayAddressError

    try:
        run_ablation(args)
    except RayAddressError as error:
        usage_error(prog, str(error))
    print(f"results in {args.out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
