"""train_agent.py: the smoke run end to end, argument handling, every algorithm, saved agents."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest
from traingym.agents.args import Args
from traingym.agents.cli import parse_args
from traingym.agents.episodes import EpisodeSettings, run_policy_object
from traingym.agents.policies import load_agent
from traingym.agents.train import train
from traingym.protocol.trajectory_format import read_trajectories

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"
TINY = {"total_timesteps": 32, "n_envs": 1, "horizon": 3, "steps_per_action": 5, "n_steps": 8, "eval_freq": 0,
        "checkpoint_freq": 16, "baselines": (), "progress_bar": False, "tensorboard": False}


def _run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "train_agent.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_readme_smoke_command_end_to_end(tmp_path: Path) -> None:
    run_dir = tmp_path / "tmp"
    export = tmp_path / "trajectories.jsonl"
    proc = _run("--smoke", "--run-dir", str(run_dir), "--export-trajectories", str(export),
                "--obs-keys", "training_stats", "neurons", "diagnosis")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("config.json", "model.zip", "model.vecnormalize.pkl", "best_model.zip", "eval.csv", "eval.json",
                 "episodes.jsonl", "learning_curve.csv", "timing.json", "checkpoints/latest.json"):
        assert (run_dir / name).exists(), name
    for name in ("learning_curve.png", "eval.png", "hparam_trajectories.png", "move_frequencies.png"):
        assert (run_dir / name).read_bytes()[:8] == PNG, name
    assert list((run_dir / "tb").rglob("events.out.tfevents.*")), "no TensorBoard event file"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["args"]["algo"] == "ppo" and config["args"]["smoke"] is True
    text = json.dumps(config).lower()
    for field in ("norm_obs_keys", "obs_keys", "normalized_keys", '"keys"'):  # the observation's fields
        text = text.replace(field, "")
    assert "key" not in text  # arguments only, never API keys
    summary = json.loads((run_dir / "eval.json").read_text())["summary"]
    assert [row["policy"] for row in summary] == ["ppo", "keep", "random", "step_decay", "plateau", "steer"]
    assert "ppo" in proc.stdout and "Δ test acc vs keep" in proc.stdout
    records = read_trajectories(export)
    assert {r["policy"] for r in records} == {"ppo", "keep", "random", "step_decay", "plateau", "steer"}
    assert len(records) == 6 * 4 * 4  # policies x evaluation instances x horizon
    # The agent's env has the diagnosis key (asked for), the baselines' env does not.
    assert all((r["diagnosis"] is not None) == (r["policy"] == "ppo") for r in records)
    assert {"findings", "suggested_move", "text"} <= set(next(r for r in records if r["diagnosis"])["diagnosis"])


@pytest.mark.parametrize("args, message", [
    (["--algo", "sac"], "invalid choice"),
    (["--obs-keys", "bogus"], "--obs-keys"),
    (["--total-timesteps", "0"], "--total-timesteps"),
    (["--env", "CartPole-v1"], "--env"),
    (["--baselines", "oracle"], "--baselines"),
    (["--resume"], "--resume needs --run-dir"),
    (["--resume", "--run-dir", "/nonexistent/run"], "cannot resume"),
    (["--seed", "abc"], "Error parsing --seed"),
    (["--obs-keys", "training_stats", "--advisor", "heuristic"], "--advisor only matters"),
    (["--obs-keys", "training_stats", "--norm-obs-keys", "neurons"], "--norm-obs-keys must be distinct observed"),
    (["--obs-keys", "training_stats", "neurons", "--norm-obs-keys", "neurons", "--no-normalize"],
     "--norm-obs-keys needs --normalize"),
    (["--obs-keys", "training_stats", "--diagnosis-dim", "8"], "--diagnosis-dim only matters"),
    (["--obs-keys", "diagnosis", "--diagnosis-dim", "0"], "--diagnosis-dim must be in [1, 384], got 0"),
    (["--obs-keys", "diagnosis", "--diagnosis-dim", "385"], "--diagnosis-dim must be in [1, 384], got 385"),
])
def test_bad_arguments_are_one_clear_message(args: list[str], message: str) -> None:
    proc = _run(*args, timeout=120)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_smoke_preset_then_explicit_flags_win() -> None:
    args = parse_args(["--smoke", "--horizon", "5", "--obs-keys", "training_stats,neurons"])
    assert (args.total_timesteps, args.horizon, args.steps_per_action) == (64, 5, 5)
    assert args.resolved_obs_keys() == ("training_stats", "neurons")
    assert Args.from_json(args.to_json()) == args
    assert args.env_kwargs() == {"steps_per_action": 5, "obs_keys": ("training_stats", "neurons")}


def test_default_observation_is_training_stats_and_empty_means_all_keys_with_the_envs_advisor() -> None:
    args = Args()
    assert args.resolved_obs_keys() == ("training_stats",) and "advisor" not in args.env_kwargs()
    every = Args(obs_keys=())
    assert every.resolved_obs_keys() == ("training_stats", "neurons", "diagnosis")
    assert every.env_kwargs()["advisor"] == "heuristic"


def test_norm_obs_keys_normalise_only_those_keys(tmp_path: Path) -> None:
    import numpy as np
    from traingym.agents.checkpoints import load_normalizer, normalizer_path

    result = train(Args(run_dir=str(tmp_path / "run"), algo="ppo", obs_keys=("training_stats", "neurons"),
                        norm_obs_keys=("training_stats",), **TINY))
    normalizer = load_normalizer(normalizer_path(result.model_path))
    assert normalizer.norm_obs_keys == ["training_stats"] and set(normalizer.obs_rms) == {"training_stats"}
    obs = {"training_stats": np.full((1, 22), 3.0, dtype=np.float32),
           "neurons": np.linspace(-2, 2, normalizer.observation_space["neurons"].shape[0], dtype=np.float32)[None]}
    out = normalizer.normalize_obs(obs)
    assert np.array_equal(out["neurons"], obs["neurons"]) and not np.array_equal(out["training_stats"],
                                                                                 obs["training_stats"])


def test_a_smaller_diagnosis_reaches_the_training_env_the_periodic_and_the_final_evaluation(tmp_path: Path) -> None:
    from traingym.advisors.channel import MOVE_SLOTS
    from traingym.advisors.findings import FINDINGS
    from traingym.protocol.moves import KNOBS

    run_dir = tmp_path / "run"
    tiny = {**TINY, "eval_freq": 16, "eval_freq_episodes": 1, "eval_episodes": 1}
    train(Args(run_dir=str(run_dir), obs_keys=("training_stats", "diagnosis"), diagnosis_dim=8, **tiny))
    size = 8 + len(FINDINGS) + MOVE_SLOTS * len(KNOBS)  # the text projected to 8; the one-hots whole
    config = json.loads((run_dir / "config.json").read_text())
    assert config["env_kwargs"]["diagnosis_dim"] == 8 and config["args"]["diagnosis_dim"] == 8
    assert (run_dir / "learning_curve.csv").read_text().count("\n") >= 2  # the periodic evaluation ran
    policy = load_agent(run_dir)
    assert policy.model.observation_space["diagnosis"].shape == (size,)
    assert policy.env_overrides == {"obs_keys": ("training_stats", "diagnosis"), "advisor": "heuristic",
                                    "diagnosis_dim": 8}
    (episode,) = run_policy_object(policy, "ppo", EpisodeSettings("TrainGym/DigitsMLP-v0", 3, 5, (0,)))
    assert episode.steps == 3


def test_existing_run_is_not_overwritten_and_keeps_its_training_time(tmp_path: Path) -> None:
    result = train(Args(run_dir=str(tmp_path / "run"), algo="ppo", **TINY))
    # the training time is on disk before any final evaluation runs (one that is cut off does not lose it)
    timing = json.loads((tmp_path / "run" / "timing.json").read_text())
    assert timing == {"train_seconds": result.train_seconds, "num_timesteps": result.num_timesteps}
    proc = _run("--smoke", "--run-dir", str(tmp_path / "run"), timeout=120)
    assert proc.returncode == 2 and "already holds a run" in proc.stderr


@pytest.mark.parametrize("algo", ["a2c", "dqn", "recurrent_ppo"])
def test_other_algorithms_train_save_and_act(tmp_path: Path, algo: str) -> None:
    result = train(Args(run_dir=str(tmp_path / algo), algo=algo, obs_keys=("training_stats",), **TINY))
    assert result.num_timesteps >= 32 and result.model_path.exists()
    checkpoint = json.loads((tmp_path / algo / "checkpoints" / "latest.json").read_text())
    assert (checkpoint["replay_buffer"] is not None) == (algo == "dqn")
    policy = load_agent(tmp_path / algo)
    settings = EpisodeSettings("TrainGym/DigitsMLP-v0", 3, 5, (0,))
    (episode,) = run_policy_object(policy, algo, settings)
    assert episode.steps == 3 and len(episode.moves) == 3


def test_anneal_lr_lowers_the_agents_learning_rate_to_near_zero_and_is_recorded(tmp_path: Path) -> None:
    from stable_baselines3 import PPO

    result = train(Args(run_dir=str(tmp_path / "run"), anneal_lr=True, **TINY))
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["args"]["anneal_lr"] is True and config["algo_kwargs"]["anneal_lr"] is True
    model = PPO.load(result.model_path)
    start = config["algo_kwargs"]["learning_rate"]
    assert model.lr_schedule(1.0) == pytest.approx(start) and model.lr_schedule(0.0) == 0.0
    final_lr = model.policy.optimizer.param_groups[0]["lr"]
    assert final_lr < start / 2  # the last update ran late in the schedule
    with pytest.raises(ValueError, match="--anneal-lr"):
        Args(backend="rllib", anneal_lr=True)


def test_train_envs_give_one_worker_per_family_and_refuse_unequal_observations(tmp_path: Path) -> None:
    from traingym.agents.train import RunError, build_training_env

    ids = ("TrainGym/DigitsMLP-v0", "TrainGym/TabularMLP-v0")
    args = Args(env="TrainGym/MNISTCNN-v0", train_envs=ids, **{**TINY, "n_envs": 1})
    assert args.n_envs == 2 and args.vec_env == "subproc" and args.training_env_ids() == ids
    venv, _ = build_training_env(args)
    try:
        assert [spec.id for spec in venv.get_attr("spec")] == list(ids)
    finally:
        venv.close()
    result = train(Args(run_dir=str(tmp_path / "mixed"), env="TrainGym/MNISTCNN-v0", train_envs=ids, **TINY))
    assert json.loads((tmp_path / "mixed" / "config.json").read_text())["args"]["train_envs"] == list(ids)
    (episode,) = run_policy_object(load_agent(result.run_dir), "mixed",
                                   EpisodeSettings("TrainGym/MNISTCNN-v0", 2, 3, (0,)))
    assert episode.steps == 2
    # Every family's neurons block has the same layout (the last 12 entries: token relevance for text, input
    # relevance otherwise), so image and text families can share an agent; spaces that differ are refused.
    from stable_baselines3.common.vec_env import DummyVecEnv
    from traingym.agents.train import check_same_spaces

    shared = gym.make("TrainGym/DigitsMLP-v0", obs_keys=["neurons"]).observation_space
    assert gym.make("TrainGym/ReviewsBERT-v0", obs_keys=["neurons"]).observation_space == shared
    unequal = DummyVecEnv([lambda k=k: gym.make("TrainGym/DigitsMLP-v0", obs_keys=["neurons"], flag_top_k=k)
                           for k in (4, 8)])
    with pytest.raises(RunError, match="second's observation space"):
        check_same_spaces(unequal, ["first", "second"])
    with pytest.raises(ValueError, match="--train-envs"):
        Args(train_envs=("CartPole-v1",))


@pytest.mark.parametrize("n_envs", [1, 4])  # the plain env and the batched env
def test_knobs_subset_agent_never_moves_the_other_knobs(tmp_path: Path, n_envs: int) -> None:
    knobs = ("lr", "aug_level")
    result = train(Args(run_dir=str(tmp_path / "run"), knobs=knobs, **{**TINY, "n_envs": n_envs}))
    policy = load_agent(result.run_dir)
    assert policy.model.action_space.nvec.tolist() == [3, 3]
    settings = EpisodeSettings("TrainGym/DigitsMLP-v0", 6, 3, (0, 1))
    episodes = run_policy_object(policy, "subset", settings)
    moves = [m for e in episodes for m in e.moves]
    assert len(moves) == 12 and all(m[1] == 0 and m[3] == 0 for m in moves)  # weight decay, neuron scale: keep
    assert Args.from_json(Args(knobs=knobs).to_json()).knobs == knobs


def test_knobs_bad_values_are_refused() -> None:
    with pytest.raises(ValueError, match="knobs must be distinct names"):
        Args(knobs=("lr", "momentum"))
    with pytest.raises(ValueError, match="--knobs"):
        Args(knobs=("lr",), algo="dqn")


def test_env_workers_split_the_batched_env_and_the_agent_does_not_depend_on_them(tmp_path: Path) -> None:
    import torch

    args = {**TINY, "n_envs": 4, "vec_env": "batched", "total_timesteps": 16, "n_steps": 4}
    one = train(Args(run_dir=str(tmp_path / "one"), env_workers=1, **args))
    two = train(Args(run_dir=str(tmp_path / "two"), env_workers=2, **args))
    assert json.loads((two.run_dir / "config.json").read_text())["args"]["env_workers"] == 2
    weights = [load_agent(r.run_dir).model.policy.state_dict() for r in (one, two)]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert Args(n_envs=16, vec_env="batched").env_workers == min(os.cpu_count() or 1, 2)
    assert Args(n_envs=4, vec_env="subproc").env_workers == 1
    with pytest.raises(ValueError, match="--env-workers 2 splits the batched env"):
        Args(n_envs=4, vec_env="subproc", env_workers=2)
    with pytest.raises(ValueError, match=r"--env-workers must be in \[0, --n-envs=4\]"):
        Args(n_envs=4, vec_env="batched", env_workers=5)


@pytest.mark.parametrize("n_envs", range(1, 17))
def test_ppo_default_rollout_gives_minibatches_of_at_least_16(n_envs: int) -> None:
    kwargs = Args(n_envs=n_envs, vec_env="subproc").algo_kwargs()
    assert kwargs["n_steps"] * n_envs >= 64 and kwargs["n_steps"] >= 16
    assert kwargs["batch_size"] >= 16 and kwargs["n_steps"] * n_envs % kwargs["batch_size"] == 0


def test_target_kl_reaches_ppo_and_is_refused_out_of_range(tmp_path: Path) -> None:
    from stable_baselines3 import PPO

    result = train(Args(run_dir=str(tmp_path / "run"), target_kl=0.02, **TINY))
    assert PPO.load(result.model_path).target_kl == 0.02
    assert "target_kl" not in Args(algo="a2c", target_kl=0.02).algo_kwargs()
    with pytest.raises(ValueError, match="--target-kl"):
        Args(target_kl=-1.0)


def test_periodic_evaluation_does_not_change_what_the_agent_learns(tmp_path: Path) -> None:
    """An evaluation env in the agent's process must not change the threads the agent's updates run on."""
    import torch
    from stable_baselines3 import PPO

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        settings = {**TINY, "n_envs": 2, "vec_env": "subproc", "eval_freq_episodes": 1}
        quiet = train(Args(run_dir=str(tmp_path / "quiet"), **{**settings, "eval_freq": 0}))
        evaluated = train(Args(run_dir=str(tmp_path / "evaluated"), **{**settings, "eval_freq": 16}))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert (tmp_path / "evaluated" / "learning_curve.csv").exists()
    a, b = PPO.load(quiet.model_path).policy.state_dict(), PPO.load(evaluated.model_path).policy.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
