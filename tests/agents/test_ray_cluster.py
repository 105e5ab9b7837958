"""The Ray backends on a real two-node Ray cluster on this machine (``ray.cluster_utils.Cluster``: two raylets,
one CPU and a small object store each), started and torn down by a module fixture.

- RLlib PPO trains with one env runner on each node (their node ids are asserted), checkpoints, resumes from the
  checkpoint, and the saved RLModule is reloaded and evaluated through the shared evaluation path.
- A 2-cell ablation runs as Ray Tune trials; its driver is killed after the first cell's trial finished, and the
  same command then restores the Tune experiment without running the finished cell again.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import ray
from ray.cluster_utils import Cluster

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
NODE_ARGS = {"num_cpus": 1, "object_store_memory": 80 * 2**20}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    cluster = Cluster(initialize_head=True, head_node_args={**NODE_ARGS, "include_dashboard": False})
    try:
        cluster.add_node(**NODE_ARGS)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def node_ids(cluster: Cluster) -> set[str]:
    return {node.node_id for node in cluster.list_all_nodes()}


def test_rllib_ppo_trains_on_both_nodes_resumes_and_evaluates(cluster: Cluster, tmp_path: Path) -> None:
    from traingym.agents.args import Args
    from traingym.agents.policies import load_agent
    from traingym.agents.rllib_backend import ENV_RUNNERS_JSON, latest_checkpoint, train_rllib
    from traingym.agents.rllib_policy import MODEL_DIR, RLlibPolicy
    from traingym.agents.train import final_evaluation

    run_dir = tmp_path / "run"
    args = Args(backend="rllib", num_env_runners=2, ray_address=cluster.address, total_timesteps=128, horizon=3,
                steps_per_action=5, n_steps=16, n_epochs=2, checkpoint_freq=64, run_dir=str(run_dir),
                obs_keys=("training_stats", "neurons"), baselines=("keep",), eval_episodes=3, eval_freq=0,
                eval_workers=1, progress_bar=False, tensorboard=False)
    first = train_rllib(args)
    assert first.num_timesteps >= 128 and first.resumed_from is None
    placement = json.loads((run_dir / ENV_RUNNERS_JSON).read_text())["env_runners"]
    assert len(placement) == 2
    assert {p["node_id"] for p in placement} == node_ids(cluster)  # one env runner per node: both nodes sampled
    step, checkpoint = latest_checkpoint(run_dir)
    assert step >= 64 and checkpoint.is_dir()

    resumed = train_rllib(replace(args, resume=True, total_timesteps=192))
    assert resumed.resumed_from == step and resumed.num_timesteps >= 192
    config = json.loads((run_dir / "config.json").read_text())
    assert config["args"]["backend"] == "rllib" and config["resumed"] == [step]
    assert config["algo_kwargs"]["train_batch_size_per_learner"] == 32 and "ray" in config["versions"]

    policy = load_agent(run_dir)  # the same loader the evaluation workers use
    assert isinstance(policy, RLlibPolicy) and (run_dir / MODEL_DIR).is_dir()
    env = gym.make(args.env, horizon=3, **args.env_kwargs())
    obs, _ = env.reset(seed=0)
    env.close()
    action, _ = policy.predict(obs)
    assert action.shape == (4,) and set(action.tolist()) <= {0, 1, 2}
    assert np.array_equal(policy.predict(obs)[0], action)  # deterministic

    result = final_evaluation(replace(args, total_timesteps=192), resumed)
    summary = json.loads((run_dir / "eval.json").read_text())
    assert [row["policy"] for row in summary["summary"]] == ["ppo", "keep"]
    assert [s.episodes for s in result.summaries] == [3, 3]
    assert all((run_dir / name).exists() for name in ("eval.csv", "eval.png", "episodes.jsonl"))


def test_tune_ablation_resumes_after_the_driver_is_killed(cluster: Cluster, tmp_path: Path) -> None:
    from traingym.experiments.ray_tune import TRIAL_LOG

    out = tmp_path / "ablate"
    command = [sys.executable, "-m", "traingym.experiments.ablate", "--backend", "ray", "--ray-address",
               cluster.address, "--preset", "smoke", "--max-concurrent-trials", "1", "--out-dir", str(out)]
    first, second = (out / "runs" / f"{cell}-seed0" / "model.zip"
                     for cell in ("training_stats", "training_stats+neurons"))
    trial_log = out / TRIAL_LOG

    def trials() -> list[dict]:
        return [json.loads(line) for line in trial_log.read_text().splitlines()] if trial_log.exists() else []

    driver = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 240
        # Mid-grid: one cell finished (its model saved, the next trial started), the other not yet trained.
        while not (first.exists() and len(trials()) >= 2) and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert driver.poll() is None, driver.communicate()[0][-3000:]
        assert first.exists() and not second.exists()
        first_mtime = first.stat().st_mtime_ns
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()

    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "resuming the Tune experiment" in proc.stdout
    starts = [t["run"] for t in trials()]
    assert starts.count("training_stats-seed0") == 1  # the finished cell was not run again
    assert starts.count("training_stats+neurons-seed0") == 2  # the interrupted one was
    assert first.stat().st_mtime_ns == first_mtime and second.exists()
    rows = json.loads((out / "ablation.json").read_text())["rows"]
    assert [r["cell"] for r in rows] == ["training_stats", "training_stats+neurons"]
    assert all(r["episodes"] == 3 for r in rows)
    assert (out / "ablation.png").exists() and (out / "eval" / "eval.csv").exists()
