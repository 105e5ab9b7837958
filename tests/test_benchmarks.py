"""The benchmark suite's smoke mode: the documented command runs and writes well-formed figures.

No timing assertions: the smoke run uses tiny repetitions on a shared machine; only the shape of the JSON, the
types and ranges of the figures, and the bare loop's bookkeeping are checked.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.run import FIGURES, TARGETS, evaluate_targets  # noqa: E402
from benchmarks.step_overhead import COMPONENTS, FAMILIES  # noqa: E402


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
        assert entry["ratio_p25"] <= entry["ratio"] <= entry["ratio_p75"]
        assert entry["reps"] >= 2 and entry["hparams_match"] is True
        assert list(entry["components"]) == list(COMPONENTS)
        for name, value in entry["components"].items():
            assert value is None or math.isfinite(value), (family, name)
        # Components are fractions of the bare step that add up to the overhead (medians: approximately).
        parts = sum(v for v in entry["components"].values() if v is not None)
        assert parts == pytest.approx(entry["ratio"] - 1, abs=0.5 * entry["ratio"])
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
    targets = smoke[0]["targets"]
    assert set(targets) == {name for name, _, _ in TARGETS}
    for name, entry in targets.items():
        assert entry["met"] is None if entry["value"] is None else isinstance(entry["met"], bool), name


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
