"""train_agent.py on TrainGym/Custom-v0: the steer / good_defaults baselines of a family without tuned defaults
are tuned (a short sweep, cached) or left out with one line, never a traceback after training; --task is checked
before training."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from traingym.agents.tuned_defaults import TUNED_BASELINES, MissingTunedDefaults, in_package_table, tuned_defaults

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ["--env", "TrainGym/Custom-v0", "--smoke", "--no-progress-bar", "--no-tensorboard"]


def _train(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRAINGYM_CACHE_DIR": str(tmp_path / "cache")}
    return subprocess.run([sys.executable, str(ROOT / "train_agent.py"), *SMOKE, *flags], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)


def test_custom_env_without_tuned_defaults_sweeps_once_then_reuses_the_cache(tmp_path: Path) -> None:
    first = _train(tmp_path, "--run-dir", str(tmp_path / "a"), "--baselines", "keep", "steer", "good_defaults")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "sweeping 24 grid points x 4 TRAIN instances (K=5, T=4)" in first.stdout
    summary = json.loads((tmp_path / "a" / "eval.json").read_text())["summary"]
    assert [row["policy"] for row in summary] == ["ppo", "keep", "steer", "good_defaults"]
    tuned = json.loads((tmp_path / "a" / "tuned_defaults.json").read_text())
    assert tuned["family"] == "traingym.envs.tasks.custom_example:BlobsFamily" and len(tuned["rows"]) == 24
    second = _train(tmp_path, "--run-dir", str(tmp_path / "b"), "--baselines", "keep", "steer")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "sweeping" not in second.stdout and "(cached in" in second.stdout


def test_no_tune_baselines_leaves_them_out_with_one_line(tmp_path: Path) -> None:
    proc = _train(tmp_path, "--run-dir", str(tmp_path / "r"), "--no-tune-baselines")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "leaving out the steer baseline(s): traingym.envs.tasks.custom_example:BlobsFamily has no tuned " \
           "defaults" in proc.stdout
    summary = json.loads((tmp_path / "r" / "eval.json").read_text())["summary"]
    assert [row["policy"] for row in summary] == ["ppo", "keep", "random", "step_decay", "plateau"]


def test_a_bad_task_is_a_usage_error_before_training(tmp_path: Path) -> None:
    for task, message in (("no_such_pkg.tasks:Fam", "cannot import task family"),
                          ("my_registered_name", "task must be 'package.module:ClassName'"),
                          ("collections:OrderedDict", "subclasses traingym.envs.tasks.TaskFamily")):
        proc = _train(tmp_path, "--run-dir", str(tmp_path / "bad"), "--task", task)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr
    assert not (tmp_path / "bad").exists()
    proc = _train(tmp_path, "--env", "TrainGym/DigitsMLP-v0", "--task", "a.b:C")
    assert proc.returncode == 2 and "--task picks the family of --env TrainGym/Custom-v0" in proc.stderr


def test_the_package_table_serves_registered_ids_only_for_their_own_family() -> None:
    assert in_package_table("TrainGym/DigitsMLP-v0") and in_package_table("TrainGym/DigitsMLP-v0", "digits_mlp")
    assert not in_package_table("TrainGym/Custom-v0")
    assert not in_package_table("TrainGym/Custom-v0", "my_pkg.tasks:MyFamily")
    assert set(TUNED_BASELINES) == {"steer", "good_defaults"}
    try:
        tuned_defaults("TrainGym/Custom-v0")
    except MissingTunedDefaults as error:
        assert "--task" in str(error)
    else:
        raise AssertionError("Custom-v0 must have no package defaults")
