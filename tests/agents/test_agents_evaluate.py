"""Paired evaluation: reproducibility, statistics, output files, the trajectory export and the CLI."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from traingym.agents.episodes import EpisodeSettings
from traingym.agents.evaluate import evaluate, run_evaluation, summarize
from traingym.agents.policies import PolicySpec
from traingym.agents.stats import bootstrap_mean, paired_difference
from traingym.agents.trajectories import SCHEMA_VERSION, read_trajectories

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"
SETTINGS = EpisodeSettings("TrainGym/DigitsMLP-v0", horizon=3, steps_per_action=5, instance_indices=(0, 1, 2))
SPECS = [PolicySpec("keep", "keep"), PolicySpec("random", "random", seed=1)]


def _numbers(results: dict) -> dict:
    return {label: [(e.instance_index, e.test_accuracy, e.val_auc, e.diverged, e.moves) for e in episodes]
            for label, episodes in results.items()}


def test_same_policies_and_seeds_give_identical_numbers_serial_and_parallel() -> None:
    first = evaluate(SPECS, SETTINGS, workers=1)
    assert _numbers(first) == _numbers(evaluate(SPECS, SETTINGS, workers=1))
    assert _numbers(first) == _numbers(evaluate(SPECS, SETTINGS, workers=2))
    summaries = summarize(first, "keep", seed=0)
    assert summaries == summarize(evaluate(SPECS, SETTINGS, workers=1), "keep", seed=0)
    assert [e.instance_index for e in first["keep"]] == [0, 1, 2]


def test_paired_difference_is_relative_to_the_reference() -> None:
    results = evaluate(SPECS, SETTINGS)
    keep, random = summarize(results, "keep")
    assert keep.diff_vs_reference is None
    expected = np.mean([r.test_accuracy - k.test_accuracy for r, k in zip(results["random"], results["keep"])])
    assert random.diff_vs_reference is not None
    assert random.diff_vs_reference.mean == pytest.approx(expected)


def test_bootstrap_is_seeded_and_brackets_the_mean() -> None:
    values = np.random.default_rng(0).normal(0.7, 0.1, size=50)
    ci = bootstrap_mean(values, seed=3)
    assert ci == bootstrap_mean(values, seed=3)
    assert ci.low < ci.mean < ci.high and ci.mean == pytest.approx(values.mean())
    assert paired_difference(values, values).mean == 0.0
    with pytest.raises(ValueError, match="equal shapes"):
        paired_difference(values, values[:3])


def test_outputs_plots_and_trajectory_export(tmp_path: Path) -> None:
    settings = EpisodeSettings("TrainGym/DigitsMLP-v0", 3, 5, (0, 1), record_trajectories=True)
    export = tmp_path / "traj.jsonl"
    results, _ = run_evaluation(SPECS, settings, tmp_path, "keep", workers=1, export_trajectories=str(export))
    for name in ("eval.csv", "eval.json", "episodes.jsonl"):
        assert (tmp_path / name).stat().st_size > 0
    for name in ("eval.png", "hparam_trajectories.png", "move_frequencies.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG
    table = json.loads((tmp_path / "eval.json").read_text())
    assert [row["policy"] for row in table["summary"]] == ["keep", "random"]
    records = read_trajectories(export)
    assert len(records) == 2 * 2 * 3  # policies x instances x steps
    first = records[0]
    assert first["schema_version"] == SCHEMA_VERSION and first["policy"] == "keep" and first["step"] == 0
    assert first["report"]["schema_version"] == 1 and "hparams" in first["report"]
    assert first["move"] == [0, 0, 0, 0] and first["diagnosis"] is None
    episode = results["keep"][0]
    assert first["outcome"]["final_test_accuracy"] == pytest.approx(episode.test_accuracy)
    assert sum(r["reward"] for r in records[:3]) == pytest.approx(episode.episode_return)


@pytest.mark.skipif(importlib.util.find_spec("traingym.envs.diagnosis") is None,
                    reason="the diagnosis observation key (traingym.envs.diagnosis) is not installed yet")
def test_advisor_greedy_takes_the_advisors_suggested_moves(tmp_path: Path) -> None:
    settings = EpisodeSettings("TrainGym/DigitsMLP-v0", 3, 5, (0, 1), advisor="heuristic", record_trajectories=True)
    results = evaluate([PolicySpec("advisor_greedy", "advisor_greedy")], settings)
    from traingym.agents.trajectories import episode_records

    records = [r for e in results["advisor_greedy"] for r in episode_records(e, settings.env_id)]
    assert records and all(r["diagnosis"] is not None for r in records)
    assert all(r["move"] == list(r["diagnosis"]["suggested_move"]) for r in records)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "traingym.agents.evaluate", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.parametrize("args", [["--policies", "nope"], ["--episodes", "0"],
                                  ["--policies", "keep", "--reference", "random"], ["--agent-model", "worst"]])
def test_cli_rejects_bad_arguments_without_traceback(args: list[str]) -> None:
    proc = _cli(*args)
    assert proc.returncode == 2 and "error:" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_smoke(tmp_path: Path) -> None:
    proc = _cli("--policies", "keep", "step_decay", "--episodes", "2", "--horizon", "3", "--steps-per-action", "5",
                "--workers", "1", "--out-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "step_decay" in proc.stdout
    assert (tmp_path / "eval.png").read_bytes()[:8] == PNG
