"""The sweep that tunes fixed hyperparameters on TRAIN instances, and tuning a user's family once (cached).

The sweep runs the keep policy with each grid point's (lr, weight_decay, aug_level) overriding the instance's
initial values on the first ``n_instances`` TRAIN instances (never the held-out ones) and ranks the grid points by
mean final validation accuracy. :func:`tune_family` runs a short one for a family that has no tuned defaults in
the package table (``TrainGym/Custom-v0`` with your ``task``) at the run's K and T, prints what it does, and keeps
the result in ``$TRAINGYM_CACHE_DIR/tuned_defaults/`` so the next run of the same family and budget reuses it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing
import re
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from traingym.agents.baselines import GoodDefaultsPolicy
from traingym.agents.episodes import EpisodeSettings, run_policy_object
from traingym.agents.tuned_defaults import HPARAMS, TUNED_BASELINES, TunedValues, family_spec, in_package_table
from traingym.protocol.cache_dir import cache_root, optional_caches_enabled

GRIDS: dict[str, dict[str, tuple[Any, ...]]] = {
    "sgd": {"lr": (0.01, 0.03, 0.1, 0.3), "weight_decay": (1e-5, 1e-4, 1e-3), "aug_level": (0, 1)},
    "adam": {"lr": (3e-4, 1e-3, 3e-3), "weight_decay": (1e-2,), "aug_level": (0, 2)},
}
"""The sweep's grid per optimizer (SGD with momentum 0.9 for the MLP and CNN families, AdamW for the BERTs). The
AdamW grid is smaller because a BERT episode costs ~25x an MLP one: weight decay stays at AdamW's usual 1e-2, and
augmentation level 2 is the one that masks the over-relevant (shortcut) tokens with 50-100% probability."""
FAMILY_SWEEP_INSTANCES = 4
"""TRAIN instances per grid point when a user's family is tuned at run time (a short sweep)."""


def env_optimizer(env_id: str) -> str:
    """The optimizer ``env_id`` trains its target network with (its registration kwargs, else the config's)."""
    from traingym.envs.config import TrainingEnvConfig

    return str(gym.spec(env_id).kwargs.get("optimizer", TrainingEnvConfig.optimizer))


def _score(hparams: dict[str, Any], settings: EpisodeSettings) -> dict[str, Any]:
    episodes = run_policy_object(GoodDefaultsPolicy(**hparams), "good_defaults", settings)
    return {**hparams, "val_accuracy": float(np.mean([e.val_accuracy[-1] for e in episodes])),
            "test_accuracy": float(np.mean([e.test_accuracy for e in episodes])),
            "divergence_rate": float(np.mean([e.diverged for e in episodes]))}


def sweep(env_id: str, n_instances: int = 24, horizon: int = 20, steps_per_action: int = 50, workers: int = 2,
          grid: dict[str, Sequence[Any]] | None = None, task: str | None = None) -> list[dict[str, Any]]:
    """Score every grid point on the first ``n_instances`` TRAIN instances; best (by validation accuracy) first."""
    grid = grid or GRIDS[env_optimizer(env_id)]
    points = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    settings = EpisodeSettings(env_id, horizon, steps_per_action, tuple(range(n_instances)), instance_set="train",
                               task=task)
    if workers > 1:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver")) as pool:
            rows = list(pool.map(_score, points, [settings] * len(points)))
    else:
        rows = [_score(p, settings) for p in points]
    return sorted(rows, key=lambda r: -r["val_accuracy"])


def sweep_table(rows: list[dict[str, Any]]) -> str:
    """The sweep's rows (best first) as a Markdown table."""
    lines = ["| rank | lr | weight decay | aug level | val acc | test acc | diverged |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {i} | {r['lr']:g} | {r['weight_decay']:g} | {r['aug_level']} | {r['val_accuracy']:.3f} | "
              f"{r['test_accuracy']:.3f} | {r['divergence_rate']:.0%} |" for i, r in enumerate(rows, 1)]
    return "\n".join(lines)


@dataclass(frozen=True)
class FamilyTuning:
    """The tuned defaults of one family at one budget, and how they were found."""

    family: str
    values: TunedValues
    settings: dict[str, Any]
    rows: list[dict[str, Any]]
    cache_path: Path | None
    cached: bool
    """True when read from the cache, False when swept now."""

    def to_json(self) -> dict[str, Any]:
        return {"family": self.family, **dict(self.values), "sweep": self.settings, "rows": self.rows}

    def describe(self) -> str:
        v = dict(self.values)
        best = self.rows[0]["val_accuracy"] if self.rows else float("nan")
        return (f"lr={v['lr']:g}, weight_decay={v['weight_decay']:g}, aug_level={v['aug_level']} (best of "
                f"{len(self.rows)} grid points, mean final val acc {best:.3f} on {self.settings['n_instances']} "
                f"TRAIN instances, K={self.settings['steps_per_action']}, T={self.settings['horizon']})")


def family_cache_path(family: str, settings: dict[str, Any]) -> Path:
    """``$TRAINGYM_CACHE_DIR/tuned_defaults/<family>-<hash of the settings>.json``."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", family)[:80]
    digest = hashlib.sha256(json.dumps({"family": family, **settings}, sort_keys=True).encode()).hexdigest()[:12]
    return cache_root() / "tuned_defaults" / f"{slug}-{digest}.json"


def tune_family(env_id: str, task: str | None, horizon: int, steps_per_action: int, workers: int = 1,
                n_instances: int = FAMILY_SWEEP_INSTANCES, echo: bool = True) -> FamilyTuning:
    """The tuned defaults of the family ``env_id`` trains with ``task``: from the cache, else a short sweep on its
    TRAIN instances (then cached). Prints one line saying which, and the chosen values.

    Raises:
        whatever the family raises while training (the caller decides whether to skip the baselines).
    """
    family = family_spec(env_id, task)
    grid = GRIDS[env_optimizer(env_id)]
    settings = {"env": env_id, "n_instances": n_instances, "instance_set": "train", "horizon": horizon,
                "steps_per_action": steps_per_action, "grid": grid}
    path = family_cache_path(family, settings) if optional_caches_enabled() else None
    if path is not None and path.exists():
        data = json.loads(path.read_text())
        tuning = FamilyTuning(family, tuple((k, data[k]) for k in HPARAMS), settings, data["rows"], path, True)
        if echo:
            print(f"tuned defaults of {family} (cached in {path}): {tuning.describe()}", flush=True)
        return tuning
    points = int(np.prod([len(v) for v in grid.values()]))
    if echo:
        print(f"no tuned defaults for {family} in the package: sweeping {points} grid points x {n_instances} TRAIN "
              f"instances (K={steps_per_action}, T={horizon}) for the steer / good_defaults baselines, once"
              + (f"; cached in {path.parent}" if path is not None else " ($TRAINGYM_CACHE_DIR=off: not cached)"),
              flush=True)
    rows = sweep(env_id, n_instances, horizon, steps_per_action, workers, grid, task)
    tuning = FamilyTuning(family, tuple((k, rows[0][k]) for k in HPARAMS), settings, rows, path, False)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(tuning.to_json(), indent=1) + "\n")
        tmp.replace(path)
    if echo:
        print(f"tuned defaults of {family}: {tuning.describe()}", flush=True)
    return tuning


@dataclass(frozen=True)
class EvaluationBaselines:
    """The baselines an evaluation runs and the tuned values the steer / good_defaults ones need (None: the
    package table has the family)."""

    names: tuple[str, ...]
    tuning: FamilyTuning | None = None

    @property
    def tuned(self) -> TunedValues | None:
        return None if self.tuning is None else self.tuning.values


def prepare_baselines(names: Sequence[str], env_id: str, task: str | None, horizon: int, steps_per_action: int,
                      workers: int = 1, tune: bool = True) -> EvaluationBaselines:
    """Make every baseline in ``names`` runnable on the family ``env_id`` trains with ``task``: the ones needing
    tuned defaults get them (package table, cache, or a short sweep now, with ``tune``) or are left out with one
    printed line that says why."""
    needed = [n for n in names if n in TUNED_BASELINES]
    if not needed or in_package_table(env_id, task):
        return EvaluationBaselines(tuple(names))
    family = family_spec(env_id, task)
    others = tuple(n for n in names if n not in needed)
    if not tune:
        print(f"leaving out the {' and '.join(needed)} baseline(s): {family} has no tuned defaults in the package "
              "and --tune-baselines is off", flush=True)
        return EvaluationBaselines(others)
    try:
        tuning = tune_family(env_id, task, horizon, steps_per_action, workers)
    except Exception as error:  # the user's family code failed in the sweep: report it, keep the other baselines
        print(f"leaving out the {' and '.join(needed)} baseline(s): tuning their defaults on {family} failed "
              f"({type(error).__name__}: {error})", flush=True)
        return EvaluationBaselines(others)
    return EvaluationBaselines(tuple(names), tuning)
