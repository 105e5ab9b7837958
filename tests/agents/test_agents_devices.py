"""Device flags reach every env the run builds: training, periodic and final evaluation, and the advisors' models."""

from __future__ import annotations

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
