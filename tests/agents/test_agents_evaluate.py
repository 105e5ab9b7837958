"""Paired evaluation: reproducibility, statistics, output files, the trajectory export and the CLI."""

from __future__ import annotations

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
from traingym.protocol.trajectory_format import SCHEMA_VERSION, read_trajectories

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
    with pytest.raises(ValueError, match="equal shapes"):
        paired_difference(values, values[:3])


def test_bootstrap_percentiles_of_a_hand_computable_case() -> None:
    """Two values 0 and 1: a resample's mean is 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4, so the 2.5% and
    97.5% percentiles are 0 and 1, and the 30% and 70% percentiles (a 40% interval) are both 0.5."""
    ci = bootstrap_mean([0.0, 1.0], seed=0, n_boot=20_000)
    assert (ci.mean, ci.low, ci.high) == (0.5, 0.0, 1.0)
    half = bootstrap_mean([0.0, 1.0], seed=0, n_boot=20_000, confidence=0.4)  # 30%..70% percentiles
    assert (half.low, half.high) == (0.5, 0.5)


def test_bootstrap_interval_covers_a_known_mean_at_its_nominal_rate() -> None:
    """200 synthetic samples of 40 draws with mean 0.3: the 95% interval must contain 0.3 in about 95% of them
    (percentile bootstrap is slightly anti-conservative at n=40; 88%..99% allows for the 200-sample noise)."""
    rng = np.random.default_rng(1)
    covered = [ci.low <= 0.3 <= ci.high for ci in (bootstrap_mean(rng.normal(0.3, 0.2, size=40), seed=i,
                                                                  n_boot=2000) for i in range(200))]
    assert 0.88 <= np.mean(covered) <= 0.99
    narrow = bootstrap_mean(rng.normal(0.3, 0.2, size=40), seed=0, n_boot=2000, confidence=0.5)
    wide = bootstrap_mean(rng.normal(0.3, 0.2, size=40), seed=0, n_boot=2000, confidence=0.99)
    assert narrow.high - narrow.low < wide.high - wide.low


def test_paired_difference_removes_the_shared_instance_effect() -> None:
    """Instance difficulty varies a lot (sd 0.2) but the method adds exactly 0.05 +- 0.005: the paired interval is
    tight around 0.05, while the unpaired intervals of the two methods overlap."""
    rng = np.random.default_rng(2)
    reference = rng.normal(0.6, 0.2, size=30)
    values = reference + 0.05 + rng.normal(0.0, 0.005, size=30)
    diff = paired_difference(values, reference, seed=0)
    assert diff.mean == pytest.approx(float(np.mean(values - reference)))
    assert 0.045 < diff.low < diff.mean < diff.high < 0.055
    a, b = bootstrap_mean(values, seed=0), bootstrap_mean(reference, seed=0)
    assert a.low < b.high  # unpaired, the 0.05 gain is lost in the instance spread


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


def test_a_policy_overriding_the_instance_plays_the_same_draw_on_sampled_instances() -> None:
    from traingym.agents.baselines import GoodDefaultsPolicy
    from traingym.agents.episodes import make_policy_env, run_episode

    class Spy(GoodDefaultsPolicy):
        def override_instance(self, instance: dict) -> dict:
            self.seen = dict(instance)
            return super().override_instance(instance)

    spy = Spy(lr=0.05, weight_decay=1e-4, aug_level=0)
    settings = EpisodeSettings("TrainGym/DigitsPathologies-v0", 1, 2, (3,), instance_set="sampled")
    env = make_policy_env(spy, settings)
    try:
        result = run_episode(spy, env, "spy", 3, 3, horizon=1)
        drawn = env.reset(seed=3, options={"instance_index": 3})[1]["instance"]  # what every other policy plays
    finally:
        env.close()
    assert spy.seen == drawn and result.lr[0] == 0.05
