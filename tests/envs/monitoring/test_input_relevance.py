"""Input relevance (the image / table analogue of token relevance) and the decorrelating augmentation."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
import traingym.envs  # noqa: F401
from torch import nn
from traingym.envs.monitoring.event_log import EventLog
from traingym.envs.monitoring.input_relevance import (
    ALARM_Z,
    FEATURE_SIZE,
    PERSISTENCE,
    InputRelevanceMonitor,
    feature_names,
    robust_z,
)
from traingym.envs.monitoring.neuron_features import Z_SCALE
from traingym.envs.monitoring.neuron_log import NeuronLog
from traingym.envs.tasks.augmentation import decorrelate_inputs
from traingym.protocol.events import EventType


def _pass(n_features: int, hot: dict[int, float], errors: float = 50.0, seed: int = 0) -> torch.Tensor:
    """One error pass's (2, F) summed shares and counts: every feature in every error, the ``hot`` features with the
    given share per error, the rest sharing what is left with noise."""
    rng = np.random.default_rng(seed)
    shares = rng.uniform(0.5, 1.5, n_features)
    shares[list(hot)] = 0.0
    shares = shares / shares.sum() * (1.0 - sum(hot.values()))
    for j, share in hot.items():
        shares[j] = share
    return torch.tensor(np.stack([shares * errors, np.full(n_features, errors)]))


def test_feature_names_follow_the_input_shape() -> None:
    assert feature_names((1, 2, 3))[:4] == ("pixel r0c0", "pixel r0c1", "pixel r0c2", "pixel r1c0")
    assert feature_names((2, 1, 1)) == ("c0 pixel r0c0", "c1 pixel r0c0")
    assert feature_names((3,)) == ("feature 0", "feature 1", "feature 2")


def test_robust_z_ignores_unseen_features_and_scores_outliers() -> None:
    scores = np.array([1.0, 1.1, 0.9, 1.0, 5.0, 0.0])
    seen = np.array([True, True, True, True, True, False])
    z = robust_z(scores, seen)
    assert z[5] == 0.0 and z[4] > 10 and abs(z[0]) < 1


def test_a_persistent_outlier_is_flagged_after_persistence_updates_with_one_event() -> None:
    events = EventLog(64)
    monitor = InputRelevanceMonitor(feature_names((20,)), events=events)
    for step in range(1, PERSISTENCE):
        monitor.update(_pass(20, {7: 0.5}, seed=step), step)
        assert monitor.flagged_ids == ()  # an outlier must persist before it is flagged
    monitor.update(_pass(20, {7: 0.5}, seed=9), PERSISTENCE)
    assert monitor.flagged_ids == (7,)
    assert monitor.report()[0]["feature"] == "feature 7" and monitor.report()[0]["z"] >= ALARM_Z
    monitor.update(_pass(20, {7: 0.5}, seed=10), PERSISTENCE + 1)
    emitted = [r for r in events.recent(64) if r["event"] == EventType.OVER_RELEVANT_INPUT]
    assert len(emitted) == 1 and emitted[0]["neuron_ids"] == [7]


def test_a_one_off_outlier_is_not_flagged() -> None:
    monitor = InputRelevanceMonitor(feature_names((20,)))
    monitor.update(_pass(20, {3: 0.2}), 1)
    assert monitor._z[3] >= ALARM_Z  # an outlier on this pass ...
    for step in range(2, 8):
        monitor.update(_pass(20, {}, seed=step), step)
    assert monitor.flagged_ids == ()  # ... that fades before it has persisted


def test_observation_block_and_input_checks() -> None:
    monitor = InputRelevanceMonitor(feature_names((20,)))
    assert monitor.features().shape == (FEATURE_SIZE,) and not monitor.features().any()
    monitor.update(None, 1)  # no errors: nothing changes
    assert not monitor.features().any()
    with pytest.raises(ValueError, match="shape"):
        monitor.update(torch.zeros(2, 5), 1)
    for step in range(1, PERSISTENCE + 1):
        monitor.update(_pass(20, {4: 0.5}, seed=step), step)
    block = monitor.features()
    assert block[0] == pytest.approx(np.tanh(monitor._z[4] / Z_SCALE)) and block[-2] == pytest.approx(1 / 5)
    assert monitor._z[4] > 10 * Z_SCALE and np.abs(block).max() <= 1  # a z of 100+ stays in [-1, 1] (was z / 10)


def test_input_relevance_is_the_contrastive_gradient_times_input_of_a_linear_model() -> None:
    """Ground truth by hand: for logits = W x, the relevance of feature j on an error (predicted p, true t) is
    max(0, x_j (W[p, j] - W[t, j])), normalised over j."""
    model = nn.Sequential(nn.Linear(4, 3, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0.0, 2.0, 0.0], [0.0, 1.0, 0.0, -1.0], [0.5, 0.5, 0.5, 0.5]]))
    x = torch.tensor([[1.0, 2.0, 1.0, 0.0], [0.0, 1.0, 3.0, 2.0]])
    predicted, labels = torch.tensor([0, 0]), torch.tensor([1, 2])
    log = NeuronLog([], 1, 16)
    log.record_input_relevance(model, x, predicted, labels)
    w = model[0].weight.detach()
    expected = torch.zeros(2, 4)
    for row in range(2):
        contribution = (x[row] * (w[predicted[row]] - w[labels[row]])).clamp_min(0)
        expected[row] = contribution / contribution.sum()
    assert log.input_relevance is not None
    torch.testing.assert_close(log.input_relevance[0], expected.sum(0).double().float())
    torch.testing.assert_close(log.input_relevance[1], (x != 0).sum(0).float())


def test_decorrelate_inputs_permutes_flagged_columns_within_each_batch() -> None:
    x = torch.arange(2 * 6 * 5, dtype=torch.float32).reshape(2, 6, 5)
    gen = torch.Generator().manual_seed(0)
    assert decorrelate_inputs(x, [1, 3], 0, gen) is x
    assert decorrelate_inputs(x, [], 4, gen) is x
    out = decorrelate_inputs(x, [1, 3], 4, torch.Generator().manual_seed(0))  # level 4: every flagged value moves
    assert torch.equal(out[..., [0, 2, 4]], x[..., [0, 2, 4]])
    for k in range(2):
        for j in (1, 3):
            assert sorted(out[k, :, j].tolist()) == sorted(x[k, :, j].tolist())  # a permutation within the batch
    assert not torch.equal(out, x)
    again = decorrelate_inputs(x, [1, 3], 4, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_text_families_carry_no_input_monitor_and_images_do() -> None:
    image = gym.make("TrainGym/DigitsMLP-v0", obs_keys=["neurons"])
    image.reset(seed=0)
    assert image.unwrapped._monitor.inputs is not None
    assert len(image.unwrapped._monitor.inputs.feature_names) == 64
    off = gym.make("TrainGym/DigitsMLP-v0", obs_keys=["neurons"], relevance=False)
    off.reset(seed=0)
    assert off.unwrapped._monitor.inputs is None
    assert off.observation_space == image.observation_space  # the block is there either way (zeros when off)
    image.close()
    off.close()


def test_augmentation_spends_its_first_level_on_flagged_inputs() -> None:
    env = gym.make("TrainGym/DigitsMLP-v0", obs_keys=["training_stats"])
    env.reset(seed=0)
    unwrapped = env.unwrapped
    x = unwrapped.split.x_train[:8]
    y = unwrapped.split.y_train[:8]
    unwrapped._aug = 1
    assert unwrapped.family_aug_level() == 1  # nothing flagged: the family's own level 1 (shifts, pixel noise)
    assert not torch.equal(unwrapped.augment_batch(x, y)[0], x)
    unwrapped._monitor.inputs._sticky = [0, 7]
    assert unwrapped.family_aug_level() == 0  # flagged: level 1 only decorrelates them
    assert torch.equal(unwrapped.augment_batch(x, y)[0], x)
    unwrapped._aug = 3
    assert unwrapped.family_aug_level() == 2
    env.close()
