"""DiagnosisChannel: observation space, layout, determinism, call policies, caches, projection, lifecycle."""

from __future__ import annotations

import json
import pickle
import time

import numpy as np
import pytest
from advisors_testkit import SCENARIOS, make_report, observe_merged
from traingym.advisors import (
    FINDINGS,
    CachedEncoder,
    Diagnosis,
    DiagnosisChannel,
    DiagnosisConfig,
    HashingEncoder,
    HeuristicAdvisor,
    MiniLMEncoder,
    RandomProjection,
)
from traingym.advisors.encoders import split_clauses
from traingym.protocol.moves import KNOBS

SEQUENCE = [SCENARIOS[name] for name in ("healthy", "overfitting", "overfitting", "plateau", "diverging",
                                         "dead_units", "shortcut", "healthy", "noisy_labels", "underfitting")]


def hashing_channel(**overrides: object) -> DiagnosisChannel:
    return DiagnosisChannel(DiagnosisConfig(**{"encoder": "hashing", **overrides}))  # type: ignore[arg-type]


@pytest.mark.parametrize("dim", [None, 16])
def test_space_contains_every_vector_and_layout_matches(dim: int | None) -> None:
    channel = hashing_channel(diagnosis_dim=dim, advisor_call="every_step")
    text_dim = 384 if dim is None else dim
    assert channel.observation_space.shape == (text_dim + len(FINDINGS) + 3 * len(KNOBS),)
    assert channel.observation_space.dtype == np.float32
    for step, report in enumerate(SEQUENCE):
        vector, info = observe_merged(channel, report, step)
        assert vector.dtype == np.float32 and np.all(np.isfinite(vector))
        assert channel.observation_space.contains(vector)
        assert np.linalg.norm(vector[channel.layout["text"]]) == pytest.approx(1.0, abs=1e-5)
        findings = vector[channel.layout["findings"]]
        assert [f.value for f, on in zip(FINDINGS, findings) if on == 1.0] == info["findings"]
        move = vector[channel.layout["move"]].reshape(len(KNOBS), 3)
        assert (move.argmax(axis=1) - 1).tolist() == info["suggested_move"] and move.sum() == len(KNOBS)
        json.dumps(info)  # JSON-able, for loggers


def test_same_report_sequence_gives_identical_vectors() -> None:
    runs = []
    for _ in range(2):
        channel = hashing_channel(diagnosis_dim=24)
        runs.append([observe_merged(channel, report, step)[0] for step, report in enumerate(SEQUENCE)])
        channel.close()
    assert all(np.array_equal(a, b) for a, b in zip(*runs))


def test_on_event_reuses_until_the_situation_changes() -> None:
    channel = hashing_channel()  # on_event is the default
    _, first = observe_merged(channel, SCENARIOS["overfitting"], 0)
    same = make_report(**{**SCENARIOS["overfitting"], "step": 6})
    _, second = observe_merged(channel, same, 1)
    assert first["called"] and not second["called"]
    assert second["findings"] == first["findings"] and second["calls"] == 1
    _, third = observe_merged(channel, SCENARIOS["diverging"], 2)
    assert third["called"] and third["findings"] == ["diverging"] and third["calls"] == 2
    spiked = json.loads(json.dumps(SCENARIOS["diverging"]))
    spiked["events"]["counts"]["loss_spike"] = 3  # one more decision-relevant event, same buckets
    _, fourth = observe_merged(channel, spiked, 3)
    assert fourth["called"] and fourth["cache_hit"]  # asked again; same decision hash, so the cache answers
    channel.reset()  # a new episode asks again (answered from the cache)
    _, after_reset = observe_merged(channel, SCENARIOS["overfitting"], 0)
    assert after_reset["called"] and after_reset["cache_hit"] and after_reset["calls"] == 2


def test_every_n_and_every_step_policies() -> None:
    channel = hashing_channel(advisor_call="every_n", advisor_every_n=3)
    called = [observe_merged(channel, SEQUENCE[step], step)[1]["called"] for step in range(7)]
    assert called == [True, False, False, True, False, False, True]
    channel = hashing_channel(advisor_call="every_step", diagnosis_cache_size=0)
    infos = [observe_merged(channel, SCENARIOS["plateau"], step)[1] for step in range(3)]
    assert all(i["called"] and not i["cache_hit"] for i in infos) and infos[-1]["calls"] == 3


def test_diagnosis_cache_hits_and_encoder_hit_rate() -> None:
    channel = hashing_channel(advisor_call="every_step")
    infos = [observe_merged(channel, SCENARIOS[name], step)[1]
             for step, name in enumerate(["overfitting", "plateau", "overfitting", "plateau"])]
    assert [i["cache_hit"] for i in infos] == [False, False, True, True]
    assert infos[-1]["calls"] == 2 and infos[-1]["cache_hits"] == 2
    assert infos[-1]["encoder_cache_hit_rate"] == pytest.approx(0.5)
    assert infos[0]["used"] == infos[2]["used"] == "heuristic"


def test_user_advisor_failure_falls_back_and_is_never_cached() -> None:
    channel = hashing_channel(advisor="advisors_testkit:BrokenAdvisor", advisor_call="every_step")
    infos = [observe_merged(channel, SCENARIOS["overfitting"], step)[1] for step in range(2)]
    assert [i["fallback_reason"] for i in infos] == ["exception:RuntimeError"] * 2
    assert infos[-1]["calls"] == 2 and infos[-1]["fallbacks"] == 2 and infos[-1]["used"] == "heuristic"
    assert infos[-1]["findings"] == ["overfitting"]
    good = hashing_channel(advisor="advisors_testkit:ConstantAdvisor")
    _, info = observe_merged(good, SCENARIOS["healthy"], 0)
    assert info["used"] == "constant" and info["suggested_move"] == [0, 1, 0, 0]


def test_projection_is_deterministic_and_seeded() -> None:
    text = "overfitting: generalisation gap 0.2-0.3 and growing"
    a = hashing_channel(diagnosis_dim=16, projection_seed=3)._encoder.encode(text)
    b = hashing_channel(diagnosis_dim=16, projection_seed=3)._encoder.encode(text)
    c = hashing_channel(diagnosis_dim=16, projection_seed=4)._encoder.encode(text)
    assert np.array_equal(a, b) and not np.allclose(a, c)
    assert a.shape == (16,) and np.linalg.norm(a) == pytest.approx(1.0, abs=1e-6)


def test_hashing_encoder_is_stable_and_bounded() -> None:
    encoder = HashingEncoder()
    vector = encoder.encode("plateau: validation loss flat")
    assert vector.dtype == np.float32 and vector.shape == (384,)
    assert np.array_equal(vector, HashingEncoder().encode("plateau: validation loss flat"))
    assert not np.any(encoder.encode(""))  # empty text -> zero vector, still in the space


def test_close_is_idempotent_and_final() -> None:
    channel = hashing_channel()
    observe_merged(channel, SCENARIOS["healthy"], 0)
    channel.close()
    channel.close()
    with pytest.raises(RuntimeError, match="closed"):
        observe_merged(channel, SCENARIOS["healthy"], 1)


def test_minilm_channel_encodes_meaningfully() -> None:
    channel = DiagnosisChannel(DiagnosisConfig(encoder="minilm", advisor_call="every_step"))
    vector, _ = observe_merged(channel, SCENARIOS["overfitting"], 0)
    assert vector.shape == (384 + len(FINDINGS) + 12,) and channel.observation_space.contains(vector)
    encoder = MiniLMEncoder()
    over_a = encoder.encode("overfitting: generalisation gap 0.2-0.3 and growing")
    over_b = encoder.encode("the model overfits: the gap between train and validation accuracy grows")
    healthy = encoder.encode("healthy: validation accuracy 0.8-0.9 and improving")
    assert float(over_a @ over_b) > float(over_a @ healthy)
    projected = DiagnosisChannel(DiagnosisConfig(encoder="minilm", diagnosis_dim=32))
    assert observe_merged(projected, SCENARIOS["overfitting"], 0)[0].shape == (32 + len(FINDINGS) + 12,)


def test_minilm_encoder_cache_hits_on_repeated_texts() -> None:
    channel = DiagnosisChannel(DiagnosisConfig(encoder="minilm"))
    encoder = channel._encoder
    texts = [f"plateau: validation accuracy flat for {i} steps" for i in range(10)]
    first = [encoder.encode(text) for text in texts]
    assert encoder.hit_rate == 0.0
    for text, vector in zip(texts, first):
        np.testing.assert_array_equal(encoder.encode(text), vector)
    assert encoder.hit_rate == pytest.approx(0.5)


class SleepingAdvisor:
    """A user advisor that takes ``SLEEP_S`` per diagnosis (stands in for a slow LLM)."""

    name = "sleeping"
    SLEEP_S = 0.05

    def __init__(self) -> None:
        self.calls = 0

    def diagnose(self, report: dict) -> Diagnosis:
        self.calls += 1
        time.sleep(self.SLEEP_S)
        return HeuristicAdvisor().diagnose(report)


def observe_info(channel: DiagnosisChannel, report: dict, step: int) -> dict:
    """The info of one observation, accounting included (whatever the number of dicts ``observe`` returns)."""
    _, *parts = channel.observe(report, step)
    return {k: v for part in parts for k, v in part.items()}


def test_latency_ms_counts_the_advisor_call_and_a_cache_hit_skips_it() -> None:
    advisor = SleepingAdvisor()
    channel = DiagnosisChannel(DiagnosisConfig(advisor=advisor, encoder="hashing"))  # on_event: call on changes
    info = observe_info(channel, SCENARIOS["plateau"], 0)
    assert info["called"] and not info["cache_hit"] and info["used"] == "sleeping" and advisor.calls == 1
    assert info["latency_ms"] >= 1000 * SleepingAdvisor.SLEEP_S
    info = observe_info(channel, SCENARIOS["overfitting"], 1)
    assert info["called"] and advisor.calls == 2 and info["latency_ms"] >= 1000 * SleepingAdvisor.SLEEP_S
    info = observe_info(channel, SCENARIOS["plateau"], 2)  # a change back: the diagnosis cache answers
    assert info["called"] and info["cache_hit"] and advisor.calls == 2
    assert info["latency_ms"] >= 0.0 and np.isfinite(info["latency_ms"])
    channel.close()


def test_clause_cache_pools_shared_clauses_and_counts_clause_hits() -> None:
    assert split_clauses("a: x 0.2-0.3 and growing; suggest more weight decay.") == (
        "a: x 0.2-0.3 and growing", "suggest more weight decay")
    assert split_clauses("plateau: flat for 4 steps") == ("plateau: flat for 4 steps",)
    assert split_clauses(" ;. ") == (" ;. ",)
    base = HashingEncoder(dim=64)
    encoder = CachedEncoder(base, maxsize=8)
    first = encoder.encode("diverging: loss spike; suggest a lower learning rate.")
    assert encoder.cache_info()[:2] == (0, 2)
    second = encoder.encode("dead units in fc1; suggest a lower learning rate.")
    assert encoder.cache_info()[:2] == (1, 3) and encoder.hit_rate == pytest.approx(0.25)
    expected = base.encode("dead units in fc1") + base.encode("suggest a lower learning rate")
    np.testing.assert_allclose(second, expected / np.linalg.norm(expected), atol=1e-6)
    assert not first.flags.writeable and np.linalg.norm(first) == pytest.approx(1.0, abs=1e-5)
    single = "plateau: validation accuracy flat for 4 steps"
    np.testing.assert_array_equal(encoder.encode(single), base.encode(single))
    encoder.encode("diverging: loss spike; suggest a lower learning rate.")  # whole-text memo: 2 clause hits
    assert encoder.cache_info()[:2] == (3, 4)


def test_clause_cache_is_deterministic_projects_after_pooling_and_pickles() -> None:
    text = "overfitting: gap 0.2-0.3 and growing; suggest more weight decay and more augmentation."
    projection = RandomProjection(HashingEncoder(dim=64), dim=16, seed=3)
    encoder = CachedEncoder(projection, maxsize=0)  # no caching: every lookup recomputes
    vector = encoder.encode(text)
    assert encoder.dim == vector.shape[0] == 16 and encoder.hit_rate == 0.0
    pooled = CachedEncoder(projection.encoder).encode(text)
    np.testing.assert_array_equal(vector, projection.project(pooled))
    np.testing.assert_array_equal(encoder.encode(text), vector)
    clone = pickle.loads(pickle.dumps(CachedEncoder(projection, maxsize=4)))
    np.testing.assert_array_equal(clone.encode(text), vector)
    assert clone.cache_info() == (0, 2, 4, 2)


def test_on_event_channel_runs_the_heuristic_once_per_observe(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    original = HeuristicAdvisor.diagnose_normalized

    def counting(self: HeuristicAdvisor, report: dict) -> object:
        calls.append(1)
        return original(self, report)

    monkeypatch.setattr(HeuristicAdvisor, "diagnose_normalized", counting)
    channel = hashing_channel(advisor_call="on_event", diagnosis_cache_size=0)
    for step, report in enumerate(SEQUENCE):
        _, info = observe_merged(channel, report, step)
        assert len(calls) == step + 1 and info["used"] == "heuristic"
