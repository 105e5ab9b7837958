"""The ablation grid (smoke preset) and the good-defaults sweep."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from traingym.agents.baselines import make_baseline
from traingym.agents.tuned_defaults import tuned_defaults
from traingym.agents.tuning import sweep
from traingym.experiments.ablate import AblateArgs, cell_name

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"


def test_ablate_smoke_preset_writes_table_and_plot(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "traingym.experiments.ablate", "--preset", "smoke", "--out-dir",
                           str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((tmp_path / "ablation.json").read_text())["rows"]
    assert [r["cell"] for r in rows] == ["training_stats", "training_stats+neurons"]
    episodes = json.loads((tmp_path / "eval" / "eval.json").read_text())["episodes"]
    keep = np.array([e["test_accuracy"] for e in episodes["keep"]])
    for row in rows:  # one seed: the row is that agent's paired evaluation against keep
        agent = np.array([e["test_accuracy"] for e in episodes[f"{row['cell']}-seed0"]])
        assert row["episodes"] == agent.size == keep.size == 3
        assert row["test_accuracy"] == pytest.approx(agent.mean())
        assert row["diff_vs_keep"] == pytest.approx((agent - keep).mean())
    assert (tmp_path / "ablation.csv").exists() and (tmp_path / "eval" / "eval.csv").exists()
    assert (tmp_path / "ablation.png").read_bytes()[:8] == PNG
    assert "Ablation" in proc.stdout


def test_advisor_only_varies_where_the_diagnosis_key_is() -> None:
    args = AblateArgs(obs_key_sets=("training_stats", "training_stats+diagnosis"), advisors=("heuristic", "smollm"))
    assert [cell_name(*c) for c in args.cells()] == [
        "training_stats", "training_stats+diagnosis@heuristic", "training_stats+diagnosis@smollm"]
    with pytest.raises(ValueError, match="--obs-key-sets"):
        AblateArgs(obs_key_sets=("training_stats+bogus",))


def test_ablate_takes_a_users_family_on_custom_only() -> None:
    from traingym.envs.custom import EXAMPLE_TASK

    assert AblateArgs(env="TrainGym/Custom-v0", task=EXAMPLE_TASK).task == EXAMPLE_TASK
    with pytest.raises(ValueError, match="--task picks the family of --env TrainGym/Custom-v0"):
        AblateArgs(task=EXAMPLE_TASK)
    with pytest.raises(ValueError, match="cannot import task family"):
        AblateArgs(env="TrainGym/Custom-v0", task="no_such_pkg.tasks:Fam")


def test_good_defaults_sweep_ranks_a_working_lr_above_a_useless_one() -> None:
    """Grid points override the instance's hyperparameters: LR 1e-4 barely moves the net in 40 SGD steps, 0.1
    trains it, so 0.1 must come first (listed second in the grid, so the ranking is the sweep's doing)."""
    rows = sweep("TrainGym/DigitsMLP-v0", n_instances=1, horizon=2, steps_per_action=20, workers=1,
                 grid={"lr": (1e-4, 0.1), "weight_decay": (1e-4,), "aug_level": (0,)})
    assert [r["lr"] for r in rows] == [0.1, 1e-4]
    assert rows[0]["val_accuracy"] > rows[1]["val_accuracy"] + 0.1


def test_good_defaults_policy_overrides_only_the_tuned_hyperparameters() -> None:
    policy = make_baseline("good_defaults", "TrainGym/DigitsMLP-v0")
    instance = {"family": "digits_mlp", "split_seed": 7, "depth": 2, "width": 32, "lr": 1e-4,
                "weight_decay": 1e-7, "aug_level": 4, "label_noise": 0.2}
    tuned = tuned_defaults("TrainGym/DigitsMLP-v0")
    assert policy.override_instance(dict(instance)) == {**instance, **tuned}
    with pytest.raises(ValueError, match="no tuned defaults"):
        tuned_defaults("TrainGym/NoSuch-v0")


def test_every_registered_family_has_tuned_defaults_for_steer_and_good_defaults() -> None:
    from traingym.envs import ENV_TASKS

    for env_id in ENV_TASKS:
        tuned = tuned_defaults(env_id)
        assert tuned["lr"] > 0 and tuned["weight_decay"] > 0 and tuned["aug_level"] >= 0
        assert make_baseline("steer", env_id).target == tuned
        assert make_baseline("good_defaults", env_id).hparams == tuned


def test_sweep_grid_follows_the_env_optimizer_and_store_keeps_other_envs(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from traingym.agents import tuned_defaults as table
    from traingym.agents.tuning import env_optimizer
    from traingym.experiments import good_defaults

    assert env_optimizer("TrainGym/ReviewsBERT-v0") == "adam"
    assert env_optimizer("TrainGym/DigitsCNN-v0") == "sgd"
    path = tmp_path / "tuned.json"
    path.write_text(json.dumps({"TrainGym/Other-v0": {"lr": 1.0, "weight_decay": 1.0, "aug_level": 1}}))
    monkeypatch.setattr(table, "TUNED_DEFAULTS_PATH", path)
    table._tuned_table.cache_clear()
    try:
        table.store_tuned("TrainGym/DigitsMLP-v0", {"lr": 0.03, "weight_decay": 1e-4, "aug_level": 1,
                                                            "val_accuracy": 0.91234}, {"n_instances": 3})
        assert tuned_defaults("TrainGym/DigitsMLP-v0") == {"lr": 0.03, "weight_decay": 1e-4, "aug_level": 1}
        stored = json.loads(path.read_text())
        assert stored["TrainGym/Other-v0"]["lr"] == 1.0
        assert stored["TrainGym/DigitsMLP-v0"]["sweep"] == {"n_instances": 3, "val_accuracy": 0.9123}
    finally:
        table._tuned_table.cache_clear()
    with pytest.raises(ValueError, match="--env"):
        good_defaults.SweepArgs(env="CartPole-v1")
