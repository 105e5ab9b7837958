"""Batched review-BERT training (BatchedTextEnv, StackedReviewBert, the make_vec front door with workers, the token
relevance cadence): agreement with the single env, Gymnasium vector conventions, determinism whatever the worker
split, and (slow) statistical equivalence and the cadence's flagged token on the planted shortcut."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from gymnasium.vector import AutoresetMode
from traingym.envs.batched import stacked_bert
from traingym.envs.batched.stacked_bert import StackedReviewBert, dropout_masks, grouped_forward
from traingym.envs.batched.text import BatchedTextEnv
from traingym.envs.batched.workers import WorkerBatchedEnv, default_workers, make_batched_env
from traingym.envs.monitoring.token_monitor import RelevanceCadence
from traingym.envs.tasks.reviews_data import PAD_ID, SHORTCUT_ID
from traingym.envs.tasks.reviews_model import ReviewClassifier, build_review_bert, forked_global_rng
from traingym.envs.training_env import TrainingEnv
from traingym.protocol.moves import KEEP_ACTION

ENV_ID = "TrainGym/ReviewsShortcut-v0"
CORE = {"task": "reviews_shortcut", "optimizer": "adam", "batch_size": 32, "obs_keys": ("training_stats", "neurons"),
        "val_size": 64}
ARCHITECTURES = [(1, 32, 0), (2, 64, 2), (1, 32, 1), (2, 32, 0), (1, 64, 3)]
"""(layers, hidden, augmentation level): every architecture of the range, one group of two, augmentation on some."""


def _instances() -> list[dict]:
    return [{"split_seed": i, "n_layers": nl, "hidden": h, "lr": 1e-3 * (1 + i), "weight_decay": 1e-4,
             "aug_level": a, "label_noise": 0.1 * (i % 2)} for i, (nl, h, a) in enumerate(ARCHITECTURES)]


def _max_obs_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


def _models(seeds: list[int], n_layers: int = 2, hidden: int = 32) -> list[ReviewClassifier]:
    return [ReviewClassifier(build_review_bert(300, n_layers, hidden, generator=torch.Generator().manual_seed(s)))
            for s in seeds]


def _default_bernoulli_kernel() -> bool:
    """Whether ATen's CPU bernoulli_ is its default kernel here (MKL builds use MKL's on Intel CPUs)."""
    try:
        intel = "GenuineIntel" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return not (torch.backends.mkl.is_available() and intel)


def _batch(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 300, (n, 8, 16), generator=gen)
    ids[:, :, 11:] = PAD_ID  # padded tail: the additive attention mask matters
    return ids, torch.randint(0, 2, (n, 8), generator=gen)


# ------------------------------------------------------------------------------------------ the grouped model
def test_grouped_forward_is_the_modules_forward_with_the_same_dropout() -> None:
    # To float rounding, not bit for bit: the grouped last layer computes the first token's row alone, and a one-row
    # matmul may sum in another order than Hugging Face's full one (~1e-9 here). The masks are checked exactly below.
    models = _models([0, 1, 2])
    ids, _ = _batch(3)
    group = StackedReviewBert(models[0].hf_model.config)
    group.set_members(models)
    with torch.no_grad():
        for m in models:
            m.eval()
        eval_logits = grouped_forward(group.params, group.config, ids)
        for r, m in enumerate(models):
            torch.testing.assert_close(eval_logits[r], m(ids[r]), rtol=0, atol=1e-6)
        # Training mode: the module draws its dropout from torch's global RNG, seeded as the env seeds it; the
        # grouped forward gets masks drawn from generators seeded the same way.
        seeds = [torch.Generator().manual_seed(10 + r) for r in range(3)]
        expected = []
        for r, m in enumerate(models):
            m.train()
            with forked_global_rng(seeds[r]):
                expected.append(m(ids[r]))
        seeds = [torch.Generator().manual_seed(10 + r) for r in range(3)]
        gens = [torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=g))) for g in seeds]
        masks = dropout_masks(group.config, 8, 16, gens, torch.device("cpu"))
        train_logits = grouped_forward(group.params, group.config, ids, masks)
    for r in range(3):
        torch.testing.assert_close(train_logits[r], expected[r], rtol=0, atol=1e-6)
    assert not torch.equal(train_logits, eval_logits)  # dropout did act


@pytest.mark.parametrize("fast_draws", [True, False])
def test_dropout_masks_are_bernoullis_draws_and_the_last_layer_keeps_its_first_position(
        monkeypatch: pytest.MonkeyPatch, fast_draws: bool) -> None:
    config = _models([0])[0].hf_model.config  # 2 layers
    if not fast_draws:  # the bernoulli_ path (CUDA, or a CPU build whose bernoulli_ draws otherwise)
        monkeypatch.setattr(stacked_bert, "_bernoulli_is_random64_compare", lambda: False)
    elif _default_bernoulli_kernel():  # where ATen's default kernel draws, the fast path must be taken
        assert stacked_bert._bernoulli_is_random64_compare()
    keep = 1.0 - config.hidden_dropout_prob
    shapes = stacked_bert.dropout_shapes(config, 8, 16)
    # Used part per site: all but the last layer's query (attention probabilities) or token position (hidden).
    first_only = [None, None, None, None, 2, 1, 1, None]
    reference = [torch.Generator().manual_seed(7), None, torch.Generator().manual_seed(9)]
    generators = [torch.Generator().manual_seed(7), None, torch.Generator().manual_seed(9)]
    scratch = torch.empty(0, dtype=torch.int64)
    for _ in range(2):  # the second time through the reused scratch
        expected = []
        for generator in reference:
            draws = [torch.empty(shape).bernoulli_(keep, generator=generator).div_(keep) if generator is not None
                     else torch.ones(shape) for shape in shapes]  # F.dropout's multipliers, site after site
            expected.append([d if dim is None else d.narrow(dim, 0, 1) for d, dim in zip(draws, first_only)])
        masks = stacked_bert.dropout_masks(config, 8, 16, generators, torch.device("cpu"), scratch)
        assert len(masks) == len(shapes)
        for site, mask in enumerate(masks):
            for r in range(3):
                assert torch.equal(mask[r], expected[r][site]), (site, r)
    # The generators advanced as the single env's global RNG does: by every draw, used or not.
    assert all(torch.equal(g.get_state(), h.get_state()) for g, h in zip(generators[::2], reference[::2]))


def test_members_parameters_are_views_and_gradients_are_their_own() -> None:
    models = _models([3, 4], n_layers=1)
    reference = _models([3, 4], n_layers=1)
    ids, labels = _batch(2, seed=1)
    group = StackedReviewBert(models[0].hf_model.config)
    group.set_members(models)
    ones = dropout_masks(group.config, 8, 16, [None, None], torch.device("cpu"))  # no dropout: compare with eval
    losses, correct = group.loss_and_backward(ids, labels, ones)
    for r, (model, ref) in enumerate(zip(models, reference)):
        ref.eval()
        loss = F.cross_entropy(ref(ids[r]), labels[r])
        loss.backward()
        assert torch.allclose(losses[r], loss.detach(), atol=1e-6)
        for (name, p), q in zip(model.named_parameters(), ref.parameters()):
            assert p.grad is not None and torch.allclose(p.grad, q.grad, atol=1e-6), name
    # The members' parameters are the stack's rows: an in-place change of a module shows in the stack.
    with torch.no_grad():
        models[1].hf_model.classifier.weight.mul_(2.0)
    assert torch.equal(group.params["classifier.weight"][1], models[1].hf_model.classifier.weight)
    assert int(correct.sum()) <= 16


# ------------------------------------------------------------------------------------------ the vector env
def test_first_step_agrees_with_single_envs() -> None:
    kwargs = {**CORE, "steps_per_action": 10}
    instances = _instances()
    batched = BatchedTextEnv(len(instances), relevance_cadence=False, **kwargs)
    singles = [TrainingEnv(**kwargs) for _ in instances]
    for i, (env, instance) in enumerate(zip(singles, instances)):
        obs, _ = batched.reset_env(i, seed=i, options={"instance": instance})
        assert _max_obs_diff(obs, env.reset(seed=i, options={"instance": instance})[0]) == 0.0
    assert sorted(g.n for g in batched._groups.values()) == [1, 1, 1, 2]
    actions = np.random.default_rng(0).integers(0, 3, size=(len(instances), 4))
    for env, action, result in zip(singles, actions, batched.step_envs(actions)):
        obs, reward, terminated, truncated, info = env.step(action)
        assert result is not None and (result[2], result[3]) == (terminated, truncated)
        assert _max_obs_diff(result[0], obs) <= 1e-5 and abs(result[1] - reward) <= 1e-5
        assert result[4]["aug_level"] == info["aug_level"]
    batched.close()


def test_make_vec_vector_entry_point_matches_sync_across_autoreset() -> None:
    kwargs = {"obs_keys": ["training_stats"], "steps_per_action": 2, "val_size": 64, "horizon": 2,
              "max_episode_steps": 2}
    batched = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="vector_entry_point", workers=1, **kwargs)
    sync = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="sync", **kwargs)
    assert isinstance(batched, BatchedTextEnv)
    assert batched.metadata["autoreset_mode"] == sync.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert batched.observation_space == sync.observation_space and batched.action_space == sync.action_space
    obs_b, info_b = batched.reset(seed=5)
    obs_s, info_s = sync.reset(seed=5)
    assert _max_obs_diff(obs_b, obs_s) == 0.0 and info_b.keys() == info_s.keys()
    batched.action_space.seed(0)
    for t in range(4):  # an episode of 2 steps, the autoreset step, one more
        actions = batched.action_space.sample()
        obs_b, rew_b, term_b, trunc_b, info_b = batched.step(actions)
        obs_s, rew_s, term_s, trunc_s, info_s = sync.step(actions)
        assert batched.observation_space.contains(obs_b)
        assert np.array_equal(term_b, term_s) and np.array_equal(trunc_b, trunc_s)
        assert info_b.keys() == info_s.keys()
        if t == 0:  # the first step agrees to rounding (later steps: statistically, see the slow test)
            assert _max_obs_diff(obs_b, obs_s) <= 1e-5 and np.allclose(rew_b, rew_s, atol=1e-5)
        if t == 1:
            assert trunc_b.all() and "test_accuracy" in info_b
        if t == 2:  # next-step autoreset: this step reset every sub-env, exactly as sync does
            assert not rew_b.any() and info_b["_instance"].all() and _max_obs_diff(obs_b, obs_s) == 0.0
    batched.close()
    batched.close()  # idempotent
    sync.close()


def _rollout(workers: int, autoreset_mode: str = "NextStep") -> list:
    env = gym.make_vec(ENV_ID, num_envs=3, vectorization_mode="vector_entry_point", workers=workers,
                       autoreset_mode=autoreset_mode, obs_keys=["training_stats", "neurons"], steps_per_action=2,
                       val_size=64, horizon=2, max_episode_steps=2)
    obs, _ = env.reset(seed=7)
    trace: list = [obs]
    rng = np.random.default_rng(1)
    for _ in range(4):
        obs, reward, terminated, truncated, info = env.step(rng.integers(0, 3, size=(3, 4)))
        trace += [obs, reward, terminated, truncated, info.get("test_accuracy")]
    env.close()
    return trace


def _same(a: object, b: object) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    return np.array_equal(a, b)  # type: ignore[arg-type]


def test_same_seeds_same_episodes_whatever_the_worker_split() -> None:
    one, two = _rollout(1), _rollout(2)
    assert all(_same(a, b) for a, b in zip(one, two, strict=True))
    assert any(x is not None for x in one[5::5])  # the episodes did end (test accuracy reported)


def test_front_door_arguments_and_default_workers() -> None:
    assert default_workers(1) == 1 and 1 <= default_workers(64) <= 64
    env = make_batched_env(2, workers=2, task="reviews_bert", obs_keys=["training_stats"], steps_per_action=1,
                           val_size=64)
    assert isinstance(env, WorkerBatchedEnv) and env.num_envs == 2
    env.close()
    with pytest.raises(ValueError, match="workers"):
        make_batched_env(2, workers=3, task="reviews_bert")
    with pytest.raises(ValueError, match="text task"):
        BatchedTextEnv(2, task="digits_mlp")
    with pytest.raises(RuntimeError, match="worker failed"):
        make_batched_env(2, workers=2, task="reviews_bert", steps_per_action=0)


# ------------------------------------------------------------------------------------------ relevance cadence
def test_cadence_doubles_while_flags_stay_and_resets_on_change_or_augmentation() -> None:
    augmenting = {"on": False}
    cadence = RelevanceCadence(acting=lambda: augmenting["on"], max_interval=4)
    due = []
    changes = iter([False, False, False, True, False])
    for step in range(1, 18):
        augmenting["on"] = step >= 16  # augmentation switched on at step 16: due at every step from then on
        if cadence.tick():
            due.append((step, cadence.since))
            cadence.computed(changed=next(changes, False))
    # computed at steps 1 (gap 1), 3 (2), 7 (4), 11 (4, the flags change), 12 (back to 1), 14 (2), then 16 and 17
    assert due == [(1, 1), (3, 2), (7, 4), (11, 4), (12, 1), (14, 2), (16, 2), (17, 1)]
    with pytest.raises(ValueError, match="max_interval"):
        RelevanceCadence(lambda: False, 0)


@pytest.mark.slow
def test_cadence_flags_the_same_top_token_as_every_step_relevance() -> None:
    """ReviewsShortcut, 3 seeds, an instance that learns the shortcut (1 layer, hidden 32, AdamW 1e-3, aug 0: the
    cadence backs off; K=40, 10 steps): the batched env with the cadence ends with the same top token as single
    envs computing relevance every step (the planted ``zqx``), having run relevance on fewer steps."""
    kwargs = {"task": "reviews_shortcut", "optimizer": "adam", "batch_size": 32, "steps_per_action": 40,
              "horizon": 10, "obs_keys": ("training_stats",), "neuron_log": ()}
    instance = {"n_layers": 1, "hidden": 32, "lr": 1e-3, "weight_decay": 1e-4, "aug_level": 0, "label_noise": 0.0}
    seeds = [0, 1, 2]
    batched = BatchedTextEnv(len(seeds), **kwargs)
    singles = [TrainingEnv(**kwargs) for _ in seeds]
    for i, seed in enumerate(seeds):
        batched.reset_env(i, seed=seed, options={"instance": {**instance, "split_seed": seed}})
        singles[i].reset(seed=seed, options={"instance": {**instance, "split_seed": seed}})
    keep = np.tile(KEEP_ACTION, (len(seeds), 1))
    for _ in range(10):
        batched.step_envs(keep)
        for env in singles:
            env.step(KEEP_ACTION)
    for cadenced, every in zip(batched.envs, singles):
        top_cadenced = cadenced.token_relevance.stats.top(1, only_flagged=False)[0].token_id
        top_every = every.token_relevance.stats.top(1, only_flagged=False)[0].token_id
        assert top_cadenced == top_every == SHORTCUT_ID
        assert cadenced.token_relevance.computed < every.token_relevance.computed == 10
    batched.close()


# ------------------------------------------------------------------------------------------ statistical equivalence
HELD_OUT = 12
"""Held-out instances per policy. Sized for 2 CPU cores: 3 policies x 12 episodes x (batched + single) of 10 steps
of K=20, validation 256, on one core: 4-12 minutes here, with the shared machine quiet or busy. Seen: paired difference
-0.0019 +- 0.0027 over 36 episodes (33 identical to 3 decimals); a first cadence rule that delayed the masking of
flagged tokens failed it (-0.010 +- 0.013)."""


def _policies(n: int) -> dict[str, object]:
    from traingym.agents.baselines import SteerPolicy

    return {"keep": None, "steer": [SteerPolicy(lr=1e-3, weight_decay=1e-4, aug_level=2) for _ in range(n)],
            "random": [np.random.default_rng(100 + j) for j in range(n)]}


def _act(policy: object, j: int, info: dict) -> np.ndarray:
    if policy is None:
        return KEEP_ACTION
    if isinstance(policy, list) and isinstance(policy[j], np.random.Generator):
        return policy[j].integers(0, 3, size=4)
    agent = policy[j]  # type: ignore[index]
    agent.observe_info(info)
    return agent.predict({})[0]


@pytest.mark.slow
def test_fixed_policies_reach_the_same_test_accuracy_as_single_envs() -> None:
    """Keep, steer and random on the same 12 held-out instances, batched env vs single envs: the paired mean
    final test accuracy difference is within 0.005 and its 95% confidence interval within +-0.01."""
    kwargs = {"task": "reviews_shortcut", "optimizer": "adam", "batch_size": 32, "instance_set": "test",
              "steps_per_action": 20, "horizon": 10, "val_size": 256, "obs_keys": ("training_stats", "neurons")}
    diffs = []
    for name in ("keep", "steer", "random"):
        accuracies = {}
        for kind in ("batched", "single"):
            policy = _policies(HELD_OUT)[name]
            batched = BatchedTextEnv(HELD_OUT, **kwargs) if kind == "batched" else None
            singles = [TrainingEnv(**kwargs) for _ in range(HELD_OUT)] if kind == "single" else []
            infos = []
            for j in range(HELD_OUT):
                options = {"instance_index": j}
                _, info = (batched.reset_env(j, seed=j, options=options) if batched is not None
                           else singles[j].reset(seed=j, options=options))
                infos.append(info)
            final = [0.0] * HELD_OUT
            for _ in range(kwargs["horizon"]):
                actions = np.stack([_act(policy, j, infos[j]) for j in range(HELD_OUT)])
                results = (batched.step_envs(actions) if batched is not None
                           else [env.step(a) for env, a in zip(singles, actions)])
                for j, result in enumerate(results):
                    assert result is not None
                    infos[j] = result[4]
                    if result[2] or result[3]:
                        final[j] = result[4]["test_accuracy"]
            accuracies[kind] = np.array(final)
            for env in [batched, *singles]:
                if env is not None:
                    env.close()
        diffs.append(accuracies["batched"] - accuracies["single"])
        print(name, "batched", accuracies["batched"].round(3), "single", accuracies["single"].round(3))
    d = np.concatenate(diffs)
    half_width = 1.96 * d.std(ddof=1) / np.sqrt(d.size)
    print(f"paired difference {d.mean():+.4f} +- {half_width:.4f} over {d.size} episodes")
    assert abs(d.mean()) <= 0.005
    assert d.mean() - half_width >= -0.01 and d.mean() + half_width <= 0.01


def test_sb3_adapter_runs_the_text_env_with_terminal_observations() -> None:
    from stable_baselines3.common.vec_env import VecCheckNan
    from traingym.envs.batched.sb3 import BatchedSB3VecEnv, make_batched_vec_env

    vec = make_batched_vec_env("TrainGym/ReviewsBERT-v0", 2, seed=3, obs_keys=["training_stats"], steps_per_action=1,
                               val_size=64, horizon=1)
    assert isinstance(vec, BatchedSB3VecEnv) and isinstance(vec.env, BatchedTextEnv)
    checked = VecCheckNan(vec, raise_exception=True)
    checked.reset()
    obs, _, dones, infos = checked.step(np.ones((2, 4), dtype=np.int64))
    assert dones.all() and all(info["terminal_observation"]["training_stats"][3] == 1.0 for info in infos)
    assert (obs["training_stats"][:, 3] == 0.0).all()  # already the next episodes' first observations
    checked.close()
