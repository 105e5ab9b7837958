"""Tests for the bounded event log (envs/monitoring/event_log.py)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from traingym.envs.monitoring.event_log import (
    EVENT_RECORD_SCHEMA,
    EVENT_TYPES,
    MAX_IDS,
    MAX_VALUES,
    VALUE_CAP,
    EventLog,
    EventType,
    report_view,
    validate_record,
)


def _read_lines(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def test_schema_is_valid_and_lists_every_event_type() -> None:
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(EVENT_RECORD_SCHEMA)
    log = EventLog(capacity=len(EVENT_TYPES))
    for event in EVENT_TYPES:  # a record of every event type passes the schema (by enum member and by name)
        validate_record(log.emit(step=1, event=event, layer="fc1", neuron_ids=[0], values={"x": 1.0}))
        validate_record(log.emit(step=1, event=event.value))
    assert log.counts() == {e.value: 2 for e in EventType}


def test_emit_sanitises_and_validates() -> None:
    log = EventLog(capacity=4)
    record = log.emit(step=2, event="loss_spike", layer="fc1", neuron_ids=np.arange(100),
                      values={"loss": float("inf"), "nan": float("nan"), "neg": -float("inf"),
                              "i": np.int64(3), **{f"k{i}": i for i in range(40)}})
    validate_record(record)
    assert record["values"]["loss"] == VALUE_CAP and record["values"]["neg"] == -VALUE_CAP
    assert record["values"]["nan"] == 0.0 and isinstance(record["values"]["i"], float)
    assert len(record["neuron_ids"]) == MAX_IDS and len(record["values"]) == MAX_VALUES
    json.dumps(record, allow_nan=False)  # JSON-able


@pytest.mark.parametrize(
    "bad",
    [
        {"step": -1},
        {"event": "nope"},
        {"schema_version": 2},
        {"neuron_ids": [-3]},
        {"values": {"x": float("nan")}},
        {"values": {"x": "3"}},
        {"extra": 1},
    ],
)
def test_validate_record_rejects_bad_records(bad: dict) -> None:
    good = {"schema_version": 1, "step": 0, "event": "divergence", "layer": None, "neuron_ids": [],
            "values": {}}
    validate_record(good)
    with pytest.raises(ValueError):
        validate_record({**good, **bad})


def test_bad_arguments_raise_value_error(tmp_path) -> None:
    with pytest.raises(ValueError, match="capacity"):
        EventLog(capacity=0)
    with pytest.raises(ValueError, match="max_file_bytes"):
        EventLog(capacity=4, log_path=tmp_path / "x.jsonl", max_file_bytes=10)
    log = EventLog(capacity=4)
    with pytest.raises(ValueError):
        log.emit(step=0, event="not_an_event")
    with pytest.raises(ValueError, match="since"):
        log.counts("ever")  # type: ignore[arg-type]


def test_counts_total_and_last_step() -> None:
    log = EventLog(capacity=3)
    log.emit(0, EventType.LOSS_SPIKE)
    log.emit(0, EventType.LOSS_SPIKE)
    assert log.counts("step")["loss_spike"] == 0  # step not finished yet
    assert log.end_step()["loss_spike"] == 2
    log.emit(1, EventType.GAP_JUMP)
    step_counts = log.end_step()
    assert step_counts == {**{e.value: 0 for e in EVENT_TYPES}, "gap_jump": 1}
    assert log.counts()["loss_spike"] == 2 and log.counts()["gap_jump"] == 1
    vec = log.count_vector()
    assert vec.dtype == np.float32 and vec.shape == (len(EVENT_TYPES),) and vec.sum() == 3
    log.reset()
    assert len(log) == 0 and sum(log.counts().values()) == 0 and sum(log.counts("step").values()) == 0


def test_recent_is_oldest_first_and_a_copy() -> None:
    log = EventLog(capacity=3)
    for step in range(5):
        log.emit(step, EventType.DIVERGENCE, values={"loss": step})
    recent = log.recent(10)
    assert [r["step"] for r in recent] == [2, 3, 4]
    assert [r["step"] for r in log.recent(2)] == [3, 4] and log.recent(0) == []
    recent[0]["values"]["loss"] = -1
    assert log.recent(3)[0]["values"]["loss"] == 2.0
    assert report_view(recent[-1]) == {"step": 4, "type": "divergence", "layer": None, "neuron_ids": [],
                                       "values": {"loss": 4.0}}


def test_file_is_lazy_flushed_per_step_and_read_back(tmp_path) -> None:
    path = tmp_path / "sub" / "events.jsonl"
    log = EventLog(capacity=8, log_path=path, max_file_bytes=10_000)
    log.end_step()
    assert not path.exists()  # nothing to write, nothing opened
    log.emit(0, EventType.DEAD_UNIT_GROWTH, layer="fc2", neuron_ids=[1, 2], values={"dead_fraction": 0.25})
    assert not path.exists()  # written per step, not per record
    log.end_step()
    log.emit(1, EventType.OVER_RELEVANT_TOKEN, neuron_ids=[7], values={"z": 5.0, "share": 0.2})
    log.end_step()
    lines = _read_lines(path)
    assert lines == [r for r in log.recent(8)]
    for record in lines:
        validate_record(record)
    log.close()
    log.close()  # idempotent
    log.emit(2, EventType.GAP_JUMP)
    log.close()  # reopens lazily, appends
    assert len(_read_lines(path)) == 3


def test_long_run_never_exceeds_caps(tmp_path) -> None:
    """100k records: memory keeps the newest records, both files stay under the cap, every line validates."""
    path = tmp_path / "events.jsonl"
    cap = 20_000
    log = EventLog(capacity=64, log_path=path, max_file_bytes=cap)
    kinds = list(EventType)
    max_seen = 0
    for i in range(100_000):
        log.emit(i // 10, kinds[i % len(kinds)], layer=f"layer{i % 3}", neuron_ids=[i % 50, 3],
                 values={"loss": i * 0.5, "ratio": float("inf") if i % 97 == 0 else 1.0})
        if i % 10 == 9:
            log.end_step()
            max_seen = max(max_seen, os.path.getsize(path))
    newest = log.recent(1000)
    log.close()
    expected = [(i // 10, kinds[i % len(kinds)].value) for i in range(100_000 - 64, 100_000)]
    assert [(r["step"], r["event"]) for r in newest] == expected  # memory holds exactly the newest 64 records
    assert max_seen <= cap and os.path.getsize(path) <= cap
    rotated = str(path) + ".1"
    assert os.path.getsize(rotated) <= cap
    assert sum(log.counts().values()) == 100_000
    tail = _read_lines(path)
    for record in _read_lines(rotated) + tail:
        validate_record(record)
    assert tail[-1]["step"] == 9_999  # newest records kept


def test_pending_lines_bounded_without_end_step(tmp_path) -> None:
    log = EventLog(capacity=4, log_path=tmp_path / "e.jsonl", max_file_bytes=2048)
    for i in range(1000):
        log.emit(i, EventType.LOSS_SPIKE, values={"loss": 1.0})
    assert log._pending_bytes <= 2048 and log.dropped_lines > 0
    log.close()
    assert os.path.getsize(tmp_path / "e.jsonl") <= 2048


def test_existing_oversized_file_is_rotated(tmp_path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_bytes(b"x" * 5000)
    log = EventLog(capacity=4, log_path=path, max_file_bytes=4096)
    log.emit(0, EventType.LOSS_SPIKE)
    log.close()
    assert os.path.getsize(path) < 4096 and os.path.getsize(str(path) + ".1") == 5000
