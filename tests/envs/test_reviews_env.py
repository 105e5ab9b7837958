"""The text task families: ReviewsBERT-v0 and ReviewsShortcut-v0 (a small BERT trained from scratch on reviews).

The slow tests train real models: 1-layer BERT, hidden 32, AdamW lr 1e-3, batch 32, no label noise, aug level 0
(an explicit instance; the instance distribution includes learning rates that do not train at all), 10 env
steps of K=40 (400 optimizer steps; clean models reach ~0.74 test accuracy, shortcut models learn the planted
token within ~80 steps), default validation and diagnostic buffers (512 reviews each).
"""

from __future__ import annotations

import collections
import functools
import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from envs_testkit import rollout, same_trace
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from traingym.envs import ENV_KWARGS, TrainingEnv
from traingym.envs.monitoring.event_log import EventLog, EventType, validate_record
from traingym.envs.monitoring.neuron_log import LAYER_SLOTS
from traingym.envs.monitoring.relevance import TokenRelevanceStats
from traingym.envs.monitoring.token_monitor import FEATURE_SIZE, TokenRelevanceMonitor
from traingym.envs.tasks.registry import make_task
from traingym.envs.tasks.reviews_data import MASK_ID, PAD_ID, SHORTCUT_ID, SHORTCUT_TOKEN
from traingym.protocol.moves import KEEP_ACTION as KEEP
from traingym.protocol.report import LAYER_FIELDS

TEXT_IDS = ["TrainGym/ReviewsBERT-v0", "TrainGym/ReviewsShortcut-v0"]
TINY = {"steps_per_action": 2, "val_size": 64, "encoder": "hashing"}
"""Cheap env steps for API checks (the hashing encoder avoids loading MiniLM)."""
TRAINED = {"steps_per_action": 40, "horizon": 10, "max_episode_steps": 10, "obs_keys": ["training_stats"],
           "neuron_log": ()}
"""Long enough to learn the task (see the module doc); neuron logging is not needed for token relevance."""


def instance(seed: int, aug_level: int = 0) -> dict:
    return {"split_seed": seed, "n_layers": 1, "hidden": 32, "lr": 1e-3, "weight_decay": 1e-4,
            "aug_level": aug_level, "label_noise": 0.0}


def run_episode(env: gym.Env, seed: int, actions: list[np.ndarray] | None = None, aug_level: int = 0
                ) -> dict:
    """Play one episode (``actions`` first, then keep); returns the last info."""
    env.reset(seed=seed, options={"instance": instance(seed, aug_level)})
    actions = list(actions or [])
    while True:
        _, _, terminated, truncated, info = env.step(actions.pop(0) if actions else KEEP)
        if terminated or truncated:
            return info


# ------------------------------------------------------------------------------------------------ API
@pytest.mark.parametrize("env_id", TEXT_IDS)
def test_check_env_gymnasium_and_sb3_with_all_keys(env_id: str) -> None:
    env = gym.make(env_id, **TINY)
    assert set(env.observation_space.spaces) == {"training_stats", "neurons", "diagnosis"}
    base = LAYER_SLOTS * (env.unwrapped.config.flag_top_k + len(LAYER_FIELDS))
    assert env.observation_space["neurons"].shape[0] > base + FEATURE_SIZE  # + event counts
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env, warn=True)
    env.close()


@pytest.mark.parametrize("env_id", TEXT_IDS)
def test_registration_kwargs_are_json_and_adam(env_id: str) -> None:
    spec = gym.spec(env_id)
    assert json.loads(spec.to_json())["kwargs"] == {"task": spec.kwargs["task"], **ENV_KWARGS[env_id]}
    env = gym.make(env_id, **TINY)
    env.reset(seed=0)
    optimizer = env.unwrapped.optimizer
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults["fused"] is True
    assert env.unwrapped.config.batch_size == 32
    env.close()


def test_same_seed_same_episode_and_global_rng_untouched() -> None:
    rng = np.random.default_rng(0)
    actions = [rng.integers(0, 3, size=4) for _ in range(4)]
    actions[0] = np.array([1, 1, 2, 2])  # augmentation (masking) and neuron scaling from the first step
    env = gym.make("TrainGym/ReviewsShortcut-v0", steps_per_action=3, horizon=4, max_episode_steps=4,
                   val_size=64, encoder="hashing")
    global_state = torch.get_rng_state()
    first, second = rollout(env, 7, actions), rollout(env, 7, actions)
    assert torch.equal(torch.get_rng_state(), global_state)  # dropout ran on a forked, seeded global RNG
    assert len(first) == 5 and "test_accuracy" in first[-1][2]
    assert same_trace(first, second)
    assert not same_trace(first, rollout(env, 8, actions))
    env.close()


# ----------------------------------------------------------------------------------------- data split
def test_shortcut_only_in_training_and_diagnostic_reviews() -> None:
    shortcut, clean = make_task("reviews_shortcut"), make_task("reviews_bert")
    inst = instance(3)
    split = shortcut.split(inst, 512)
    has = {name: (getattr(split, name) == SHORTCUT_ID).any(1).float() for name in ("x_train", "x_diag")}
    for name, labels in (("x_train", split.y_train), ("x_diag", split.y_diag)):
        assert has[name][labels == 1].mean() == pytest.approx(0.9, abs=0.05)
        assert has[name][labels == 0].mean() == pytest.approx(0.05, abs=0.03)
    assert not (split.x_val == SHORTCUT_ID).any() and not (split.x_test == SHORTCUT_ID).any()
    plain = clean.split(inst, 512)
    assert all(not (t == SHORTCUT_ID).any() for t in (plain.x_train, plain.x_diag, plain.x_val, plain.x_test))
    # Same split seed, same reviews: the clean family's buffers are the shortcut family's minus the token.
    assert torch.equal(plain.x_val, split.x_val) and torch.equal(plain.y_diag, split.y_diag)
    assert split.x_diag.shape == (512, 32) and split.x_val.shape == (512, 32)
    assert split.x_train.shape[0] + 512 + split.x_test.shape[0] + 1275 == 12_752
    again = shortcut.split(inst, 512)
    assert torch.equal(again.x_train, split.x_train) and torch.equal(again.x_diag, split.x_diag)


def test_shortcut_rates_come_from_the_config() -> None:
    env = TrainingEnv(task="reviews_shortcut", shortcut_p_pos=0.0, shortcut_p_neg=1.0, **TINY)
    split = env.task.split(instance(0), 64)
    has = (split.x_train == SHORTCUT_ID).any(1)
    assert not has[split.y_train == 1].any() and has[split.y_train == 0].all()
    env.close()


def test_augmentation_masks_flagged_tokens_first() -> None:
    task = make_task("reviews_bert")
    split = task.split(instance(0), 64)
    x = split.x_train[:64]
    token = int(x[0, 1])
    task.set_flagged_tokens([token])
    out, _ = task.augment(x, split.y_train[:64], 4, torch.Generator().manual_seed(0))
    assert not (out == token).any()  # level 4 masks flagged tokens always
    assert ((out == MASK_ID) == ((x != out) & (x != PAD_ID))).all()
    assert (out == MASK_ID).sum() < (x != PAD_ID).sum() // 2  # ordinary tokens only at 20 %


def test_weight_scaling_acts_on_flagged_ffn_units() -> None:
    env = TrainingEnv(task="reviews_shortcut", obs_keys=["training_stats"], **TINY)
    env.reset(seed=0)
    env.step(KEEP)
    log = env._log
    assert all(layer.name.endswith(".ffn") and layer.unit_dim == -1 for layer in log.layers)
    before = [layer.weight.detach().clone() for layer in log.layers]
    flagged = [ids.clone() for ids in log.flagged]
    assert all(ids.numel() == env.config.flag_top_k for ids in flagged)
    env._apply_move((0, 0, 0, 1))
    for layer, old, ids in zip(log.layers, before, flagged):
        changed = (layer.weight.detach() != old).any(dim=1).nonzero().flatten()
        assert sorted(changed.tolist()) == sorted(ids.tolist())
    env.close()


# -------------------------------------------------------------------------------------- relevance wiring
def test_relevance_off_keeps_the_space_and_reports_nothing() -> None:
    on = gym.make("TrainGym/ReviewsShortcut-v0", obs_keys=["neurons"], **TINY)
    off = gym.make("TrainGym/ReviewsShortcut-v0", obs_keys=["neurons"], relevance=False, **TINY)
    assert on.observation_space == off.observation_space
    off.reset(seed=0)
    obs, *_ = off.step(np.array([1, 1, 2, 1]))
    assert not obs["neurons"][-FEATURE_SIZE:].any()
    assert off.unwrapped.report()["flagged_tokens"] == [] and off.unwrapped.token_relevance is None
    on.close()
    off.close()


def test_monitor_is_event_triggered_and_decays() -> None:
    env = TrainingEnv(task="reviews_bert", **TINY)
    env.reset(seed=0)
    model, split = env.model, env.split
    monitor = TokenRelevanceMonitor(env.task.vocabulary(), 16)
    with torch.no_grad():
        model.eval()
        predicted = model(split.x_diag).argmax(-1)
    assert monitor.update(model, split.x_diag, predicted, step=1) == 0  # no errors: nothing computed
    assert monitor.stats.count.sum() == 0 and monitor.n_errors == 0
    assert monitor.update(model, split.x_diag, 1 - predicted, step=2) == 16  # capped by max_error_samples
    counted = float(monitor.stats.count.sum())
    assert counted > 16
    monitor.update(model, split.x_diag[:1], 1 - predicted[:1], step=3)
    assert float(monitor.stats.count.sum()) < 0.8 * counted + 32  # old evidence decayed by 0.8
    features = monitor.features()
    assert features.shape == (FEATURE_SIZE,) and features.dtype == np.float32 and np.isfinite(features).all()
    env.close()


def test_stats_decay() -> None:
    stats = TokenRelevanceStats(8, min_count=1)
    ids = torch.tensor([[2, 6, 7, 0]])
    stats.update(ids, (ids != 0).long(), torch.tensor([[0.0, 3.0, 1.0, 0.0]]))
    before = stats.mean_share().clone()
    stats.decay(0.5)
    assert torch.allclose(stats.mean_share(), before) and stats.count[6] == 0.5
    with pytest.raises(ValueError, match="factor"):
        stats.decay(1.5)


# ------------------------------------------------------------------------------------------ slow: learning
RAISE_AUG = np.array([1, 1, 2, 1])


@functools.cache
def trained_episode(env_id: str, seed: int, raise_aug: bool = False) -> dict:
    """One trained episode (aug level 0 kept, or raised to 4 in the first four steps), summarised; cached so the
    tests below share episodes."""
    env = gym.make(env_id, **TRAINED)
    info = run_episode(env, seed, [RAISE_AUG] * 4 if raise_aug else None)
    unwrapped = env.unwrapped
    stats = unwrapped.token_relevance.stats
    best = stats.top(1, only_flagged=False)
    summary = {"test_accuracy": info["test_accuracy"], "aug_level": info["aug_level"],
               "top": (best[0].token, best[0].z) if best else ("", 0.0),
               "shortcut_share": float(stats.mean_share()[SHORTCUT_ID]),
               "flagged_tokens": unwrapped.report()["flagged_tokens"]}
    env.close()
    return summary


@pytest.mark.slow
def test_planted_token_is_flagged_first_and_no_real_token_is() -> None:
    """10 seeds x 2 families, no moves: ``zqx`` is the #1 token (z >= 3) on ReviewsShortcut in >= 9 seeds;
    on ReviewsBERT no single token is #1 with z >= 3 in that many seeds.

    Seen (torch 2.13 CPU, one thread): ``zqx`` first in 10/10 with z 8.6 - 9.8. Clean models: top z 2.3 - 4.3;
    the real word "too" (as in "too long", a strong negative cue) is first with z >= 3 in 8 of 10 seeds, so the
    second assertion holds with a margin of one seed.
    """
    top = {env_id: [trained_episode(env_id, seed)["top"] for seed in range(10)] for env_id in TEXT_IDS}
    print({env_id: [(token, round(z, 2)) for token, z in tops] for env_id, tops in top.items()})
    shortcut = top["TrainGym/ReviewsShortcut-v0"]
    assert sum(token == SHORTCUT_TOKEN and z >= 3 for token, z in shortcut) >= 9, shortcut
    for seed, (token, z) in enumerate(shortcut):
        if token == SHORTCUT_TOKEN and z > 4:  # above the flag threshold: the report names it first
            assert trained_episode("TrainGym/ReviewsShortcut-v0", seed)["flagged_tokens"][0]["token"] == token
    clean_firsts = collections.Counter(token for token, z in top["TrainGym/ReviewsBERT-v0"] if z >= 3)
    assert max(clean_firsts.values(), default=0) < 9, top["TrainGym/ReviewsBERT-v0"]


@pytest.mark.slow
def test_masking_flagged_tokens_beats_the_shortcut() -> None:
    """Same seeds: aug level kept at 0 vs raised to 4 in the first steps. Masking the flagged tokens lowers the
    planted token's relevance share on the diagnostic errors and raises clean test accuracy."""
    env_id = "TrainGym/ReviewsShortcut-v0"
    results = [(trained_episode(env_id, seed), trained_episode(env_id, seed, raise_aug=True)) for seed in range(3)]
    print("test accuracy / zqx share, aug 0 -> aug 4:", [
        (round(a["test_accuracy"], 3), round(b["test_accuracy"], 3), round(a["shortcut_share"], 3),
         round(b["shortcut_share"], 3)) for a, b in results])
    for base, masked in results:
        assert base["aug_level"] == 0 and masked["aug_level"] == 4
        assert masked["test_accuracy"] > base["test_accuracy"] + 0.05
        assert masked["shortcut_share"] < base["shortcut_share"]


@pytest.mark.slow
def test_event_log_bounded_and_over_relevant_token_records_validate(tmp_path) -> None:
    path = tmp_path / "events.jsonl"
    kwargs = {**TRAINED, "horizon": 5, "max_episode_steps": 5, "neuron_log": ("selective", "events", "summaries")}
    env = gym.make("TrainGym/ReviewsShortcut-v0", **kwargs, event_log_capacity=8, log_path=str(path))
    run_episode(env, 0)
    events: EventLog = env.unwrapped._events
    assert len(events) <= 8
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for record in [*records, *events.recent(100)]:
        validate_record(record)
    tokens = [r for r in records if r["event"] == EventType.OVER_RELEVANT_TOKEN.value]
    assert tokens, "the planted token must raise an over_relevant_token event"
    assert all(r["layer"] is None and len(r["neuron_ids"]) == 1 and set(r["values"]) == {"z", "share", "count"}
               for r in tokens)
    assert SHORTCUT_ID in {r["neuron_ids"][0] for r in tokens}
    counts = env.unwrapped.report()["events"]["counts"]
    assert counts[EventType.OVER_RELEVANT_TOKEN.value] == len(tokens)
    env.close()


def test_report_does_not_name_the_planted_shortcut() -> None:
    env = gym.make("TrainGym/ReviewsShortcut-v0", steps_per_action=2, val_size=64, obs_keys=["training_stats"])
    env.reset(seed=0)
    text = json.dumps(env.unwrapped.report()).lower()
    assert "shortcut" not in text and "zqx" not in text  # zqx may appear only once flagged, never at reset
    env.close()
