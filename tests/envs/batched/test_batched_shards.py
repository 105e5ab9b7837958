"""The batched env split between worker processes (BatchedShardsVecEnv): the same episodes bit for bit as the
one-process batched env, SB3's vector-env protocol across shards, worker indexing, idempotent close."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.vec_env import VecCheckNan
from traingym.envs.batched.sb3 import BatchedSB3VecEnv, make_batched_vec_env
from traingym.envs.batched.shards import BatchedShardsVecEnv, shard_sizes

KWARGS = {"obs_keys": ["training_stats", "neurons"], "steps_per_action": 4, "val_size": 64, "horizon": 4}


def test_shard_sizes_cover_every_env_without_empty_shards() -> None:
    assert shard_sizes(16, 2) == [8, 8]
    assert shard_sizes(5, 2) == [3, 2]
    assert shard_sizes(2, 4) == [1, 1]


def test_shards_give_the_one_process_episodes_bit_for_bit() -> None:
    # 5 sub-envs in 2 workers (3 + 2): the stacks hold different instances than the one 5-env stack, and the
    # episodes (horizon 4, 10 steps: two same-step autoresets) must still be identical.
    single = make_batched_vec_env("TrainGym/DigitsMLP-v0", 5, seed=11, **KWARGS)
    sharded = make_batched_vec_env("TrainGym/DigitsMLP-v0", 5, seed=11, workers=2, **KWARGS)
    assert isinstance(single, BatchedSB3VecEnv) and isinstance(sharded, BatchedShardsVecEnv)
    assert sharded.observation_space == single.observation_space and sharded.action_space == single.action_space
    rng = np.random.default_rng(0)
    try:
        first_single, first_sharded = single.reset(), sharded.reset()
        assert all(np.array_equal(first_single[k], first_sharded[k]) for k in first_single)
        resets = 0
        for _ in range(10):
            actions = rng.integers(0, 3, size=(5, 4))
            obs_a, rew_a, done_a, info_a = single.step(actions)
            obs_b, rew_b, done_b, info_b = sharded.step(actions)
            assert all(np.array_equal(obs_a[k], obs_b[k]) for k in obs_a)
            assert np.array_equal(rew_a, rew_b) and np.array_equal(done_a, done_b)
            resets += int(done_a.sum())
            for a, b in zip(info_a, info_b):
                assert a.keys() == b.keys()
                if "terminal_observation" in a:
                    assert all(np.array_equal(a["terminal_observation"][k], b["terminal_observation"][k])
                               for k in a["terminal_observation"])
        assert resets == 10  # the comparison went through two autoresets of every sub-env
    finally:
        single.close()
        sharded.close()


def test_shards_route_attributes_methods_and_seeds_to_the_right_sub_env() -> None:
    vec = make_batched_vec_env("TrainGym/DigitsMLP-v0", 3, seed=2, workers=2, **KWARGS)
    checked = VecCheckNan(vec, raise_exception=True)
    try:
        first = checked.reset()["training_stats"]
        assert vec.get_attr("_t") == [0, 0, 0]
        checked.step(np.ones((3, 4), dtype=np.int64))
        assert vec.get_attr("_t", indices=[2]) == [1] and vec.get_attr("_t", indices=[0, 2]) == [1, 1]
        vec.set_attr("divergence_penalty_seen", 7, indices=[1])
        assert vec.get_attr("divergence_penalty_seen", indices=[1]) == [7]
        assert vec.env_method("get_wrapper_attr", "divergence_penalty_seen", indices=[1]) == [7]
        assert vec.env_is_wrapped(gym.Wrapper) == [False] * 3
        vec.seed(2)
        assert np.array_equal(checked.reset()["training_stats"], first)  # seeds apply at the next reset, as SB3
    finally:
        checked.close()
    vec.close()  # idempotent
    assert vec.closed


def test_workers_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="workers"):
        make_batched_vec_env("TrainGym/DigitsMLP-v0", 2, workers=3)
    with pytest.raises(ValueError, match="workers"):
        make_batched_vec_env("TrainGym/DigitsMLP-v0", 2, workers=0)


def test_a_failing_worker_raises_its_error_in_the_parent() -> None:
    vec = make_batched_vec_env("TrainGym/DigitsMLP-v0", 2, seed=0, workers=2, **KWARGS)
    try:
        vec.reset()
        with pytest.raises(RuntimeError, match="AttributeError"):
            vec.env_method("no_such_method", indices=[1])
        vec.step(np.ones((2, 4), dtype=np.int64))  # the worker survives its command's failure
    finally:
        vec.close()
    with pytest.raises(RuntimeError, match="val_size"):
        make_batched_vec_env("TrainGym/DigitsMLP-v0", 2, workers=2, val_size=-5)
