"""Atomic checkpoints, and --resume after the training process is killed with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from stable_baselines3 import PPO
from traingym.agents.checkpoints import atomic_save, latest_checkpoint

ROOT = Path(__file__).resolve().parents[2]
TOTAL = 480
FLAGS = ["--smoke", "--total-timesteps", str(TOTAL), "--steps-per-action", "1", "--horizon", "4", "--n-steps", "16",
         "--checkpoint-freq", "16", "--eval-freq", "0", "--baselines", "keep", "--eval-episodes", "1",
         "--no-progress-bar"]


def test_atomic_save_keeps_the_old_file_when_saving_fails(tmp_path: Path) -> None:
    target = tmp_path / "model.zip"
    atomic_save(target, lambda p: Path(p).write_bytes(b"old"))

    def broken(path: str) -> None:
        Path(path).write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_save(target, broken)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.zip"]  # no temporary file left behind


@pytest.mark.slow
def test_resume_after_sigkill_continues_the_step_counter(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    command = [sys.executable, "train_agent.py", *FLAGS, "--run-dir", str(run_dir)]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    pointer = run_dir / "checkpoints" / "latest.json"
    deadline = time.monotonic() + 300
    while not pointer.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, f"training ended before the first checkpoint: {proc.stderr.read()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = latest_checkpoint(run_dir / "checkpoints")
    assert killed_at is not None and 0 < killed_at.step < TOTAL
    assert PPO.load(killed_at.model).num_timesteps == killed_at.step

    resumed = subprocess.run([sys.executable, "train_agent.py", "--resume", "--run-dir", str(run_dir)], cwd=ROOT,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    steps = [int(line.split()[-1]) for line in resumed.stdout.splitlines() if "resumed from checkpoint" in line]
    assert steps == [killed_at.step]
    assert PPO.load(run_dir / "model.zip").num_timesteps == TOTAL
    config = json.loads((run_dir / "config.json").read_text())
    assert config["resumed"] == [killed_at.step] and config["args"]["total_timesteps"] == TOTAL
    assert [s["step"] for s in config["starts"]] == [0, killed_at.step]  # each start's commit and machine
    assert (run_dir / "eval.csv").exists()
