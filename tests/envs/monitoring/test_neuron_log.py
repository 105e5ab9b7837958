"""Selective, event-triggered and summarised neuron logging inside the env."""

from __future__ import annotations

import json

import numpy as np
import pytest
from traingym.envs import TrainingEnv
from traingym.envs.monitoring.event_log import validate_record

FAST = {"steps_per_action": 5, "val_size": 128, "obs_keys": ["training_stats", "neurons"]}


def test_events_fire_on_a_real_lr_blow_up_and_validate(tmp_path) -> None:
    path = tmp_path / "events.jsonl"
    env = TrainingEnv(task="digits_mlp", log_path=str(path), **FAST)
    env.reset(seed=0, options={"instance": {**env.instances[1], "lr": 0.05}})
    for _ in range(3):
        env.step(np.array([1, 1, 1, 1]))
    kinds = set()
    for _ in range(15):
        _, _, terminated, _, _ = env.step(np.array([2, 1, 1, 1]))
        kinds |= {r["event"] for r in env._events.recent(256)}
        if terminated:
            break
    env.close()
    assert "divergence" in kinds or "loss_spike" in kinds
    lines = path.read_text().splitlines()
    assert lines, "events must be appended to log_path"
    for line in lines:
        validate_record(json.loads(line))


def test_quiet_steps_write_nothing_and_report_counts() -> None:
    env = TrainingEnv(task="tabular_mlp", **FAST)
    env.reset(seed=0, options={"instance": {**env.instances[0], "lr": 1e-4, "label_noise": 0.0}})
    env.step(np.array([1, 1, 1, 1]))
    report = env.report()
    assert report["events"]["counts"] == {}  # a tiny LR changes nothing: no event fires
    assert json.loads(json.dumps(report)) == report
    env.close()


def test_event_ring_buffer_keeps_the_newest_events_of_a_long_run_and_counts_them_all() -> None:
    """The run emits far more events than the buffer holds: the buffer keeps exactly the newest ``capacity`` ones
    (what the report's recent events show), while the counts (the observation) still count every event."""
    env = TrainingEnv(task="digits_mlp", event_log_capacity=8, steps_per_action=1, val_size=64,
                      obs_keys=["neurons"])
    emitted: list[dict] = []
    emit = env._events.emit
    env._events.emit = lambda *a, **k: emitted.append(emit(*a, **k)) or emitted[-1]  # type: ignore[method-assign]
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    for _ in range(200):
        _, _, terminated, _, _ = env.step(rng.integers(0, 3, size=4))
        held = env._events.recent(100)
        assert len(env._events) == len(held) == min(8, len(emitted))
        assert held == emitted[-8:]  # the newest, oldest first
        assert sum(env._events.counts().values()) == len(emitted)
        if terminated:
            break
    assert len(emitted) > 3 * 8, "the run must overflow the buffer for this test to mean anything"
    env.close()


@pytest.mark.parametrize("policies", [(), ("selective",), ("events",), ("summaries",)])
def test_each_policy_usable_alone(policies: tuple) -> None:
    env = TrainingEnv(task="digits_cnn", neuron_log=list(policies), **FAST)
    obs, _ = env.reset(seed=1)
    obs, *_ = env.step(np.array([1, 1, 1, 2]))
    assert env.observation_space.contains(obs)
    flagged = sum(ids.numel() for ids in env._log.flagged)
    assert (flagged > 0) == ("selective" in policies)
    grads = [s.grad_norm for s in env._log.summaries]
    assert (max(grads) > 0) == ("summaries" in policies)
    env.close()


def test_neurons_block_has_the_same_shape_for_every_instance() -> None:
    env = TrainingEnv(task="digits_mlp", **FAST)
    shapes = set()
    for i in range(6):  # depths 1-3 are padded / truncated to the same slots
        obs, _ = env.reset(options={"instance_index": i})
        shapes.add(obs["neurons"].shape)
    assert len(shapes) == 1
    env.close()
