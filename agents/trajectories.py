"""Trajectory export: the evaluated episodes' steps as JSON Lines, a dataset for fine-tuning advisor models.

The record format (schema, :func:`~traingym.protocol.trajectory_format.read_trajectories`) is
:mod:`traingym.protocol.trajectory_format`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from traingym.agents.episodes import EpisodeResult
from traingym.protocol.trajectory_format import SCHEMA_VERSION, jsonable


def episode_records(episode: EpisodeResult, env_id: str) -> Iterator[dict[str, Any]]:
    """The export records of one evaluated episode (it must have been run with ``record_trajectories``)."""
    outcome = {"final_test_accuracy": episode.test_accuracy, "final_val_accuracy": episode.val_accuracy[-1],
               "diverged": episode.diverged, "steps": episode.steps, "episode_return": episode.episode_return,
               "initial_val_accuracy": episode.initial_val_accuracy}
    for record in episode.records:
        yield jsonable({"schema_version": SCHEMA_VERSION, "env_id": env_id, "policy": episode.policy,
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
