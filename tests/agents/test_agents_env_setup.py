"""How a run builds its envs: device flags reach every env (training, periodic and final evaluation, the advisors'
models), and the training envs are batched where they can be."""

from __future__ import annotations

import os

import pytest
import torch
from traingym.advisors import DiagnosisConfig, LLMOptions
from traingym.agents.args import Args
from traingym.agents.train import periodic_eval_settings
from traingym.envs.config import TrainingEnvConfig


def test_cuda_flags_are_refused_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="--target-device cuda: no CUDA device"):
        Args(target_device="cuda")
    with pytest.raises(ValueError, match="--advisor-device cuda:1: no CUDA device"):
        Args(advisor_device="cuda:1")
    with pytest.raises(ValueError, match="--target-device must be 'cpu', 'cuda' or 'cuda:N', got 'gpu'"):
        Args(target_device="gpu")


def test_target_and_advisor_devices_reach_the_training_and_evaluation_envs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # only the flags are checked: no env is built
    args = Args(target_device="cuda:0", advisor_device="cuda")
    kwargs = args.env_kwargs()
    assert kwargs["device"] == "cuda:0" and kwargs["advisor_device"] == "cuda"
    evaluation = periodic_eval_settings(args).env_kwargs({})
    assert evaluation["device"] == "cuda:0" and evaluation["advisor_device"] == "cuda"
    config = TrainingEnvConfig(**{k: v for k, v in kwargs.items() if k != "obs_keys"})
    assert (config.device, config.advisor_device) == ("cuda:0", "cuda")


def test_cpu_runs_keep_their_old_env_kwargs() -> None:
    assert not {"device", "advisor_device"} & set(Args().env_kwargs())


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "", None])
def test_advisor_side_device_is_validated_at_every_layer(bad: object) -> None:
    with pytest.raises(ValueError, match="advisor_device must be"):
        TrainingEnvConfig(advisor_device=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="device must be"):
        LLMOptions(device=bad)  # type: ignore[arg-type]
    assert DiagnosisConfig(llm=LLMOptions(device="cuda:1")).llm.device == "cuda:1"


def test_vec_env_auto_picks_the_batched_env_where_it_applies() -> None:
    mlp = Args(env="TrainGym/DigitsMLP-v0", n_envs=0)
    assert (mlp.vec_env, mlp.n_envs) == ("batched", 16)
    assert Args(env="TrainGym/DigitsMLP-v0", n_envs=4).vec_env == "batched"
    assert Args(env="TrainGym/DigitsMLP-v0", n_envs=1).vec_env == "subproc"  # one env: the plain env in-process
    assert Args(env="TrainGym/DigitsCNN-v0").vec_env == "subproc"
    text = Args(env="TrainGym/ReviewsShortcut-v0", n_envs=0)  # grouped BERT training (BatchedTextEnv)
    assert (text.vec_env, text.n_envs, text.env_workers) == ("batched", 16, min(2, os.cpu_count() or 1))
    assert Args(env="TrainGym/DigitsMLP-v0", algo="dqn").vec_env == "subproc"  # Discrete(81) wrapper
    with pytest.raises(ValueError, match="--vec-env batched needs an env with a batched entry point"):
        Args(env="TrainGym/MNISTCNN-v0", vec_env="batched")


def test_runs_saved_before_the_batched_env_resume_in_subprocesses() -> None:
    saved = Args(env="TrainGym/DigitsMLP-v0", vec_env="subproc", n_envs=2).to_json()
    del saved["vec_env"]
    assert Args.from_json(saved).vec_env == "subproc"
    assert Args.from_json(Args(n_envs=0).to_json()).vec_env == "batched"
