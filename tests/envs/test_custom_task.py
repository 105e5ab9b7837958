"""A task family of your own: register_task, the ``module:Class`` spec, the task contract, an agent trained on it."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import traingym.envs  # noqa: F401  (registers the ids)
from traingym.envs import register_task
from traingym.envs.custom import EXAMPLE_TASK
from traingym.envs.hidden_layer import HiddenLayer
from traingym.envs.tasks.base import TaskData
from traingym.envs.tasks.contract import TaskContractError
from traingym.envs.tasks.custom_example import BlobsFamily, BlobsNet

SMALL = {"steps_per_action": 5, "obs_keys": ["training_stats", "neurons"], "horizon": 4, "max_episode_steps": 4}


class NaNBlobs(BlobsFamily):
    name = "nan_blobs"

    def datasets(self, instance):
        data = super().datasets(instance)
        x = data.x.clone()
        x[3, 0] = float("nan")
        return TaskData(x, data.y, 3, "nan_blobs")


class FlatLabels(BlobsFamily):
    name = "flat_labels"

    def datasets(self, instance):
        data = super().datasets(instance)
        return TaskData(data.x, data.y[:, None], 3, "flat_labels")


class NoHidden(BlobsFamily):
    name = "no_hidden"

    def hidden_layers(self, model):
        return []


class WrongUnits(BlobsFamily):
    name = "wrong_units"

    def hidden_layers(self, model):
        return [HiddenLayer("head", model.act, model.head.weight, model.head.bias)]


class TwoLogits(BlobsNet):
    def forward(self, x):
        return super().forward(x)[:, :2]


class WrongLogits(BlobsFamily):
    name = "wrong_logits"

    def build_model(self, instance, n_classes, generator):
        return TwoLogits(instance["width"], generator)


def test_registered_name_and_module_spec_build_the_same_env() -> None:
    register_task("my_blobs", BlobsFamily)
    a = gym.make("TrainGym/Custom-v0", task="my_blobs", **SMALL)
    b = gym.make("TrainGym/Custom-v0", task=EXAMPLE_TASK, **SMALL)
    obs_a, _ = a.reset(seed=1)
    obs_b, _ = b.reset(seed=1)
    for _ in range(3):
        action = np.array([2, 1, 1, 1])
        obs_a, ra, *_ = a.step(action)
        obs_b, rb, *_ = b.step(action)
        assert ra == rb and all(np.array_equal(obs_a[k], obs_b[k]) for k in obs_a)
    assert a.unwrapped.report()["task"]["family"] == "blobs"
    a.close()
    b.close()


@pytest.mark.parametrize(("family", "rule"), [
    (NaNBlobs, "finite"), (FlatLabels, "data"), (NoHidden, "hidden_layers"), (WrongUnits, "hidden_layers"),
    (WrongLogits, "model")])
def test_a_broken_family_fails_at_construction_naming_the_rule(family: type, rule: str) -> None:
    register_task(family.name, family)
    with pytest.raises(TaskContractError, match=f"breaks the task contract rule '{rule}'"):
        gym.make("TrainGym/Custom-v0", task=family.name, **SMALL)


def test_bad_specs_are_one_clear_error() -> None:
    with pytest.raises(ValueError, match="cannot import task family 'no_such_pkg.tasks:Fam'"):
        gym.make("TrainGym/Custom-v0", task="no_such_pkg.tasks:Fam", **SMALL)
    with pytest.raises(ValueError, match="subclasses traingym.envs.tasks.TaskFamily"):
        gym.make("TrainGym/Custom-v0", task="collections:OrderedDict", **SMALL)
    with pytest.raises(ValueError, match="task must be a built-in family name"):
        gym.make("TrainGym/Custom-v0", task="not a task", **SMALL)
    with pytest.raises(ValueError, match="is a built-in family"):
        register_task("digits_mlp", BlobsFamily)
    with pytest.raises(ValueError, match="TaskFamily subclass"):
        register_task("dicts", dict)  # type: ignore[arg-type]


def test_ppo_runs_on_the_users_family() -> None:
    from stable_baselines3 import PPO

    env = gym.make("TrainGym/Custom-v0", task=EXAMPLE_TASK, **SMALL)
    model = PPO("MultiInputPolicy", env, n_steps=16, batch_size=16, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=32)
    obs, _ = env.reset(seed=5)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(action)
    assert model.num_timesteps == 32
    env.close()


class _SlowStart(gym.Wrapper):
    """Every episode of the user's family starts at LR 1e-3, too low for 60 SGD steps: raising it pays."""

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)  # seeds self.np_random (the wrapper's own draw of the instance)
        index = options["instance_index"] if options else int(self.np_random.integers(len(self.unwrapped.instances)))
        instance = {**self.unwrapped.instances[index], "lr": 1e-3, "aug_level": 0}
        return self.env.reset(seed=seed, options={"instance": instance})


def _slow_start_env() -> gym.Env:
    return _SlowStart(gym.make("TrainGym/Custom-v0", task=EXAMPLE_TASK, steps_per_action=10,
                               obs_keys=["training_stats"], horizon=6, max_episode_steps=6))


def _final_val_accuracy(policy, episodes: int = 8) -> float:
    env = _slow_start_env()
    finals = []
    for i in range(episodes):
        obs, _ = env.reset(seed=1000 + i, options={"instance_index": i})
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(policy(obs))
            done = terminated or truncated
        finals.append(info["val_accuracy"])
    env.close()
    return float(np.mean(finals))


@pytest.mark.slow  # 4096 PPO steps on the user's family (~30 s)
def test_an_agent_learns_on_the_users_family() -> None:
    """PPO trained on the worked example with too-low starting LRs learns to steer: its final validation accuracy
    on 8 instances rises well above its untrained self and the keep policy (measured: 0.56 untrained, 0.62 keep,
    0.80 trained, 0.83 for 'always raise the LR')."""
    from stable_baselines3 import PPO

    env = _slow_start_env()
    model = PPO("MultiInputPolicy", env, n_steps=64, batch_size=64, n_epochs=10, learning_rate=3e-3, gamma=1.0,
                seed=0, device="cpu")
    untrained = _final_val_accuracy(lambda obs: model.predict(obs, deterministic=True)[0])
    keep = _final_val_accuracy(lambda obs: np.array([1, 1, 1, 1]))
    model.learn(total_timesteps=4096)
    trained = _final_val_accuracy(lambda obs: model.predict(obs, deterministic=True)[0])
    env.close()
    assert trained > untrained + 0.15 and trained > keep + 0.1
