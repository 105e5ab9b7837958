"""Policies in an env whose agent chooses which grid cell to decorrelate (``mask_grid``): the baselines' fifth
action entry, the diagnosis-aware controller's cell, demonstrations and knob subsets that carry the cell."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv
from traingym.agents.baselines import make_baseline
from traingym.agents.env_factory import env_factory
from traingym.agents.kickstart import collect_demonstrations
from traingym.agents.knob_subset import KnobSubsetVecEnv
from traingym.envs.tasks.pathologies import PATCH_GRID, DigitsPatchPathologies, patch_cell
from traingym.protocol.moves import KNOBS

ENV_ID = "TrainGym/DigitsPatchPathologies-v0"
CELLS = PATCH_GRID**2


def _run(policy_name: str, instance_index: int, steps: int) -> list[np.ndarray]:
    """The policy's actions over ``steps`` steps of a held-out instance."""
    policy = make_baseline(policy_name, ENV_ID, seed=0, horizon=20)
    env = gym.make(ENV_ID, **{"obs_keys": ["training_stats"], **policy.env_overrides, "instance_set": "test"})
    policy.begin_episode(0)
    obs, info = env.reset(seed=0, options={"instance_index": instance_index})
    actions = []
    for _ in range(steps):
        policy.observe_info(info)
        action, _ = policy.predict(obs)
        actions.append(action)
        obs, _, _, _, info = env.step(action)
    env.close()
    return actions


def test_the_diagnosis_aware_controller_decorrelates_the_planted_cell_once_it_hears_of_a_shortcut() -> None:
    instances = DigitsPatchPathologies().instance_set("test", "sgd")
    index = next(i for i, x in enumerate(instances) if x["pathology"] == "spurious" and x["strength"] > 0.8)
    actions = _run("diagnosis_aware", index, 8)
    cells = [int(a[-1]) for a in actions]
    assert all(len(a) == len(KNOBS) + 1 for a in actions)
    assert cells[0] == 0  # nothing heard yet
    chosen = [c for c in cells if c]
    assert chosen and set(chosen) == {1 + patch_cell(instances[index]["split_seed"])}  # the planted cell, kept
    assert all(a[2] == 1 for a in actions)  # no augmentation for the shortcut: the cell is the remedy


def test_blind_baselines_choose_no_cell_and_the_random_one_any() -> None:
    assert {int(a[-1]) for a in _run("keep", 0, 3)} == {0}
    random_cells = {int(a[-1]) for a in _run("random", 0, 12)}
    assert len(random_cells) > 3 and random_cells <= set(range(CELLS + 1))


def test_demonstrations_and_knob_subsets_carry_the_cell() -> None:
    kwargs = {"steps_per_action": 5, "obs_keys": ("training_stats",)}
    demos = collect_demonstrations("random", ENV_ID, kwargs, ("training_stats",), ("lr",), episodes=1, horizon=4,
                                   seed=0)
    assert demos.actions.shape == (4, 2) and demos.actions[:, 1].max() <= CELLS
    driven = collect_demonstrations("keep", ENV_ID, kwargs, ("training_stats",), ("lr",), episodes=1, horizon=3,
                                    seed=0, driver=lambda observation: np.array([1, 5]))
    assert driven.actions.tolist() == [[1, 0]] * 3  # keep's labels: no cell
    venv = KnobSubsetVecEnv(DummyVecEnv([env_factory(ENV_ID, 3, kwargs)]), ("lr", "aug_level"))
    assert venv.action_space == gym.spaces.MultiDiscrete([3, 3, CELLS + 1])
    venv.reset()
    _, _, _, infos = venv.step(np.array([[1, 1, 4]]))
    assert infos[0]["mask_cell"] == 4
    venv.close()


def test_evaluated_episodes_record_the_cell_after_the_move() -> None:
    from traingym.agents.baselines import RandomPolicy
    from traingym.agents.episodes import EpisodeSettings, run_policy_object
    from traingym.agents.plots import move_frequencies

    settings = EpisodeSettings(ENV_ID, 3, 2, (0,))
    (episode,) = run_policy_object(RandomPolicy(seed=1), "random", settings)
    assert [len(m) for m in episode.moves] == [len(KNOBS) + 1] * 3
    assert all(0 <= m[-1] <= CELLS for m in episode.moves)
    assert move_frequencies([episode]).shape == (len(KNOBS), 3)
