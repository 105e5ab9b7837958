"""``device="cuda"`` trains the target network on the GPU (skipped where torch sees no CUDA device)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from traingym.envs import TrainingEnv
from traingym.envs.tasks.registry import task_names

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

FAST = {"steps_per_action": 5, "val_size": 128, "encoder": "hashing"}
# Every knob moves at some point: augmentation up to level 4 and down, neuron scaling both ways, lr/wd changes.
ACTIONS = [np.array(a) for a in ([1, 1, 2, 1], [1, 1, 2, 2], [2, 1, 2, 1], [1, 2, 2, 0], [0, 1, 1, 2],
                                 [1, 0, 0, 1], [1, 1, 1, 1])]


@pytest.mark.parametrize("task", task_names())
def test_cuda_episode_trains_on_the_gpu(task: str) -> None:
    env = TrainingEnv(task=task, device="cuda", **FAST)
    instance = {**env.instances[0], "aug_level": 1}
    obs, info = env.reset(seed=0, options={"instance": instance})
    model, split = env.model, env.split
    assert all(p.is_cuda for p in model.parameters())
    assert all(t.is_cuda for t in (split.x_train, split.y_train, split.x_val, split.y_val, split.x_test))
    before = [p.detach().clone() for p in model.parameters()]
    truncated = terminated = False
    step = scaled = 0
    while not (truncated or terminated):
        obs, reward, terminated, truncated, info = env.step(ACTIONS[step % len(ACTIONS)])
        step += 1
        scaled = max(scaled, info["scaled_neurons"])  # flagged ids (kept on the CPU) index CUDA weights
        assert env.observation_space.contains(obs)
        assert all(np.isfinite(v).all() for v in obs.values())
        assert np.isfinite(reward)
    assert terminated or step == env.config.horizon  # a full episode unless the run diverged
    assert 0.0 <= info["test_accuracy"] <= 1.0
    assert scaled > 0
    assert all(p.is_cuda for p in env.model.parameters())
    assert any(not torch.equal(b, p.detach()) for b, p in zip(before, env.model.parameters()))
    env.close()


def test_cuda_and_cpu_start_from_the_same_network() -> None:
    """Same seed, same instance: the initial network and validation loss match the CPU env's (up to TF32)."""
    losses = []
    for device in ("cpu", "cuda"):
        env = TrainingEnv(task="digits_cnn", device=device, **FAST)
        _, info = env.reset(seed=3, options={"instance_index": 5})
        losses.append(info["val_loss"])
        env.close()
    assert losses[1] == pytest.approx(losses[0], rel=1e-2)


def test_minilm_on_the_gpu_encodes_like_the_cpu() -> None:
    from traingym.advisors.encoders import MiniLMEncoder

    text = "validation loss rising while training loss falls; suggest more weight decay."
    gpu = MiniLMEncoder(store=False, device="cuda").encode(text)
    cpu = MiniLMEncoder(store=False).encode(text)
    np.testing.assert_allclose(gpu, cpu, atol=1e-4)


def test_env_with_advisor_device_cuda_runs_its_encoder_on_the_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    from traingym.advisors import encoders

    monkeypatch.setenv("TRAINGYM_CACHE_DIR", "off")  # no stored vectors: the encoder must run
    env = TrainingEnv(steps_per_action=2, val_size=64, device="cuda", advisor_device="cuda")
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([1, 1, 1, 1]))
    assert info["advisor"]["text"]
    env.close()
    assert next(encoders._MINILM["cuda"][1].parameters()).is_cuda
