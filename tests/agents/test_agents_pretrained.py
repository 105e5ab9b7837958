"""Agents shipped with the package load by name, wherever a run directory is accepted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from traingym.agents import pretrained
from traingym.agents.policies import AgentPolicy, PolicySpec, load_agent

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("run") / "smoke"
    subprocess.run([sys.executable, str(ROOT / "train_agent.py"), "--smoke", "--run-dir", str(run_dir),
                    "--no-progress-bar"], check=True, capture_output=True, timeout=300)
    return run_dir


def test_an_exported_run_loads_by_name_and_acts_like_the_run(smoke_run: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path)
    from traingym.experiments.export_pretrained import export_pretrained

    out = export_pretrained(smoke_run, "tiny")
    assert {"config.json", "model.zip", "card.md"} <= {p.name for p in out.iterdir()}
    assert "eval.csv" in (out / "card.md").read_text()
    assert pretrained.pretrained_names() == ["tiny"]
    by_name, by_path = load_agent("pretrained:tiny"), load_agent(smoke_run)
    assert isinstance(by_name, AgentPolicy) and by_name.env_overrides == by_path.env_overrides
    obs = {k: space.sample() for k, space in by_path.model.observation_space.spaces.items()}
    assert (by_name.predict(obs)[0] == by_path.predict(obs)[0]).all()
    assert PolicySpec.parse("pretrained:tiny").label == "pretrained:tiny"


def test_an_unknown_pretrained_name_lists_the_shipped_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path)
    (tmp_path / "digits-mlp").mkdir()
    (tmp_path / "digits-mlp" / "model.zip").write_bytes(b"")
    with pytest.raises(ValueError, match="no pretrained agent 'nope'; shipped: digits-mlp"):
        load_agent("pretrained:nope")


def test_the_shipped_digits_mlp_agent_runs_a_held_out_episode() -> None:
    from traingym.agents.episodes import EpisodeSettings, run_policy_object

    policy = load_agent("pretrained:digits-mlp")
    assert policy.env_overrides["obs_keys"] == ("training_stats",)
    settings = EpisodeSettings("TrainGym/DigitsMLP-v0", horizon=4, steps_per_action=5, instance_indices=(0,))
    (episode,) = run_policy_object(policy, "pretrained", settings)
    assert episode.steps == 4 and len(episode.moves) == 4 and 0.0 <= episode.test_accuracy <= 1.0
    assert "command: `python train_agent.py" in (pretrained.PRETRAINED_DIR / "digits-mlp" / "card.md").read_text()


@pytest.mark.slow  # 16 DigitsMLP episodes at the shipped agent's K=50, T=20 (~15 s)
def test_the_shipped_digits_mlp_agent_beats_keep_on_held_out_instances() -> None:
    """In the setting it was trained for (measured on held-out instances 0..7: wins 8 of 8, mean +0.44)."""
    from traingym.agents.baselines import make_baseline
    from traingym.agents.episodes import EpisodeSettings, run_policy_object

    settings = EpisodeSettings("TrainGym/DigitsMLP-v0", horizon=20, steps_per_action=50,
                               instance_indices=tuple(range(8)))
    agent = [e.test_accuracy for e in run_policy_object(load_agent("pretrained:digits-mlp"), "agent", settings)]
    keep = [e.test_accuracy for e in run_policy_object(make_baseline("keep", settings.env_id), "keep", settings)]
    assert sum(a > k for a, k in zip(agent, keep)) >= 7
    assert sum(agent) / 8 > sum(keep) / 8 + 0.25


@pytest.mark.parametrize(("name", "obs_keys"), [("pathologies", ("training_stats", "neurons", "diagnosis")),
                                                ("pathologies-stats", ("training_stats",))])
def test_the_pathology_agents_load_by_name_with_their_env_and_observation(name: str, obs_keys: tuple) -> None:
    """Both sides of the comparison in docs/results/agent_pathologies.md ship, so anyone can rerun it."""
    import json

    from traingym.agents.episodes import EpisodeSettings, run_policy_object

    policy = load_agent(f"pretrained:{name}")
    args = json.loads((pretrained.PRETRAINED_DIR / name / "config.json").read_text())["args"]
    assert args["env"] == "TrainGym/DigitsPathologies-v0" and tuple(policy.env_overrides["obs_keys"]) == obs_keys
    assert len(args["knobs"]) == 4  # the weight-scaling move included
    assert pretrained.shipped_agent_for("TrainGym/DigitsPathologies-v0") == "pretrained:pathologies"
    settings = EpisodeSettings("TrainGym/DigitsPathologies-v0", horizon=3, steps_per_action=5, instance_indices=(0,))
    (episode,) = run_policy_object(policy, name, settings)
    assert episode.steps == 3 and 0.0 <= episode.test_accuracy <= 1.0


@pytest.mark.parametrize(("name", "obs_keys"), [("patch-pathologies", ("training_stats", "neurons", "diagnosis")),
                                                ("patch-pathologies-stats", ("training_stats",))])
def test_the_patch_agents_load_by_name_and_only_the_full_observation_finds_the_cell(name: str,
                                                                                     obs_keys: tuple) -> None:
    """Both sides of docs/results/agent_patch_pathologies.md ship. On a held-out patch instance the full-observation
    agent decorrelates the planted cell; the training_stats agent, which cannot see where it is, does not."""
    import json

    from traingym.agents.episodes import EpisodeSettings, run_policy_object
    from traingym.envs.tasks.pathologies import DigitsPatchPathologies, patch_cell

    env_id = "TrainGym/DigitsPatchPathologies-v0"
    policy = load_agent(f"pretrained:{name}")
    args = json.loads((pretrained.PRETRAINED_DIR / name / "config.json").read_text())["args"]
    assert args["env"] == env_id and tuple(policy.env_overrides["obs_keys"]) == obs_keys
    assert pretrained.shipped_agent_for(env_id) == "pretrained:patch-pathologies"
    instances = DigitsPatchPathologies().instance_set("test", "sgd")
    index = next(i for i, x in enumerate(instances) if x["pathology"] == "spurious" and x["strength"] > 0.9)
    (episode,) = run_policy_object(policy, name, EpisodeSettings(env_id, 20, 50, (index,)))
    planted = 1 + patch_cell(instances[index]["split_seed"])
    on_cell = sum(move[-1] == planted for move in episode.moves)
    assert on_cell >= 10 if name == "patch-pathologies" else on_cell <= 5
