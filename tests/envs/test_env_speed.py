"""Invariants behind the env's speed work (issue 7): what was made faster still computes the same thing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from traingym.envs import TrainingEnv
from traingym.envs import training_env as training_env_module
from traingym.envs.tasks.digits import load_digits_tensors
from traingym.protocol.report import finite, slope

FAST = {"steps_per_action": 7, "val_size": 128, "encoder": "hashing"}


def _hooks(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


@pytest.mark.parametrize("task", ["digits_mlp", "digits_cnn"])
def test_training_steps_run_without_hooks(task: str) -> None:
    """The neuron log hooks the hidden layers only during its own passes, never between env steps."""
    env = TrainingEnv(task=task, **FAST)
    env.reset(seed=0)
    assert _hooks(env.model) == 0
    obs, *_ = env.step(np.array([1, 1, 1, 2]))
    assert _hooks(env.model) == 0
    assert obs["neurons"].any()  # the log still captured activations and flagged neurons
    assert any(ids.numel() for ids in env._log.flagged)
    env.close()


def test_accuracy_reduced_in_chunks_equals_one_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Train accuracy and loss do not depend on how the per-step outputs are chunked (7 steps, chunks of 3)."""
    infos = []
    for chunk in (64, 3, 1):
        monkeypatch.setattr(training_env_module, "METRIC_CHUNK", chunk)
        env = TrainingEnv(task="digits_mlp", **FAST)
        env.reset(seed=5)
        infos.append([env.step(np.array([1, 1, 2, 1]))[4] for _ in range(3)])
        env.close()
    for info in infos[1:]:
        assert [i["train_accuracy"] for i in info] == [i["train_accuracy"] for i in infos[0]]
        assert [i["train_loss"] for i in info] == pytest.approx([i["train_loss"] for i in infos[0]], abs=1e-6)


def test_resets_reuse_the_cached_dataset() -> None:
    env = TrainingEnv(task="digits_mlp", **FAST)
    env.reset(seed=0)
    loads = load_digits_tensors.cache_info().misses
    for seed in range(1, 6):
        env.reset(seed=seed)  # a new instance each time: new split and network, same cached data
    assert load_digits_tensors.cache_info().misses == loads
    env.close()


def _finite_reference(value: float, bound: float = 1e6) -> float:
    return float(np.clip(np.nan_to_num(value, nan=bound, posinf=bound, neginf=-bound), -bound, bound))


def _slope_reference(values: list[float]) -> float:
    n = len(values)
    if n < 2:
        return 0.0
    x = np.arange(n, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    x -= x.mean()
    value = float((x * (y - y.mean())).sum() / (x * x).sum())
    return value if np.isfinite(value) else 0.0


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e6, 10.0, 1.0]))
def test_finite_matches_the_numpy_definition(value: float, bound: float) -> None:
    assert finite(value, bound) == _finite_reference(value, bound)
    assert math.isfinite(finite(value, bound))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(min_value=-1e6, max_value=1e6) | st.sampled_from([math.inf, -math.inf, math.nan]),
                max_size=12))
def test_slope_matches_the_numpy_definition(values: list[float]) -> None:
    with np.errstate(all="ignore"):
        assert slope(values) == _slope_reference(values)
