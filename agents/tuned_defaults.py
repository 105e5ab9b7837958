"""Tuned fixed hyperparameters (lr, weight decay, augmentation) per task family: the targets of ``steer`` and the
values of ``good_defaults``.

Two homes, one per kind of family:

- a registered id (``TrainGym/DigitsMLP-v0``, ...): the package's ``tuned_defaults.json``, written by the
  documented sweep (``python -m traingym.experiments.good_defaults --env ID --write``);
- a user's family (``TrainGym/Custom-v0`` with ``task=...``): a short sweep on its TRAIN instances, run once by
  :func:`traingym.agents.tuning.tune_family` and cached on disk (see there), then carried to the evaluation as
  explicit values (:class:`TunedValues`), never looked up by name in a worker process.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

TUNED_DEFAULTS_PATH = Path(__file__).resolve().parent / "tuned_defaults.json"
"""Per env id: tuned ``lr``, ``weight_decay``, ``aug_level`` and how they were found (``sweep``)."""
HPARAMS = ("lr", "weight_decay", "aug_level")
TUNED_BASELINES = ("steer", "good_defaults")
"""Baselines that need a family's tuned defaults."""

TunedValues = tuple[tuple[str, Any], ...]
"""``(("lr", .1), ("weight_decay", 1e-3), ("aug_level", 0))``: tuned values as a hashable, picklable tuple."""


class MissingTunedDefaults(ValueError):
    """A family has no tuned defaults in the package table (and none were passed)."""


@cache
def _tuned_table() -> dict[str, dict[str, Any]]:
    return json.loads(TUNED_DEFAULTS_PATH.read_text())


def clear_tuned_cache() -> None:
    """Forget the table read so far (after a script wrote ``tuned_defaults.json``)."""
    _tuned_table.cache_clear()


def registered_task(env_id: str) -> str | None:
    """The task family a registered id trains (its registration kwargs), None for a non-TrainGym id."""
    import gymnasium as gym
    import traingym.envs  # noqa: F401  (registers the ids)

    if env_id not in gym.registry:
        return None
    task = gym.spec(env_id).kwargs.get("task")
    return str(task) if task is not None else None


def family_spec(env_id: str, task: str | None = None) -> str:
    """The task family an env trains: ``task`` when given, else the id's registered task."""
    return task if task is not None else (registered_task(env_id) or env_id)


def in_package_table(env_id: str, task: str | None = None) -> bool:
    """Whether the package table holds the tuned defaults of ``env_id`` training ``task`` (its own family)."""
    own_family = task is None or task == registered_task(env_id)
    return own_family and env_id in _tuned_table()


def tuned_defaults(env_id: str) -> dict[str, Any]:
    """The tuned hyperparameters of a registered id (``lr``, ``weight_decay``, ``aug_level``).

    Raises:
        MissingTunedDefaults: ``env_id`` is not in the package table.
    """
    table = _tuned_table()
    if env_id not in table:
        raise MissingTunedDefaults(
            f"no tuned defaults for {env_id!r} (the package has {sorted(table)}); train_agent.py and "
            f"`python -m traingym.agents.evaluate` sweep them for a family of your own (--task), or run "
            f"`python -m traingym.experiments.good_defaults --env {env_id} --write`")
    return {k: table[env_id][k] for k in HPARAMS}


def store_tuned(env_id: str, best: dict[str, Any], settings: dict[str, Any]) -> None:
    """Put ``best`` (a sweep row) into the package's ``tuned_defaults.json`` under ``env_id``."""
    table = json.loads(TUNED_DEFAULTS_PATH.read_text()) if TUNED_DEFAULTS_PATH.exists() else {}
    table[env_id] = {**table.get(env_id, {}),  # other entries (the diagnosis-aware controller's) are kept
                     **{k: best[k] for k in HPARAMS},
                     "sweep": {**settings, "val_accuracy": round(best["val_accuracy"], 4)}}
    TUNED_DEFAULTS_PATH.write_text(json.dumps(dict(sorted(table.items())), indent=1) + "\n")
    _tuned_table.cache_clear()
