"""The pathology probe: the observations it records, the probe itself on cases whose answer is known, the cache and
its arguments."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from traingym.envs.config import OBS_KEYS
from traingym.experiments import pathology_probe
from traingym.experiments.information_gap import pathologies
from traingym.experiments.pathology_probe import ProbeArgs, cached_observations, collect, probe, score

ENV = "TrainGym/DigitsPathologies-v0"


def test_collect_records_each_key_after_each_probed_step_and_the_planted_pathology() -> None:
    arrays = collect(ENV, "test", 2, (1, 3), "heuristic")
    env = gym.make(ENV, obs_keys=list(OBS_KEYS))
    try:
        for key in OBS_KEYS:
            assert arrays[key].shape == (2, 2, *env.observation_space[key].shape)
            assert arrays[key].dtype == np.float32
    finally:
        env.close()
    assert arrays["pathology"].tolist() == pathologies(ENV, "test", [0, 1])
    assert not np.array_equal(arrays["training_stats"][:, 0], arrays["training_stats"][:, 1])  # two steps apart


def synthetic(n: int, seed: int) -> dict[str, np.ndarray]:
    """Key ``signal`` names the label (a noisy one-hot), key ``noise`` has nothing to do with it."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=n)
    signal = np.eye(3)[labels] + 0.2 * rng.standard_normal((n, 3))
    return {"signal": signal[:, None, :], "noise": rng.standard_normal((n, 1, 5)),
            "pathology": np.array(["clean", "spurious", "dying_relu"])[labels]}


def test_the_probe_reads_the_label_from_the_key_that_carries_it_and_not_from_noise() -> None:
    train, test = synthetic(120, 0), synthetic(90, 1)
    assert np.mean(probe(train, test, ("signal",), 0) == test["pathology"]) > 0.95
    assert np.mean(probe(train, test, ("noise",), 0) == test["pathology"]) < 0.6


def test_score_pairs_the_full_observation_with_stats_alone() -> None:
    train, test = synthetic(120, 0), synthetic(90, 1)
    renamed = {"training_stats": "noise", "neurons": "noise", "diagnosis": "signal"}
    for arrays in (train, test):
        arrays.update({key: arrays[source] for key, source in renamed.items()})
    rows = score(ProbeArgs(steps=(1,)), train, test)["1"]
    assert rows["training_stats + neurons + diagnosis"]["accuracy"]["mean"] > 0.95
    assert rows["full - stats"]["low"] > 0.2  # the diagnosis carries the label, the stats do not
    assert rows["diagnosis"]["recall"]["spurious"] > 0.9


def test_saved_observations_are_reused_only_for_the_same_settings(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, int]] = []

    def fake_collect(env_id: str, instance_set: str, episodes: int, steps: object, advisor: str
                     ) -> dict[str, np.ndarray]:
        calls.append((instance_set, episodes))
        return {"training_stats": np.zeros((episodes, 1, 2), np.float32), "pathology": np.array(["clean"] * episodes)}

    monkeypatch.setattr(pathology_probe, "collect", fake_collect)
    args = ProbeArgs(steps=(1,), cache_dir=str(tmp_path))
    cached_observations(args, "test", 3)
    again = cached_observations(args, "test", 3)
    assert calls == [("test", 3)] and again["pathology"].tolist() == ["clean"] * 3
    cached_observations(args, "test", 4)
    assert calls == [("test", 3), ("test", 4)]


@pytest.mark.parametrize("steps", [(), (2, 1), (0, 1), (1, 21)])
def test_bad_steps_name_the_flag(steps: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="--steps must be"):
        ProbeArgs(steps=steps)
