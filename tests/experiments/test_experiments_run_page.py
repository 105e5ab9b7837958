"""The results page of one finished run, from a real (tiny) run directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from traingym.agents.args import Args
from traingym.agents.train import final_evaluation, train
from traingym.experiments import run_page
from traingym.experiments.run_page import RunPageArgs, page

TINY = {"total_timesteps": 32, "n_envs": 1, "horizon": 3, "steps_per_action": 5, "n_steps": 8, "eval_freq": 0,
        "eval_episodes": 3, "eval_workers": 1, "checkpoint_freq": 0, "baselines": ("keep",), "progress_bar": False,
        "tensorboard": False}


def test_the_page_holds_the_runs_command_timing_and_held_out_table(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    args = Args(run_dir=str(tmp_path / "run"), seed=3, **TINY)
    trained = train(args)
    (tmp_path / "run" / "eval.json").unlink(missing_ok=True)
    title, body, _ = page(tmp_path / "run")  # evaluation not run (or cut off): the training time is there already
    assert f"{trained.train_seconds / 60:.1f} min** for 32 env steps" in body and "No final evaluation" in body
    final_evaluation(args, trained)
    title, body, data = page(tmp_path / "run")
    assert title == "One ppo run on TrainGym/DigitsMLP-v0: training time and held-out table"
    assert "--seed 3" in body and "--total-timesteps 32" in body
    (start,) = json.loads((tmp_path / "run" / "config.json").read_text())["starts"]  # the commit and machine
    assert f"- started at step 0 on {start['at']}: commit {start['commit']}, {start['machine']}" in body
    assert "cores" in start["machine"] and start["commit"]
    evaluation = json.loads((tmp_path / "run" / "eval.json").read_text())
    rows = [line for line in body.splitlines() if line.startswith("| ppo |") or line.startswith("| keep |")]
    assert [r.split(" | ")[1] for r in rows] == ["3", "3"]
    ppo = next(s for s in evaluation["summary"] if s["policy"] == "ppo")
    assert f"{ppo['test_accuracy']:.3f}" in rows[0] and data["summary"] == evaluation["summary"]
    monkeypatch.setattr(run_page, "write_result", lambda name, *a: tmp_path / f"{name}.md")
    assert run_page.main(["--run-dir", str(tmp_path / "run"), "--name", "agent_tiny"]) == 0


def test_bad_arguments_name_the_flag(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--name must be"):
        RunPageArgs(run_dir=str(tmp_path), name="../x")
    with pytest.raises(ValueError, match="--run-dir must be a finished run"):
        RunPageArgs(run_dir=str(tmp_path), name="ok")
