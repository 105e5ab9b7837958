"""Kill mid-write: checkpoints survive SIGKILL at any point of a checkpoint save.

The agents' own tests cover the rest of kill-and-resume: ``test_agents_resume.py`` SIGKILLs a real
``train_agent.py`` run after its first checkpoint and checks that ``--resume`` continues the step counter, and
that a writer raising mid-save keeps the old file.

Checkpoint files are written to a temporary file, fsynced and renamed (``traingym.agents.checkpoints``). The
kill tests run a child process that writes one complete checkpoint, then dies by SIGKILL in the middle of the
next one: at the n-th ``os.fsync`` of that save, after truncating the file being synced to half its size (a
partial write that was never renamed). Whatever n, the checkpoint ``latest.json`` names must load completely.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from traingym.agents.checkpoints import LATEST, latest_checkpoint, load_normalizer, remove_temporaries

ROOT = Path(__file__).resolve().parents[2]

CHILD = r'''
import os, signal, stat, sys
from pathlib import Path

import traingym.agents.checkpoints as checkpoints
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize
from traingym.agents.env_factory import env_factory

directory, kill_at = Path(sys.argv[1]), int(sys.argv[2])
venv = VecNormalize(DummyVecEnv([env_factory("TrainGym/DigitsMLP-v0", 4, {
    "obs_keys": ["training_stats"], "steps_per_action": 1, "val_size": 16})]))
model = PPO("MultiInputPolicy", venv, n_steps=16, batch_size=16, seed=0, device="cpu")
callback = checkpoints.AtomicCheckpointCallback(directory, save_freq=16, normalizer=venv)
callback.init_callback(model)
callback.save()  # complete checkpoint at step 0
model.num_timesteps = 16
real_fsync, calls = os.fsync, [0]


def dying_fsync(fd):
    calls[0] += 1
    if calls[0] == kill_at:
        if stat.S_ISREG(os.fstat(fd).st_mode):  # a file: keep only half of what was written, then die
            os.ftruncate(fd, os.fstat(fd).st_size // 2)
        os.kill(os.getpid(), signal.SIGKILL)
    real_fsync(fd)


os.fsync = dying_fsync
callback.save()
print("FSYNC_CALLS", calls[0], flush=True)
'''

FSYNC_POINTS_FAST = (1, 5)
"""Kill while syncing the half-written model file, and the half-written ``latest.json``."""
FSYNC_POINTS_ALL = tuple(range(1, 8))
"""Every fsync of one checkpoint save (model, dir, normalizer, dir, latest.json, dir), and none (7: completes)."""


def run_dying_saves(tmp_path: Path, points: tuple[int, ...]) -> dict[int, tuple[Path, int]]:
    """One child per kill point, all started at once; returns ``{point: (directory, returncode)}``."""
    procs = {}
    for point in points:
        directory = tmp_path / f"kill_at_{point}"
        procs[point] = (directory, subprocess.Popen([sys.executable, "-c", CHILD, str(directory), str(point)],
                                                    cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                    text=True))
    results = {}
    for point, (directory, proc) in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode in (0, -signal.SIGKILL), err[-3000:]
        results[point] = (directory, proc.returncode)
    return results


def assert_latest_checkpoint_loads(directory: Path) -> int:
    """``latest.json`` parses and names a complete model and normalizer; returns its step."""
    from stable_baselines3 import PPO

    checkpoint = latest_checkpoint(directory)
    assert checkpoint is not None
    model = PPO.load(checkpoint.model, device="cpu")
    assert model.policy is not None
    assert checkpoint.normalizer is not None and load_normalizer(checkpoint.normalizer).obs_rms is not None
    return checkpoint.step


def check_kill_points(tmp_path: Path, points: tuple[int, ...]) -> None:
    results = run_dying_saves(tmp_path, points)
    killed = 0
    for point, (directory, returncode) in sorted(results.items()):
        step = assert_latest_checkpoint_loads(directory)
        killed += returncode == -signal.SIGKILL
        if returncode == -signal.SIGKILL:
            assert step in (0, 16), (point, step)  # the old checkpoint, or the new one if it was complete
        else:
            assert step == 16
        json.loads((directory / LATEST).read_text())
        remove_temporaries(directory)
        assert not list(directory.glob(".tmp-*"))
    assert killed >= 1
    print(f"\nkill points {sorted(results)}: {killed} SIGKILLed mid-save, every latest checkpoint loaded")


def test_sigkill_mid_write_never_leaves_a_corrupt_checkpoint(tmp_path: Path) -> None:
    check_kill_points(tmp_path, FSYNC_POINTS_FAST)


@pytest.mark.slow
def test_sigkill_at_every_point_of_a_checkpoint_save(tmp_path: Path) -> None:
    check_kill_points(tmp_path, FSYNC_POINTS_ALL)
