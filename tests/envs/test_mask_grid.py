"""The agent-chosen decorrelation target (``mask_grid``) and the patch mixture it is for: the grid's cells, the planted
patch, the fifth action entry, what a chosen cell does to the training batches, the per-cell relevance the agent
observes, and the batched env running it as the single env does."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
import traingym.envs  # noqa: F401
from traingym.envs.batched.mlp import BatchedTrainingEnv
from traingym.envs.tasks.digits import SHAPE
from traingym.envs.tasks.input_cells import input_cells
from traingym.envs.tasks.pathologies import (
    PATCH_GRID,
    DigitsPatchPathologies,
    DigitsPathologies,
    patch_cell,
    patch_codes,
)
from traingym.envs.training_env import TrainingEnv

ENV_ID = "TrainGym/DigitsPatchPathologies-v0"
CELLS = PATCH_GRID**2
KEEP_NO_CELL = np.array([1, 1, 1, 1, 0])


def _instance(pathology: str, strength: float, split_seed: int = 3) -> dict:
    return {"family": "digits_patch_pathologies", "split_seed": split_seed, "depth": 1, "width": 64, "lr": 0.1,
            "weight_decay": 1e-3, "aug_level": 0, "label_noise": 0.0, "pathology": pathology,
            "strength": strength}


def test_cells_partition_every_channel_of_the_image_row_major() -> None:
    cells = input_cells((1, 8, 8), 4)
    assert len(cells) == 16 and sorted(np.concatenate(cells).tolist()) == list(range(64))
    assert cells[5].tolist() == [18, 19, 26, 27]  # second row and column of cells: pixels r2-3, c2-3
    rgb = input_cells((3, 4, 4), 2)
    assert rgb[1].tolist() == [2, 3, 6, 7, 18, 19, 22, 23, 34, 35, 38, 39]  # the top-right 2x2 of each channel


@pytest.mark.parametrize("shape", [(64,), (1, 8, 6), (1, 6, 8)])
def test_cells_of_a_non_image_or_an_uneven_image_name_mask_grid(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="mask_grid=4"):
        input_cells(shape, 4)


def test_patch_codes_the_label_at_the_instances_cell_in_training_only() -> None:
    instance = _instance("spurious", 1.0)
    split = DigitsPatchPathologies().split(instance, 512)
    clean = DigitsPathologies().split(_instance("clean", 0.0), 512)
    cell = input_cells(SHAPE, PATCH_GRID)[patch_cell(3)]
    codes = torch.from_numpy(patch_codes(10, 4))
    assert len({tuple(c.tolist()) for c in codes}) == 10 and codes.sum(1).min() >= 1  # distinct, never blank
    assert torch.equal(split.x_train[:, cell], codes[split.y_train])  # s = 1: every training image
    rest = torch.ones(64, dtype=torch.bool)
    rest[torch.from_numpy(cell)] = False
    assert torch.equal(split.x_train[:, rest], clean.x_train[:, rest])  # nothing else planted
    shown_class = [int(np.flatnonzero((codes == row).all(1))[0]) for row in split.x_val[:, cell]]
    assert np.mean(np.array(shown_class) == split.y_val.numpy()) < 0.2  # a random class's code in validation
    assert len({patch_cell(seed) for seed in range(40)}) > 10  # the cell varies between instances


def test_patch_codes_need_enough_pixels() -> None:
    with pytest.raises(ValueError, match="at most 15 classes"):
        patch_codes(16, 4)


def test_the_action_gets_the_cell_entry_and_the_neurons_block_one_feature_per_cell() -> None:
    env = gym.make(ENV_ID, obs_keys=["training_stats", "neurons"])
    plain = gym.make("TrainGym/DigitsPathologies-v0", obs_keys=["training_stats", "neurons"])
    assert env.action_space == gym.spaces.MultiDiscrete([3, 3, 3, 3, CELLS + 1])
    assert env.observation_space["neurons"].shape[0] == plain.observation_space["neurons"].shape[0] + 2 * CELLS
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert info["mask_cell"] == 0 and info["cell_relevance"] == info["cell_flagged"] == [0.0] * CELLS
    obs, _, _, _, info = env.step(np.array([1, 1, 1, 1, 7]))
    assert info["mask_cell"] == 7
    assert np.allclose(obs["neurons"][-2 * CELLS:], info["cell_relevance"] + info["cell_flagged"], atol=1e-4)
    assert "mask_cell" not in plain.reset(seed=0)[1]
    env.close()
    plain.close()


@pytest.mark.parametrize("action", [[1, 1, 1, 1], [1, 1, 1, 1, CELLS + 1], [1, 1, 1, 1, -1], [1, 1, 1, 1, 1.5],
                                    ["a", "b", "c", "d", "e"]])
def test_a_bad_action_names_the_cell_range(action: list) -> None:
    env = TrainingEnv(task="digits_patch_pathologies", mask_grid=PATCH_GRID, obs_keys=("training_stats",))
    env.reset(seed=0)
    with pytest.raises(ValueError, match=f"a cell in 0..{CELLS}"):
        env.step(np.array(action))
    with pytest.raises(ValueError, match="action entries must be in"):  # bad knobs: the cell stays as it was
        env.step(np.array([1, 1, 1, 7, 3]))
    indices = env.draw_batch_indices()
    assert torch.equal(env.training_batches(indices)[0], env.split.x_train[indices])  # still no cell decorrelated
    env.close()


def test_text_and_table_tasks_refuse_a_grid() -> None:
    with pytest.raises(ValueError, match="mask_grid=4 needs an image task"):
        TrainingEnv(task="reviews_shortcut", mask_grid=4)
    env = TrainingEnv(task="tabular_mlp", mask_grid=4, obs_keys=("training_stats",))
    with pytest.raises(ValueError, match="mask_grid=4 needs an image input"):
        env.reset(seed=0)
    env.close()
    with pytest.raises(ValueError, match="mask_grid must be"):
        TrainingEnv(task="digits_mlp", mask_grid=-1)


def test_the_chosen_cell_alone_is_decorrelated_and_augmentation_stays_the_familys() -> None:
    env = TrainingEnv(task="digits_patch_pathologies", mask_grid=PATCH_GRID, obs_keys=("training_stats",))
    env.reset(seed=0, options={"instance": _instance("spurious", 1.0)})
    indices = env.draw_batch_indices()
    x, _ = env.training_batches(indices)
    assert torch.equal(x, env.split.x_train[indices])  # cell 0: nothing decorrelated
    env.begin_step(np.array([1, 1, 2, 1, 6]))
    moved, _ = env.training_batches(indices)
    cell = torch.from_numpy(input_cells(SHAPE, PATCH_GRID)[5])
    changed = (moved != x).flatten(0, 1).any(0)
    assert changed[cell].any() and not changed[~torch.isin(torch.arange(64), cell)].any()
    assert env.family_aug_level() == 1  # the knob's level, whatever is flagged
    env.close()


def _cell_found(instance_index: int) -> tuple[str, bool, float]:
    env = gym.make(ENV_ID, obs_keys=["training_stats"], instance_set="test")
    _, info = env.reset(seed=0, options={"instance_index": instance_index})
    instance = info["instance"]
    for _ in range(5):
        _, _, _, _, info = env.step(KEEP_NO_CELL)
    env.close()
    relevance = np.asarray(info["cell_relevance"])
    return instance["pathology"], int(np.argmax(relevance)) == patch_cell(instance["split_seed"]), relevance.max()


@pytest.mark.slow
def test_the_cell_relevance_points_at_the_planted_patch_on_held_out_instances() -> None:
    """After 5 steps the most relevant cell is the planted one in at least 8 of 10 held-out patch instances; on
    clean ones no cell stands out as much (the largest squashed z of clean runs stays below the patch runs')."""
    family = DigitsPatchPathologies()
    instances = family.instance_set("test", "sgd")
    spurious = [i for i, x in enumerate(instances) if x["pathology"] == "spurious"][:10]
    clean = [i for i, x in enumerate(instances) if x["pathology"] == "clean"][:10]
    found = [_cell_found(i) for i in spurious]
    assert sum(hit for _, hit, _ in found) >= 8
    clean_max = [top for _, _, top in (_cell_found(i) for i in clean)]
    assert np.median(clean_max) < np.median([top for _, _, top in found])


def test_the_batched_env_runs_the_grid_as_single_envs_do() -> None:
    kwargs = {"task": "digits_patch_pathologies", "mask_grid": PATCH_GRID, "obs_keys": ("training_stats", "neurons"),
              "steps_per_action": 10}
    instances = [{**_instance("spurious", 1.0, 11 + i), "depth": 1 + i} for i in range(2)]
    batched = BatchedTrainingEnv(len(instances), **kwargs)
    singles = [TrainingEnv(**kwargs) for _ in instances]
    assert batched.single_action_space == singles[0].action_space
    for i, (env, instance) in enumerate(zip(singles, instances)):
        batched.reset_env(i, seed=i, options={"instance": instance})
        env.reset(seed=i, options={"instance": instance})
    for t in range(4):
        actions = np.array([[1, 1, 1, 1, 1 + patch_cell(x["split_seed"]) if t > 0 else 0] for x in instances])
        for env, action, result in zip(singles, actions, batched.step_envs(actions)):
            obs, reward, *_ = env.step(action)
            assert result is not None and result[4]["mask_cell"] == action[-1]
            assert max(float(np.abs(result[0][k] - obs[k]).max()) for k in obs) <= 1e-5
    batched.close()
    for env in singles:
        env.close()


def test_the_flagged_share_keeps_the_cell_after_its_relevance_fades() -> None:
    """Decorrelated, the patch stops driving errors and its relevance fades; the cell's share of ever-flagged pixels
    stays, so a policy that reads the observation alone can keep decorrelating it."""
    env = TrainingEnv(task="digits_patch_pathologies", mask_grid=PATCH_GRID, obs_keys=("training_stats",))
    env.reset(seed=0, options={"instance": _instance("spurious", 1.0)})
    planted = patch_cell(3)
    for _ in range(4):
        _, _, _, _, info = env.step(KEEP_NO_CELL)
    assert int(np.argmax(info["cell_relevance"])) == planted and info["cell_flagged"][planted] > 0
    peak = info["cell_relevance"][planted]
    for _ in range(10):
        _, _, _, _, info = env.step(np.array([1, 1, 1, 1, planted + 1]))
    assert info["cell_relevance"][planted] < peak
    assert int(np.argmax(info["cell_flagged"])) == planted
    env.close()
