"""One frozen ObservationSpec: saved with each run, read back whole by the policy, the periodic evaluation and the
doctor."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from traingym.agents.args import Args
from traingym.agents.observation_spec import OBS_KEY_NAMES, ObservationSpec
from traingym.envs.config import OBS_KEYS

ROOT = Path(__file__).resolve().parents[2]


def test_the_spec_knows_the_envs_keys() -> None:
    assert tuple(OBS_KEYS) == OBS_KEY_NAMES


def test_round_trip_and_env_kwargs() -> None:
    spec = ObservationSpec(("training_stats", "diagnosis"), "heuristic", 8, ("training_stats",))
    assert ObservationSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    assert spec.env_kwargs() == {"obs_keys": ("training_stats", "diagnosis"), "advisor": "heuristic",
                                 "diagnosis_dim": 8}
    assert ObservationSpec().env_kwargs() == {"obs_keys": ("training_stats",)}


def test_runs_saved_before_the_spec_read_it_from_their_env_kwargs() -> None:
    config = {"args": {"norm_obs_keys": ["training_stats"]},
              "env_kwargs": {"obs_keys": ["training_stats", "diagnosis"], "advisor": "heuristic", "diagnosis_dim": 8}}
    assert ObservationSpec.from_run_config(config) == ObservationSpec(("training_stats", "diagnosis"), "heuristic",
                                                                      8, ("training_stats",))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"keys": ()}, "observation keys must be distinct"),
    ({"keys": ("training_stats", "training_stats")}, "observation keys must be distinct"),
    ({"keys": ("pixels",)}, "observation keys must be distinct"),
    ({"keys": ("training_stats",), "normalized_keys": ("neurons",)}, "normalized keys must be distinct observed"),
    ({"keys": ("training_stats",), "advisor": "heuristic"}, "only matter with the 'diagnosis'"),
    ({"keys": ("diagnosis",), "diagnosis_dim": 0}, r"diagnosis_dim must be in \[1, 384\]"),
])
def test_a_bad_spec_is_one_clear_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ObservationSpec(**kwargs)


def test_args_build_the_spec_the_env_and_config_use() -> None:
    args = Args(obs_keys=("training_stats", "diagnosis"), diagnosis_dim=8, norm_obs_keys=("training_stats",))
    spec = args.observation_spec()
    assert spec == ObservationSpec(("training_stats", "diagnosis"), "heuristic", 8, ("training_stats",))
    assert {k: v for k, v in args.env_kwargs().items() if k in ("obs_keys", "advisor", "diagnosis_dim")} == \
        spec.env_kwargs()


def test_a_run_saves_its_spec_and_the_agent_and_doctor_get_it_whole(tmp_path: Path) -> None:
    from traingym.agents.policies import load_agent
    from traingym.doctor.policy import resolve_policy

    run = tmp_path / "run"
    subprocess.run([sys.executable, str(ROOT / "train_agent.py"), "--smoke", "--run-dir", str(run),
                    "--no-progress-bar", "--no-tensorboard", "--obs-keys", "training_stats", "neurons",
                    "--norm-obs-keys", "training_stats", "--baselines", "keep", "--eval-freq", "0"],
                   check=True, capture_output=True, timeout=600)
    saved = json.loads((run / "config.json").read_text())["observation"]
    expected = ObservationSpec(("training_stats", "neurons"), None, None, ("training_stats",))
    assert ObservationSpec.from_json(saved) == expected
    assert load_agent(run).observation == expected
    doctor_policy = resolve_policy(str(run))
    assert doctor_policy.observation == expected and doctor_policy.obs_keys == ("training_stats", "neurons")
