"""``python -m traingym.experiments.ablate --backend ray``: every run of the ablation grid as one Ray Tune trial.

Each (cell, seed) trains in its own trial with the CPUs it asks for (``--cpus-per-trial``) wherever the Ray
cluster has room, through the same :func:`traingym.experiments.ablate_grid.train_cell` as the local backend; the
driver then evaluates all runs and writes the same table and plot. The Tune experiment lives in
``<out-dir>/tune/ablate``: started again after a crash of the driver, the same command restores it
(``Tuner.restore``), so finished trials are not run again and an interrupted one restarts from its run's last
checkpoint.

``<out-dir>`` must be a path every node sees (one machine, or shared storage such as NFS). Imported only with
``--backend ray``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import ray
from ray import tune
from traingym.agents.ray_support import connect
from traingym.experiments.ablate_grid import AblateArgs, cell_run_dir, grid_runs, train_cell

EXPERIMENT = "ablate"
"""The Tune experiment's name under ``<out-dir>/tune``."""
TRIAL_LOG = "tune_trials.jsonl"
"""``<out-dir>/tune_trials.jsonl``: one line per trial start (run, node, whether its model already existed)."""


def cell_trial(config: dict[str, Any]) -> None:
    """The Tune trainable: train one (cell, seed) run and report its run directory."""
    args = AblateArgs(**{k: tuple(v) if isinstance(v, list) else v for k, v in config["args"].items()})
    keys, advisor, seed = tuple(config["run"]["keys"]), config["run"]["advisor"], int(config["run"]["seed"])
    run_dir = cell_run_dir(args, keys, advisor, seed)
    record = {"run": run_dir.name, "node": ray.get_runtime_context().get_node_id(), "pid": os.getpid(),
              "model_existed": (run_dir / "model.zip").exists()}
    with open(Path(args.out_dir) / TRIAL_LOG, "a") as log:
        log.write(json.dumps(record) + "\n")
    train_cell(args, keys, advisor, seed)
    tune.report({"run_dir": str(run_dir)})


def trial_cpus(args: AblateArgs) -> int:
    """CPUs one trial reserves."""
    return args.cpus_per_trial or max(1, args.n_envs)


def train_grid_on_ray(args: AblateArgs) -> list[Path]:
    """Run (or resume) the grid as Tune trials; returns the run directories in table order.

    Raises:
        RuntimeError: a trial failed (its error is in ``<out-dir>/tune/ablate``).
    """
    out = Path(args.out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    args = replace(args, out_dir=str(out))  # trials run in other working directories, maybe on other nodes
    # A grid has few, long trials: save the experiment state at every event, so a driver crash loses no result.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "0")
    started = connect(args.ray_address)
    try:
        trainable = tune.with_resources(cell_trial, {"cpu": trial_cpus(args)})
        path = out / "tune" / EXPERIMENT
        if tune.Tuner.can_restore(str(path)):
            print(f"resuming the Tune experiment in {path}")
            tuner = tune.Tuner.restore(str(path), trainable=trainable, resume_unfinished=True, restart_errored=True)
        else:
            runs = [{"keys": list(keys), "advisor": advisor, "seed": seed} for keys, advisor, seed in grid_runs(args)]
            config = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(args).items()}
            tuner = tune.Tuner(
                trainable, param_space={"args": config, "run": tune.grid_search(runs)},
                tune_config=tune.TuneConfig(max_concurrent_trials=args.max_concurrent_trials or None),
                run_config=tune.RunConfig(name=EXPERIMENT, storage_path=str(out / "tune"), verbose=1))
        results = tuner.fit()
        if results.errors:
            raise RuntimeError(f"{len(results.errors)} Tune trial(s) failed (details in {path}): {results.errors[0]}")
    finally:
        if started:
            ray.shutdown()
    return [cell_run_dir(args, keys, advisor, seed) for keys, advisor, seed in grid_runs(args)]
