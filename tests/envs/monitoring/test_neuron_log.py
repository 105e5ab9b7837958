"""Selective, event-triggered and summarised neuron logging inside the env."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from traingym.envs import TrainingEnv
from traingym.envs.config import TrainingEnvConfig
from traingym.envs.monitoring.event_log import validate_record
from traingym.envs.monitoring.monitor import TrainingMonitor
from traingym.envs.monitoring.neuron_log import ValidationPass
from traingym.envs.tasks.networks import build_mlp

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


def test_validate_with_a_computed_pass_records_what_the_modules_own_passes_record(monkeypatch) -> None:
    """A batched env's :class:`ValidationPass`: the monitor records what the module's own passes record, and reads
    nothing from the module (it is not run, its train/eval mode stays as it is)."""
    config = TrainingEnvConfig(obs_keys=("training_stats", "neurons"), val_size=128, max_error_samples=20)
    gen = torch.Generator().manual_seed(0)
    model = build_mlp(64, [32, 16], 10, gen)
    x, y = torch.rand((128, 64), generator=gen), torch.randint(10, (128,), generator=gen)
    own, other = TrainingMonitor(config), TrainingMonitor(config)
    for monitor in (own, other):
        monitor.reset(model.hidden_layers(), (1, 8, 8))
    step = 1  # after reset: input relevance runs too
    expected = own.validate(model, x, y, step, train_loss=2.0)
    assert own.log.n_errors > config.max_error_samples and own.log.input_relevance is not None
    # The pass a batched env computes, here from the module: outputs, then the error pass on the first errors.
    hidden: list[torch.Tensor] = []
    handles = [act.register_forward_hook(lambda m, a, out: hidden.append(out)) for act in model.acts]
    with torch.no_grad():
        logits = model(x)
    for handle in handles:
        handle.remove()
    errors = logits.argmax(1) != y
    importances = own.log._importances(model, x[errors], logits.argmax(1)[errors])
    computed = ValidationPass(logits, hidden, importances, own.log.input_relevance)

    def not_run(*args: object) -> torch.Tensor:
        raise AssertionError("the module ran")

    model.train()
    monkeypatch.setattr(model, "forward", not_run)
    assert other.validate(model, x, y, step, train_loss=2.0, computed=computed) == expected
    assert model.training
    assert other.log.n_errors == own.log.n_errors
    assert other.log.input_relevance is own.log.input_relevance
    for mine, theirs in zip(own.log.summaries, other.log.summaries):
        assert mine.as_dict() == theirs.as_dict()
    for mine, theirs in zip(own.log.flagged + own.log.flagged_scores, other.log.flagged + other.log.flagged_scores):
        assert torch.equal(mine, theirs)
    assert other.inputs.features().tolist() == own.inputs.features().tolist()
