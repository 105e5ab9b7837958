"""A bounded log of typed training events: an in-memory ring buffer plus an optional capped JSON Lines file.

The :class:`~traingym.envs.monitoring.neuron_log.NeuronLog` (and the env around it) *emits* events while a network
trains; the env summarises them into the ``"events"`` block of the TrainingReport (counts + the most recent
few). Whatever the episode length, the log stays bounded: at most ``capacity`` records in memory, and each
log file at most ``max_file_bytes`` bytes on disk.

## Record schema (``schema_version`` 1)

Every record is a plain JSON-able dict with exactly these keys::

    {"schema_version": 1,          # int, always 1 for this layout
     "step": 12,                   # int >= 0, the env step (not the optimizer step) the event belongs to
     "event": "loss_spike",        # str, one of EventType's values
     "layer": "fc1",               # str (<= 64 chars) or None when the event is not about one layer
     "neuron_ids": [3, 17],        # list of ints >= 0, <= MAX_IDS entries; unit ids within ``layer``
                                   # (for over_relevant_token: compact vocabulary token ids, layer None)
     "values": {"loss": 3.2}}      # str (<= 64 chars) -> finite float, <= MAX_VALUES entries

:data:`EVENT_RECORD_SCHEMA` is the same schema as a JSON Schema (draft 2020-12) dict;
:func:`validate_record` checks a record against it (and that every value is finite). The architecture's
report view names the event key ``"type"`` and drops ``schema_version``: :func:`report_view` converts one
record into that shape.

Values are sanitised on the way in: every value becomes a Python float; NaN becomes 0.0 and +/-inf becomes
+/-:data:`VALUE_CAP` (float32's largest finite value, so the numbers also fit a float32 observation).
Over-long ``neuron_ids`` / ``values`` are truncated (first entries kept) so a record has a bounded size.

## Counting

Per event type the log counts events since :meth:`EventLog.reset` (``counts("reset")``) and during the last
*completed* step (``counts("step")``). A step is completed by :meth:`EventLog.end_step`, which the env calls
once per env step after the step's events were emitted; it also writes the step's records to the file.

## File policy: rotate once

With ``log_path`` set, records are appended as JSON Lines (one compact JSON object per line). The file is
opened lazily (on the first step that has something to write), in append mode, and flushed once per step
(not per record). Before a line would push the file past ``max_file_bytes``, the file is rotated: renamed to
``log_path + ".1"`` (replacing an older ``.1``) and a fresh file is started. So each of the two files is
always at most ``max_file_bytes`` bytes, the disk use is at most twice that, and the newest records are
kept. A single line longer than ``max_file_bytes`` is dropped (counted in :attr:`EventLog.dropped_lines`).
Lines waiting for the next :meth:`EventLog.end_step` are bounded by ``max_file_bytes`` as well, so a caller
that never ends a step cannot grow memory without bound.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import numpy as np
from traingym.envs.capped_file import CappedJsonlFile
from traingym.protocol.events import EVENT_TYPES, EventType

SCHEMA_VERSION = 1
"""Version of the record layout documented above."""
MAX_IDS = 32
"""Most ``neuron_ids`` entries kept per record."""
MAX_VALUES = 16
"""Most ``values`` entries kept per record."""
MAX_NAME_CHARS = 64
"""Longest layer name / value key kept (longer ones are truncated)."""
VALUE_CAP = float(np.finfo(np.float32).max)
"""Magnitude that +/-inf values are replaced by."""


EVENT_RECORD_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "traingym/event_record/v1",
    "title": "TrainGym event record",
    "type": "object",
    "additionalProperties": False,
    "required": ["schema_version", "step", "event", "layer", "neuron_ids", "values"],
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "step": {"type": "integer", "minimum": 0},
        "event": {"enum": [e.value for e in EventType]},
        "layer": {"type": ["string", "null"], "maxLength": MAX_NAME_CHARS},
        "neuron_ids": {
            "type": "array",
            "items": {"type": "integer", "minimum": 0},
            "maxItems": MAX_IDS,
        },
        "values": {
            "type": "object",
            "maxProperties": MAX_VALUES,
            "propertyNames": {"maxLength": MAX_NAME_CHARS},
            "additionalProperties": {"type": "number", "minimum": -VALUE_CAP, "maximum": VALUE_CAP},
        },
    },
}
"""JSON Schema (draft 2020-12) of one event record."""

_validator: Any = None


def validate_record(record: Mapping[str, Any]) -> None:
    """Raise ValueError if ``record`` does not match :data:`EVENT_RECORD_SCHEMA` or holds a non-finite value.

    Uses ``jsonschema`` (imported on first use, so the log itself works without it).
    """
    global _validator
    import jsonschema

    if _validator is None:
        jsonschema.Draft202012Validator.check_schema(EVENT_RECORD_SCHEMA)
        _validator = jsonschema.Draft202012Validator(EVENT_RECORD_SCHEMA)
    error = jsonschema.exceptions.best_match(_validator.iter_errors(record))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "<record>"
        raise ValueError(f"invalid event record at {where}: {error.message}")
    values = record["values"]
    for key, value in values.items():
        if not math.isfinite(value):
            raise ValueError(f"invalid event record at values/{key}: {value!r} is not finite")


def report_view(record: Mapping[str, Any]) -> dict[str, Any]:
    """One record in the TrainingReport's ``events.recent`` shape (``"type"`` key, no ``schema_version``)."""
    return {
        "step": record["step"],
        "type": record["event"],
        "layer": record["layer"],
        "neuron_ids": list(record["neuron_ids"]),
        "values": dict(record["values"]),
    }


def _finite(value: Any) -> float:
    number = float(value)
    if math.isnan(number):
        return 0.0
    return max(-VALUE_CAP, min(VALUE_CAP, number))


class EventLog:
    """Bounded event log: ring buffer in memory, per-type counts, optional capped JSON Lines file.

    ## Arguments
    * ``capacity``: most records kept in memory (oldest dropped first), >= 1.
    * ``log_path``: JSON Lines file to append to, or None for memory only.
    * ``max_file_bytes``: cap on the size of ``log_path`` (and of its one rotated copy ``log_path + ".1"``),
      >= 1024.

    ## Usage
    ```python
    log = EventLog(capacity=256, log_path="run/events.jsonl", max_file_bytes=1_000_000)
    log.emit(step=3, event=EventType.LOSS_SPIKE, values={"loss": 3.2, "ratio": 4.0})
    log.end_step()                   # flush the step's records to the file, roll the per-step counts
    log.recent(8), log.counts()      # for the TrainingReport
    log.close()
    ```
    """

    def __init__(self, capacity: int = 256, log_path: str | os.PathLike[str] | None = None,
                 max_file_bytes: int = 1_000_000) -> None:
        if not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be an int >= 1, got {capacity!r}")
        if not isinstance(max_file_bytes, int) or max_file_bytes < 1024:
            raise ValueError(f"max_file_bytes must be an int >= 1024, got {max_file_bytes!r}")
        self.capacity = capacity
        self.log_path: str | None = None if log_path is None else os.fspath(log_path)
        self.max_file_bytes = max_file_bytes
        self.dropped_lines = 0
        """Lines not written: longer than the cap, or over the pending budget between two end_step calls."""
        self._records: deque[dict[str, Any]] = deque(maxlen=capacity)
        self._total: Counter[str] = Counter()
        self._pending_counts: Counter[str] = Counter()
        self._last_step_counts: Counter[str] = Counter()
        self._pending_lines: list[bytes] = []
        self._pending_bytes = 0
        self._file = None if self.log_path is None else CappedJsonlFile(self.log_path, max_file_bytes)

    # ------------------------------------------------------------------ events
    def emit(self, step: int, event: EventType | str, layer: str | None = None,
             neuron_ids: Iterable[int] = (), values: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Record one event and return its (sanitised) record.

        ``event`` may be an :class:`EventType` or its string value; an unknown type raises ValueError.
        """
        kind = EventType(event)
        if int(step) < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        ids = [int(i) for i in list(neuron_ids)[:MAX_IDS]]
        if any(i < 0 for i in ids):
            raise ValueError(f"neuron_ids must be >= 0, got {ids}")
        items = list((values or {}).items())[:MAX_VALUES]
        record: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "step": int(step),
            "event": kind.value,
            "layer": None if layer is None else str(layer)[:MAX_NAME_CHARS],
            "neuron_ids": ids,
            "values": {str(k)[:MAX_NAME_CHARS]: _finite(v) for k, v in items},
        }
        self._records.append(record)
        self._total[kind.value] += 1
        self._pending_counts[kind.value] += 1
        if self.log_path is not None:
            line = (json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n").encode("utf-8")
            if len(line) > self.max_file_bytes or self._pending_bytes + len(line) > self.max_file_bytes:
                self.dropped_lines += 1
            else:
                self._pending_lines.append(line)
                self._pending_bytes += len(line)
        return record

    def end_step(self) -> dict[str, int]:
        """Close the current step: write its records to the file (one flush) and roll the per-step counts.

        Returns the finished step's counts (all types, in :data:`EVENT_TYPES` order).
        """
        self._write_pending()
        self._last_step_counts = self._pending_counts
        self._pending_counts = Counter()
        return self.counts("step")

    # ------------------------------------------------------------------ queries
    def recent(self, n: int) -> list[dict[str, Any]]:
        """The newest ``min(n, len(self))`` records, oldest first (copies, safe to mutate)."""
        if n <= 0:
            return []
        tail = list(self._records)[-n:]
        return [{**r, "neuron_ids": list(r["neuron_ids"]), "values": dict(r["values"])} for r in tail]

    def counts(self, since: Literal["reset", "step"] = "reset") -> dict[str, int]:
        """Events per type since :meth:`reset` (``"reset"``) or during the last completed step (``"step"``).

        All types are present, in :data:`EVENT_TYPES` order."""
        if since == "reset":
            source = self._total
        elif since == "step":
            source = self._last_step_counts
        else:
            raise ValueError(f"since must be 'reset' or 'step', got {since!r}")
        return {e.value: int(source[e.value]) for e in EVENT_TYPES}

    def count_vector(self, since: Literal["reset", "step"] = "reset") -> np.ndarray:
        """:meth:`counts` as a float32 vector in :data:`EVENT_TYPES` order (for observations)."""
        return np.asarray(list(self.counts(since).values()), dtype=np.float32)

    def __len__(self) -> int:
        return len(self._records)

    # ------------------------------------------------------------------ lifecycle
    def reset(self) -> None:
        """Forget the in-memory records and all counts (e.g. at episode start). Pending file lines are written
        first; the file itself is kept and appended to."""
        self._write_pending()
        self._records.clear()
        self._total.clear()
        self._pending_counts = Counter()
        self._last_step_counts = Counter()

    def close(self) -> None:
        """Write pending lines and close the file. Idempotent; a later write reopens the file lazily."""
        self._write_pending()
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ file
    # Picklable (an env with a ``log_path`` can be copied or shipped to a worker): the CappedJsonlFile leaves its
    # open handle out of a copy, which reopens the file lazily on its next write.
    def _write_pending(self) -> None:
        if not self._pending_lines:
            return
        assert self._file is not None
        self._file.write(self._pending_lines)
        self._pending_lines = []
        self._pending_bytes = 0
