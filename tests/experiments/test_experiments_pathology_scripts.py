"""The pathology-mixture experiments: scoring rules against hand-computed cases, and their arguments."""

from __future__ import annotations

import pytest
from traingym.experiments.diagnosis_accuracy import AccuracyArgs, episode_diagnosis, named_pathology, score
from traingym.experiments.information_gap import GapArgs, gap_table
from traingym.experiments.pathology_probe import ProbeArgs
from traingym.experiments.shortcut_detection import DetectionArgs


def test_the_episode_diagnosis_is_what_the_second_half_says_on_half_of_its_steps() -> None:
    steps = [["overfitting"]] * 10 + [["shortcut_features"]] * 6 + [["healthy"]] * 4
    assert episode_diagnosis(steps) == {"shortcut_features"}  # 6 of 10: in; early overfitting: out
    steps = [["healthy"]] * 10 + [["noisy_labels"]] * 4 + [["healthy"]] * 6
    assert episode_diagnosis(steps) == {"healthy"}  # 4 of 10: not settled
    assert named_pathology({"shortcut_features", "overfitting"}) == {"spurious", "small_data"}
    assert named_pathology({"plateau"}) == {"clean"}


def test_score_by_hand() -> None:
    truth = ["spurious", "spurious", "clean", "label_noise", "small_data", "dying_relu"]
    named = [{"spurious"}, {"clean"}, {"spurious"}, {"label_noise"}, {"small_data"}, {"dying_relu"}]
    result = score(truth, named)
    spurious = result["per_pathology"]["spurious"]
    assert (spurious["precision"], spurious["recall"]) == (0.5, 0.5)
    clean = result["per_pathology"]["clean"]
    assert (clean["precision"], clean["recall"]) == (0.0, 0.0)
    assert result["macro_f1"] == pytest.approx((0.5 + 0.0 + 1 + 1 + 1) / 5)


def test_gap_table_pairs_each_policy_with_the_reference() -> None:
    from traingym.agents.episodes import EpisodeResult

    def episodes(label: str, accuracies: list[float]) -> list[EpisodeResult]:
        return [EpisodeResult(label, i, i, a, a, False, 20, 0.0, 0.1) for i, a in enumerate(accuracies)]

    results = {"steer": episodes("steer", [0.8, 0.9, 0.7]), "aware": episodes("aware", [0.9, 0.9, 0.8])}
    table, data = gap_table(results, "steer", ["spurious", "clean", "spurious"])
    assert data["aware"]["diff"]["mean"] == pytest.approx(0.2 / 3)
    assert data["aware"]["per_pathology"] == {"clean": pytest.approx(0.9), "spurious": pytest.approx(0.85)}
    assert "Instances per pathology: clean: 1, spurious: 2." in table


@pytest.mark.parametrize("args", [GapArgs, DetectionArgs, AccuracyArgs, ProbeArgs])
def test_bad_arguments_name_the_flag(args: type) -> None:
    with pytest.raises(ValueError, match=r"--episodes must be in \[1, 128\]"):
        args(episodes=0)
    with pytest.raises(ValueError, match="--env must be a registered id"):
        args(env="TrainGym/Nope-v0")


def test_gap_variants_tune_on_train_instances_only() -> None:
    with pytest.raises(ValueError, match="--instance-set train"):
        GapArgs(variants=True, instance_set="test")


def test_a_page_keeps_the_sections_other_runs_wrote(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages that gather several runs (train and test rows, tuning and held-out tables, several advisors) read the
    earlier runs' data back from the JSON that write_result wrapped."""
    from pathlib import Path

    import traingym.experiments.results as results
    from traingym.experiments import shortcut_detection

    monkeypatch.setattr(results, "RESULTS_DIR", Path(str(tmp_path)))
    rates = {p: {"episodes": 1, "any_flag": 0.0, "first_planted": 0.0, "planted_flagged": 0.0}
             for p in ("clean", "spurious")}
    monkeypatch.setattr(shortcut_detection, "detection_rates", lambda env, which, indices: rates)
    shortcut_detection.main(["--instance-set", "train", "--episodes", "1", "--write"])
    shortcut_detection.main(["--instance-set", "test", "--episodes", "1", "--write"])
    assert set(results.stored_data("input_relevance")["instance_sets"]) == {"train", "test"}
    page = (Path(str(tmp_path)) / "input_relevance.md").read_text()
    assert "## train instances" in page and "## test instances" in page
