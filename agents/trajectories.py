"""Trajectory export: one JSON Lines record per env step, a dataset for fine-tuning advisor models.

Schema (``schema_version`` 1), one object per line:

- ``schema_version`` (int), ``env_id`` (str), ``policy`` (str: the label of the policy that acted),
  ``instance_index`` (int), ``episode_seed`` (int), ``step`` (int: 0-based index of the move in the episode);
- ``report`` (object): the env's TrainingReport (``env.unwrapped.report()``) before the move, as the advisor saw it;
- ``diagnosis`` (object or null): the advisor's diagnosis of that report (``info["advisor"]``) when the env's
  observation includes the diagnosis key, else null;
- ``move`` (4 ints in {-1, 0, 1}: lr, weight_decay, aug_level, neuron_scale): the move the policy took;
- ``reward`` (float): the change in validation accuracy it produced (``-divergence_penalty`` on divergence);
- ``val_accuracy`` (float): validation accuracy after the move;
- ``outcome`` (object): the episode's final result, the same on every record of the episode:
  ``final_test_accuracy``, ``final_val_accuracy``, ``diverged``, ``steps``, ``episode_return``,
  ``initial_val_accuracy``.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from traingym.agents.episodes import EpisodeResult

SCHEMA_VERSION = 1


def _jsonable(value: Any) -> Any:
    """Numpy scalars/arrays, enums, tuples and sets as plain JSON values."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, enum.Enum):
        return _jsonable(value.value)
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def episode_records(episode: EpisodeResult, env_id: str) -> Iterator[dict[str, Any]]:
    """The export records of one evaluated episode (it must have been run with ``record_trajectories``)."""
    outcome = {"final_test_accuracy": episode.test_accuracy, "final_val_accuracy": episode.val_accuracy[-1],
               "diverged": episode.diverged, "steps": episode.steps, "episode_return": episode.episode_return,
               "initial_val_accuracy": episode.initial_val_accuracy}
    for record in episode.records:
        yield _jsonable({"schema_version": SCHEMA_VERSION, "env_id": env_id, "policy": episode.policy,
                         "instance_index": episode.instance_index, "episode_seed": episode.seed,
                         "step": record["step"], "report": record["report"], "diagnosis": record["diagnosis"],
                         "move": record["move"], "reward": record["reward"],
                         "val_accuracy": record["val_accuracy"], "outcome": outcome})


def write_trajectories(path: str | Path, results: dict[str, list[EpisodeResult]], env_id: str) -> int:
    """Write every recorded step of ``results`` as JSON Lines; returns the number of records."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(path, "w") as handle:
        for episodes in results.values():
            for episode in episodes:
                for record in episode_records(episode, env_id):
                    handle.write(json.dumps(record, allow_nan=False) + "\n")
                    count += 1
    return count


def read_trajectories(path: str | Path) -> list[dict[str, Any]]:
    """Read an export back (checks the schema version)."""
    records = []
    with open(path) as handle:
        for number, line in enumerate(handle, 1):
            record = json.loads(line)
            if record.get("schema_version") != SCHEMA_VERSION:
                raise ValueError(f"{path}:{number}: schema_version {record.get('schema_version')!r}, "
                                 f"expected {SCHEMA_VERSION}")
            records.append(record)
    return records
