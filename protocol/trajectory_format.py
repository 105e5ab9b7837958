"""The per-step trajectory format: one JSON Lines record per decision, shared by the agents' trajectory export
(a dataset for fine-tuning advisor models), the training doctor's decision log and the run report.

Schema (``schema_version`` 1), one object per line:

- ``schema_version`` (int), ``env_id`` (str), ``policy`` (str: the label of the policy that acted),
  ``instance_index`` (int), ``episode_seed`` (int), ``step`` (int: 0-based index of the move in the episode);
- ``report`` (object): the env's TrainingReport (``env.unwrapped.report()``) before the move, as the advisor saw it;
- ``diagnosis`` (object or null): the advisor's diagnosis of that report (``info["advisor"]``) when the env's
  observation includes the diagnosis key, else null;
- ``move`` (4 ints in {-1, 0, 1}: lr, weight_decay, aug_level, neuron_scale): the move the policy took;
- ``mask_cell`` (int, only in an env with ``mask_grid``): the grid cell the step decorrelated (0 none);
- ``reward`` (float): the change in validation accuracy it produced (``-divergence_penalty`` on divergence);
- ``val_accuracy`` (float): validation accuracy after the move;
- ``outcome`` (object): the episode's final result, the same on every record of the episode:
  ``final_test_accuracy``, ``final_val_accuracy``, ``diverged``, ``steps``, ``episode_return``,
  ``initial_val_accuracy``.
"""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA_VERSION = 1


def jsonable(value: Any) -> Any:
    """Numpy scalars/arrays, enums, tuples and sets as plain JSON values (non-finite floats as null)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


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
