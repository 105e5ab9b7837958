"""The doctor's decision log: one JSON Lines record per check, in the agents' trajectory-export schema.

A record carries the fields of :mod:`traingym.protocol.trajectory_format` (``schema_version``, ``env_id``, ``policy``,
``instance_index``, ``episode_seed``, ``step``, ``report``, ``diagnosis``, ``move``, ``reward``, ``val_accuracy``,
``outcome``), so decisions taken by humans can fine-tune an advisor with the same reader
(:func:`~traingym.protocol.trajectory_format.read_trajectories`). For the doctor:

- ``env_id`` is ``"doctor"``, ``instance_index`` and ``episode_seed`` are null; ``step`` is the check index (0 at
  attach time), ``optimizer_step`` the user's optimizer step;
- ``move`` is the policy's proposed move, ``applied_move`` the move applied, ``decided_by`` ``policy`` / ``human`` /
  ``default`` / ``watch`` (:class:`~traingym.protocol.proposals.DecidedBy`) and ``action`` ``accept`` / ``edit`` /
  ``skip`` / ``timeout`` / ``watch``; ``report_hash`` is the diagnosis cache key of the report;
- ``reward``, ``val_accuracy`` and ``outcome`` (``val_accuracy``, ``val_loss``, ``train_loss``, ``diverged`` and
  ``step`` of the next check) describe what followed the decision; a record is written once its next check is
  known (the last one at :meth:`DecisionLog.close`, with null outcome).

The file is capped and rotated once like the event log (:class:`~traingym.envs.capped_file.CappedJsonlFile`).
Records hold the report, the advisor's diagnosis and the moves: no configuration, URLs or keys.
"""

from __future__ import annotations

import json
import os
from collections import deque
from typing import Any

from traingym.envs.capped_file import CappedJsonlFile
from traingym.protocol.trajectory_format import SCHEMA_VERSION, jsonable

DECISION_FIELDS: tuple[str, ...] = ("applied_move", "decided_by", "action", "report_hash", "optimizer_step")
"""Fields a decision record adds to the trajectory schema."""


class DecisionLog:
    """In-memory ring of the latest records (``capacity``) plus an optional capped JSON Lines file."""

    def __init__(self, log_path: str | os.PathLike[str] | None = None, capacity: int = 256,
                 max_file_bytes: int = 5_000_000) -> None:
        if not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be an int >= 1, got {capacity!r}")
        self._file = None if log_path is None else CappedJsonlFile(log_path, max_file_bytes)
        self.records: deque[dict[str, Any]] = deque(maxlen=capacity)
        """The latest completed records (outcome known), oldest first."""
        self._pending: dict[str, Any] | None = None
        self.dropped_lines = 0

    def add(self, record: dict[str, Any]) -> None:
        """A new decision; its outcome comes with the next :meth:`complete` (or null at :meth:`close`)."""
        self._flush(None)
        self._pending = {"schema_version": SCHEMA_VERSION, "env_id": "doctor", "instance_index": None,
                         "episode_seed": None, **record}

    def complete(self, outcome: dict[str, Any]) -> None:
        """The result of the pending decision, observed at the next check."""
        self._flush(outcome)

    @property
    def pending(self) -> dict[str, Any] | None:
        return self._pending

    def close(self) -> None:
        """Write the pending record (null outcome) and close the file. Idempotent."""
        self._flush(None)
        if self._file is not None:
            self._file.close()

    def _flush(self, outcome: dict[str, Any] | None) -> None:
        if self._pending is None:
            return
        record, self._pending = self._pending, None
        before = record.pop("_val_accuracy_before")
        if outcome is not None:
            record.update(reward=outcome["val_accuracy"] - before, val_accuracy=outcome["val_accuracy"],
                          outcome=outcome)
        else:
            record.update(reward=None, val_accuracy=None, outcome=None)
        record = jsonable(record)
        self.records.append(record)
        if self._file is not None:
            line = (json.dumps(record, allow_nan=False) + "\n").encode("utf-8")
            if len(line) > self._file.max_file_bytes:
                self.dropped_lines += 1
            else:
                self._file.write([line])
