"""The Ray backends' bad input (one line, non-zero exit, no traceback) and RLlibPolicy's observation flattening.

No Ray instance starts here (the cluster tests are tests/agents/test_ray_cluster.py, slow-marked).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
TRAIN = [sys.executable, "train_agent.py", "--backend", "rllib", "--smoke", "--baselines", "keep"]
ABLATE = [sys.executable, "-m", "traingym.experiments.ablate", "--backend", "ray", "--preset", "smoke"]


def run(argv: list[str], tmp_path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_num_env_runners_zero_is_one_line(tmp_path: Path) -> None:
    proc = run([*TRAIN, "--num-env-runners", "0", "--run-dir", str(tmp_path / "r")], tmp_path)
    assert_one_line_error(proc, "--num-env-runners must be in [1, 1024]", "got 0")
    assert proc.returncode == 2
    assert not (tmp_path / "r").exists()


def test_unreachable_ray_address_is_one_line(tmp_path: Path) -> None:
    address = f"127.0.0.1:{closed_port()}"
    proc = run([*TRAIN, "--ray-address", address, "--run-dir", str(tmp_path / "r")], tmp_path)
    assert_one_line_error(proc, f"--ray-address {address}", "no Ray cluster reachable")
    assert not (tmp_path / "r").exists()
    proc = run([*ABLATE, "--ray-address", address, "--out-dir", str(tmp_path / "a")], tmp_path)
    assert_one_line_error(proc, f"--ray-address {address}")
    assert not (tmp_path / "a" / "runs").exists()


def test_malformed_ray_address_is_one_line(tmp_path: Path) -> None:
    proc = run([*TRAIN, "--ray-address", "nowhere", "--run-dir", str(tmp_path / "r")], tmp_path)
    assert_one_line_error(proc, "--ray-address must be 'local', 'auto'", "'nowhere'")


def test_missing_ray_extra_is_one_line(tmp_path: Path) -> None:
    """A ``ray`` package that fails to import first on the path stands in for a missing [ray] extra."""
    shadow = tmp_path / "shadow" / "ray"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError(\"No module named 'ray' (simulated)\")\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shadow.parent), os.environ.get("PYTHONPATH", "")])}
    proc = run([*TRAIN, "--run-dir", str(tmp_path / "r")], tmp_path, env)
    assert_one_line_error(proc, "--backend rllib needs the optional Ray extra", "pip install 'traingym[ray]'",
                          "(simulated)")
    proc = run([*ABLATE, "--out-dir", str(tmp_path / "a")], tmp_path, env)
    assert_one_line_error(proc, "--backend ray needs the optional Ray extra", "pip install 'traingym[ray]'")
    # The default SB3 path never imports Ray: it still parses its arguments with the broken package on the path.
    proc = run([sys.executable, "-c", "import sys; from traingym.agents.cli import parse_args; "
                "parse_args(['--smoke']); assert 'ray' not in sys.modules"], tmp_path, env)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_rllib_policy_flattens_like_rllibs_connector() -> None:
    """RLlibPolicy.flatten gives exactly what RLlib's FlattenObservations connector feeds the module in training."""
    from ray.rllib.connectors.env_to_module import FlattenObservations
    from ray.rllib.env.single_agent_episode import SingleAgentEpisode
    from traingym.agents.rllib_policy import RLlibPolicy

    env = gym.make("TrainGym/DigitsMLP-v0", horizon=2, steps_per_action=2, obs_keys=("training_stats", "neurons"))
    try:
        obs, _ = env.reset(seed=3)
        connector = FlattenObservations(env.observation_space, env.action_space)
        episode = SingleAgentEpisode(observations=[obs], observation_space=env.observation_space,
                                     action_space=env.action_space)
        connector(rl_module=None, batch={}, episodes=[episode], explore=False, shared_data={})
        expected = episode.get_observations(0)
    finally:
        env.close()
    flat = RLlibPolicy.flatten(obs)
    assert flat.dtype == np.float32 and flat.shape == connector.observation_space.shape
    np.testing.assert_array_equal(flat, expected)


@pytest.mark.parametrize("bad", [{"cpus_per_trial": -1}, {"max_concurrent_trials": 2000}])
def test_ablate_ray_resources_are_validated(bad: dict[str, int]) -> None:
    from traingym.experiments.ablate import AblateArgs

    with pytest.raises(ValueError, match=next(iter(bad)).replace("_", "-")):
        AblateArgs(**bad)
