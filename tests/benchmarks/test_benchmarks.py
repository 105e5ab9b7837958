"""The benchmark suite: its own arithmetic on controlled inputs, and the smoke command's well-formed output.

No timing assertions: the machine's speed is what the benchmarks measure, not what the tests check. The logic
that turns timings into figures (component breakdown, per-repetition ratio, quartiles, target decisions) is
tested on made-up timings with known answers; the smoke run only checks the shape of the JSON it writes.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.run import FIGURES, TARGETS, evaluate_targets, page, targets_table  # noqa: E402
from benchmarks.step_overhead import COMPONENTS, FAMILIES, _Block, components  # noqa: E402
from benchmarks.timing import median, quartiles  # noqa: E402


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("bench") / "smoke.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--smoke", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(out.read_text()), proc.stdout


def test_smoke_writes_the_printed_json(smoke: tuple[dict, str]) -> None:
    result, stdout = smoke
    assert json.loads(stdout) == result
    assert result["schema_version"] == 1 and result["mode"] == "smoke"
    assert set(result["figures"]) == set(FIGURES)
    assert _positive(result["elapsed_s"]) and result["machine"]["torch_threads"] == 1


def test_step_overhead_figures_are_well_formed(smoke: tuple[dict, str]) -> None:
    figure = smoke[0]["figures"]["step_overhead"]
    assert list(figure) == list(FAMILIES)
    measured = 0
    for family, entry in figure.items():
        if entry["ratio"] is None:
            assert isinstance(entry["reason"], str) and entry["reason"], family
            continue
        measured += 1
        assert _positive(entry["ratio"]) and _positive(entry["env_ms"]) and _positive(entry["bare_ms"])
        assert _positive(entry["ratio_p25"]) and _positive(entry["ratio_p75"])
        assert entry["reps"] >= 2 and entry["hparams_match"] is True
        assert list(entry["components"]) == list(COMPONENTS)
        for name, value in entry["components"].items():
            assert value is None or math.isfinite(value), (family, name)
        assert entry["encoder_hit_rate"] is None or 0 <= entry["encoder_hit_rate"] <= 1
    assert measured >= 4  # the four families registered from the start


def test_other_figures_are_well_formed(smoke: tuple[dict, str]) -> None:
    figures = smoke[0]["figures"]
    for family, entry in figures["reset_ms"].items():
        if entry["median_ms"] is None:
            assert entry["reason"], family
            continue
        assert _positive(entry["median_ms"]) and _positive(entry["first_reset_ms"])
        assert entry["data_cached"] is True
    vec = figures["vec_scaling"]
    assert _positive(vec["ratio"]) and _positive(vec["steps_per_s_1"]) and _positive(vec["steps_per_s_2"])
    assert vec["n_envs"] == 2
    for share in (vec["cpu_share_1"], vec["cpu_share_2"], vec["cpu_efficiency"]):
        assert share is None or share >= 0  # (10 ms CPU ticks: no upper bound on the smoke run's tiny blocks)
    cache = figures["encoder_cache_hit_rate"]
    if cache["value"] is None:
        assert cache["reason"]
    else:
        assert 0 <= cache["value"] <= 1 and cache["lookups"] >= cache["distinct_texts"] >= 1
    ppo = figures["ppo_fps"]
    assert _positive(ppo["fps"]) and _positive(ppo["env_steps_per_s"]) and ppo["total_timesteps"] >= 32
    assert 0 < ppo["env_time_fraction"] <= 1


def test_targets_are_reported_for_every_measured_figure(smoke: tuple[dict, str]) -> None:
    result = smoke[0]
    assert set(result["targets"]) == {name for name, _, _ in TARGETS}
    figures = result["figures"]
    written = {  # each target's value read by hand from where its figure is written, not by the code under test
        "step_overhead.digits_mlp": figures["step_overhead"]["digits_mlp"]["ratio"],
        "step_overhead.digits_cnn": figures["step_overhead"]["digits_cnn"]["ratio"],
        "step_overhead.reviews_bert": figures["step_overhead"]["reviews_bert"]["ratio"],
        "reset_ms.digits_mlp": figures["reset_ms"]["digits_mlp"]["median_ms"],
        "reset_ms.digits_cnn": figures["reset_ms"]["digits_cnn"]["median_ms"],
        "vec_scaling": figures["vec_scaling"]["ratio"],
        "batched_env.speedup_n16": figures["batched_env"].get("speedup_n16", {}).get("speedup"),
        "encoder_cache_hit_rate": figures["encoder_cache_hit_rate"]["value"],
    }
    assert {name: t["value"] for name, t in result["targets"].items()} == written


MADE_UP_FIGURES = {
    "step_overhead": {"digits_mlp": {"ratio": 1.10}, "digits_cnn": {"ratio": 1.11},
                      "reviews_bert": {"ratio": None, "reason": "not measured"}},
    "reset_ms": {"digits_mlp": {"median_ms": 19.5}, "digits_cnn": {"median_ms": 20.5}},
    "vec_scaling": {"ratio": 1.6},
    "batched_env": {"speedup_n16": {"speedup": 4.99}},
    "encoder_cache_hit_rate": {"value": 0.97},
}
"""Figures at and around each target's bound (the values the docs/results page lists as targets)."""


def test_target_decisions_on_made_up_figures() -> None:
    decisions = evaluate_targets(MADE_UP_FIGURES)
    assert {name: (d["target"], d["met"]) for name, d in decisions.items()} == {
        "step_overhead.digits_mlp": ("<= 1.1", True),  # on the bound: met
        "step_overhead.digits_cnn": ("<= 1.1", False),
        "step_overhead.reviews_bert": ("<= 1.2", None),  # not measured: neither met nor missed
        "reset_ms.digits_mlp": ("<= 20", True),
        "reset_ms.digits_cnn": ("<= 20", False),
        "vec_scaling": (">= 1.6", True),
        "batched_env.speedup_n16": (">= 5", False),
        "encoder_cache_hit_rate": (">= 0.95", True),
    }
    assert decisions["reset_ms.digits_cnn"]["value"] == 20.5
    assert "vec_scaling" not in evaluate_targets({k: v for k, v in MADE_UP_FIGURES.items() if k != "vec_scaling"})


def test_the_page_shows_the_targets_and_the_batched_ceiling_when_measured(smoke: tuple[dict, str]) -> None:
    result = smoke[0]
    assert "ceiling" not in result["figures"]["batched_env"]  # the smoke run has no N=16 in 2 workers
    assert page(result).startswith(targets_table(result["targets"])) and "ceiling" not in page(result)
    batched = {**result["figures"]["batched_env"],
               "ceiling": {"n": 16, "workers": 2, "sub_envs_per_worker": 8, "speedup_vs_subproc2": 4.5}}
    with_ceiling = {**result, "figures": {**result["figures"], "batched_env": batched}}
    assert "Training-only ceiling of the batched env (N=16 in 2 workers" in page(with_ceiling)
    assert "4.5x SubprocVecEnv(2)" in page(with_ceiling)


PHASES = {"train": 10.0, "log_training": 2.0, "moves": 1.0, "log_errors": 0.5, "features": 0.25,
          "events_detect": 0.125, "events_end": 0.0625, "report": 0.375, "channel": 0.75, "encoder": 0.5,
          "relevance": 0.0, "validate": 3.0, "observe": 2.0, "encoder_miss": 0.25}
"""Made-up phase seconds of one env step (binary fractions: the arithmetic is exact)."""
BARE = SimpleNamespace(train_s=5.0, val_s=1.0, test_s=0.5)
"""The bare loop's seconds for the same step."""


def test_components_split_the_overhead_exactly() -> None:
    parts = components(PHASES, 20.0, BARE)  # type: ignore[arg-type]
    assert parts == {
        "train_loop": 10.0 - 2.0 - 5.0,  # the env's train phase minus its logging minus the bare loop's training
        "moves": 1.0,
        "neuron_log": 2.0 + 0.5 + 0.25,
        "events": 0.125 + 0.0625,
        "report": 0.375,
        "advisor": 0.75 - 0.5,  # the channel minus its encoder
        "encoder": 0.5,
        "relevance": 0.0,
        "validation": 3.0 - 0.5 - 0.125 - 1.0,  # error pass and event detection run inside validation
        "observation": 2.0 - 0.25 - 0.375 - 0.75,  # features, report and channel run inside the observation
        "other": 20.0 - 6.5 - 10.0625,  # the rest: 13.5 minus the ten parts above
    }
    assert set(parts) == set(COMPONENTS)
    assert sum(parts.values()) == 20.0 - 6.5  # env step minus the bare step


def test_a_repetition_ratio_is_summed_env_time_over_summed_bare_time() -> None:
    block = _Block()
    block.add(20.0, PHASES, BARE)  # type: ignore[arg-type]
    block.add(7.0, {}, SimpleNamespace(train_s=1.5, val_s=0.5, test_s=0.0))  # type: ignore[arg-type]
    assert (block.steps, block.env_s, block.bare_s, block.miss_s) == (2, 27.0, 8.5, 0.25)
    assert block.env_s / block.bare_s == pytest.approx(27.0 / 8.5)  # not the mean of the per-step ratios
    assert sum(block.parts.values()) == block.env_s - block.bare_s
    assert block.parts["other"] == (20.0 - 6.5 - 10.0625) + (7.0 - 2.0 + 1.5 + 0.5)


def test_median_and_quartiles_of_known_ratios() -> None:
    ratios = [1.4, 1.0, 1.2, 1.1, 1.3]
    assert median(ratios) == 1.2 and quartiles(ratios) == pytest.approx((1.1, 1.3))
    assert median([1.0, 2.0]) == 1.5 and quartiles([1.0, 2.0]) == (1.25, 1.75)
    assert median([]) is None and quartiles([1.0]) == (None, None)


@pytest.mark.parametrize(("name", "op", "bound"), TARGETS)
def test_a_target_is_met_at_its_bound_and_missed_just_past_it(name: str, op: str, bound: float) -> None:
    figure, _, family = name.partition(".")

    def decision(value: float) -> bool | None:
        entry = {"value": value}
        return evaluate_targets({figure: {family: entry} if family else entry})[name]["met"]

    worse = bound * 1.01 if op == "<=" else bound * 0.99
    better = bound * 0.99 if op == "<=" else bound * 1.01
    assert (decision(bound), decision(better), decision(worse)) == (True, True, False)


def test_evaluate_targets_compares_in_the_right_direction() -> None:
    figures = {"step_overhead": {"digits_mlp": {"ratio": 1.05}, "digits_cnn": {"ratio": 1.3},
                                 "reviews_bert": {"ratio": None, "reason": "not registered"}},
               "vec_scaling": {"ratio": 1.7}}
    targets = evaluate_targets(figures)
    assert targets["step_overhead.digits_mlp"]["met"] is True
    assert targets["step_overhead.digits_cnn"]["met"] is False
    assert targets["step_overhead.reviews_bert"]["met"] is None
    assert targets["vec_scaling"] == {"value": 1.7, "target": ">= 1.6", "met": True}
    assert "reset_ms.digits_mlp" not in targets  # figure not measured: no target entry


def test_targets_table_says_met_not_met_and_not_measured() -> None:
    from benchmarks.run import targets_table

    table = targets_table({"a": {"value": 1.0, "target": "<= 1.1", "met": True},
                           "b": {"value": 2.0, "target": ">= 5", "met": False},
                           "c": {"value": None, "target": "<= 20", "met": None}}).splitlines()
    assert table[2:] == ["| a | 1.0 | <= 1.1 | met |", "| b | 2.0 | >= 5 | **not met** |",
                         "| c | None | <= 20 | not measured |"]
