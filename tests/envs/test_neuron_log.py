"""Selective, event-triggered and summarised neuron logging inside the env."""

from __future__ import annotations

import json

import numpy as np
import pytest
from traingym.envs import TrainingEnv
from traingym.envs.event_log import validate_record

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


def test_event_ring_buffer_stays_bounded_over_a_long_run() -> None:
    env = TrainingEnv(task="digits_mlp", event_log_capacity=8, steps_per_action=1, val_size=64,
                      obs_keys=["neurons"])
    rng = np.random.default_rng(0)
    for episode in range(10):
        env.reset(seed=episode)
        for _ in range(20):
            _, _, terminated, _, _ = env.step(rng.integers(0, 3, size=4))
            assert len(env._events) <= 8
            if terminated:
                break
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
