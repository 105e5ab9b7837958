"""Batched MLP training (BatchedTrainingEnv, StackedMLP, the SB3 adapter): exact padding, equivalence with single
envs, Gymnasium vector conventions, registration, SB3 compatibility."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env import VecCheckNan
from traingym.agents.baselines import Baseline, make_baseline
from traingym.envs.batched.mlp import BatchedTrainingEnv
from traingym.envs.batched.sb3 import BatchedSB3VecEnv, make_batched_vec_env
from traingym.envs.batched.stacked_mlp import StackedMLP
from traingym.envs.batched.workers import WorkerBatchedEnv
from traingym.envs.monitoring.neuron_log import NeuronLog
from traingym.envs.tasks.networks import build_mlp
from traingym.envs.training_env import TrainingEnv

CORE = {"task": "digits_mlp", "obs_keys": ("training_stats", "neurons"), "val_size": 128}
ARCHITECTURES = [(1, 32, 2), (3, 128, 1), (2, 64, 0), (3, 32, 4)]
"""(depth, width, augmentation level): depth 1 and 3, every width, augmentation on for three of four."""


def _instances(optimizer: str) -> list[dict]:
    lr = {"sgd": 0.05, "adam": 3e-3}[optimizer]
    return [{"split_seed": i, "depth": d, "width": w, "lr": lr * (1 + i), "weight_decay": 1e-3, "aug_level": a,
             "label_noise": 0.1 * (i % 2)} for i, (d, w, a) in enumerate(ARCHITECTURES)]


def _max_obs_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_padding_is_exact_identity_layers_stay_identity(optimizer: str) -> None:
    gen = torch.Generator().manual_seed(0)
    models = [build_mlp(64, [32], 10, gen), build_mlp(64, [128] * 3, 10, gen)]
    stack = StackedMLP(2, optimizer, 0.9, torch.device("cpu"))
    for i, model in enumerate(models):
        stack.load(i, model, reset_state=True)
    assert (stack.depth, stack.width) == (3, 128)
    x = torch.rand((5, 2, 16, 64), generator=gen)
    y = torch.randint(10, (5, 2, 16), generator=gen)
    stack.train(x, y, lr=[0.1, 0.1], weight_decay=[0.01, 0.01])
    eye = torch.eye(128)
    for j in (1, 2):  # the shallow instance's missing layers: still exactly the identity, bias exactly zero
        assert torch.equal(stack.weights[j][0], eye) and not stack.biases[j][0].any()
    assert not stack.weights[0][0, 32:].any() and not stack.biases[0][0, 32:].any()  # padded units stay zero
    assert not stack.weights[-1][0, :, 32:].any()
    # ReLU(I h) = h: the stacked forward of the shallow instance is its module's forward, bit for bit.
    stack.store(0, models[0])
    h = torch.relu(torch.baddbmm(stack.biases[0][:, None], x[0], stack.weights[0].transpose(1, 2)))
    for j in (1, 2):
        h = torch.relu(torch.baddbmm(stack.biases[j][:, None], h, stack.weights[j].transpose(1, 2)))
    logits = torch.baddbmm(stack.biases[-1][:, None], h, stack.weights[-1].transpose(1, 2))
    with torch.no_grad():
        assert torch.equal(logits[0], models[0](x[0, 0]))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_written_out_backward_matches_autograd_for_unsorted_depths(optimizer: str) -> None:
    # Depths 1, 3, 2, 3 with widths 32 and 64 in one stack: training reorders the rows (deepest first) and runs
    # each hidden layer on the rows that own it; the gradients it hands back must be each module's own autograd
    # gradients bit for bit, in the original row order, and the parameters must not move with a zero learning rate.
    gen = torch.Generator().manual_seed(3)
    models = [build_mlp(64, hidden, 10, gen) for hidden in ([32], [64] * 3, [64, 64], [32] * 3)]
    stack = StackedMLP(len(models), optimizer, 0.9, torch.device("cpu"))
    for i, model in enumerate(models):
        stack.load(i, model, reset_state=True)
    x = torch.rand((1, len(models), 16, 64), generator=gen)
    y = torch.randint(10, (1, len(models), 16), generator=gen)
    before = [p.clone() for p in stack.params]
    stack.train(x, y, lr=[0.0] * len(models), weight_decay=[0.0] * len(models))
    assert all(torch.equal(a, b) for a, b in zip(before, stack.params))
    for i, model in enumerate(models):
        torch.nn.functional.cross_entropy(model(x[0, i]), y[0, i]).backward()
        expected = {name: p.grad.clone() for name, p in model.named_parameters()}
        stack.store(i, model)  # copies the stack's last-step gradients into .grad
        for name, p in model.named_parameters():
            assert torch.equal(p.grad, expected[name]), f"instance {i} {name}"


def _mixed_stack(seed: int) -> tuple[torch.Generator, list, StackedMLP]:
    """Depths 1-3, widths 32 and 128, 10 and 3 classes, loaded into one stack (and the generator, for data)."""
    gen = torch.Generator().manual_seed(seed)
    models = [build_mlp(64, [32], 10, gen), build_mlp(64, [128] * 3, 3, gen), build_mlp(64, [32] * 2, 10, gen)]
    stack = StackedMLP(len(models), "sgd", 0.9, torch.device("cpu"))
    for i, model in enumerate(models):
        stack.load(i, model, reset_state=True)
    return gen, models, stack


def test_stacked_forward_is_each_modules_validation_pass() -> None:
    # Depths 1-3, widths 32 and 128, 10 and 3 classes in one stack: the batched env's one validation pass must give
    # each module's own logits and hidden (post-ReLU) outputs, which its neuron log reads.
    gen, models, stack = _mixed_stack(5)
    x = torch.rand((len(models), 40, 64), generator=gen)
    logits, hidden = stack.forward(x)
    for i, model in enumerate(models):
        outputs = []
        handles = [act.register_forward_hook(lambda m, a, out, store=outputs: store.append(out)) for act in model.acts]
        with torch.no_grad():
            expected = model(x[i])
        for handle in handles:
            handle.remove()
        assert torch.allclose(logits[i, :, : model.head.out_features], expected, atol=1e-6, rtol=0)
        for h, out in zip(hidden, outputs):
            assert torch.allclose(h[i, :, : out.shape[1]], out, atol=1e-6, rtol=0)


def test_stacked_error_pass_is_each_neuron_logs_own() -> None:
    # The written-out error pass and input relevance of a mixed stack against each module's own autograd passes
    # in its neuron log (what the single env computes), on each row's marked errors.
    gen, models, stack = _mixed_stack(6)
    x = torch.rand((len(models), 40, 64), generator=gen)
    y = torch.stack([torch.randint(m.head.out_features, (40,), generator=gen) for m in models])
    logits, hidden = stack.forward(x)
    predicted = logits.argmax(2)
    used = (predicted != y) & (torch.arange(40) < 30)  # errors among the first 30 samples
    importances = stack.error_importances(hidden, predicted, used)
    inputs = stack.input_relevance(x, hidden, predicted, y, used)
    # Some rows only (the sub-envs whose validation runs input relevance): those rows of the full computation.
    some = stack.input_relevance(x, hidden, predicted, y, used, rows=torch.tensor([2, 0]))
    assert torch.allclose(some, inputs[[2, 0]], atol=1e-6, rtol=0)
    for i, model in enumerate(models):
        log = NeuronLog(model.hidden_layers(), top_k=4, max_error_samples=100)
        rows = used[i]
        assert rows.any()
        expected = log._importances(model, x[i, rows], predicted[i, rows])
        for j, imp in enumerate(expected):
            assert torch.allclose(importances[j][i, : imp.numel()], imp, atol=1e-6, rtol=1e-4), (i, j)
        log.record_input_relevance(model, x[i, rows], predicted[i, rows], y[i, rows])
        assert torch.allclose(inputs[i], log.input_relevance, atol=1e-5, rtol=1e-4), i


@pytest.mark.parametrize(("optimizer", "grouping", "k"), [("sgd", "none", 1), ("adam", "none", 10),
                                                          ("sgd", "width", 10), ("adam", "architecture", 1)])
def test_same_seeds_same_observations_as_single_envs(optimizer: str, grouping: str, k: int) -> None:
    """Exact (up to float rounding) where the batched env draws what the single env draws: at K = 1 every step
    with augmentation (one batch: one augmentation draw of each kind either way), at K = 10 every step without it
    (the same batch indices). With augmentation at K > 1 its draws are other samples of the same distribution
    (the statistical test)."""
    # Few error samples: the error pass's cut to the first errors binds.
    kwargs = {**CORE, "optimizer": optimizer, "steps_per_action": k, "max_error_samples": 16}
    instances = [{**instance, "aug_level": 0 if k > 1 else instance["aug_level"]} for instance in _instances(optimizer)]
    batched = BatchedTrainingEnv(len(instances), grouping=grouping, **kwargs)
    singles = [TrainingEnv(**kwargs) for _ in instances]
    for i, (env, instance) in enumerate(zip(singles, instances)):
        obs, _ = batched.reset_env(i, seed=i, options={"instance": instance})
        assert _max_obs_diff(obs, env.reset(seed=i, options={"instance": instance})[0]) == 0.0
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(10):
        actions = rng.integers(0, 3, size=(len(instances), 4))
        if k > 1:
            actions[:, 2] = 1  # augmentation stays off
        else:
            assert any(env.family_aug_level() > 0 for env in singles)  # augmentation on
        for env, action, result in zip(singles, actions, batched.step_envs(actions)):
            obs, reward, terminated, truncated, info = env.step(action)
            assert result is not None and (result[2], result[3]) == (terminated, truncated)
            worst = max(worst, _max_obs_diff(result[0], obs), abs(result[1] - reward))
            assert result[4]["lr"] == info["lr"] and result[4]["aug_level"] == info["aug_level"]
    assert worst <= 1e-5
    # The neuron log reads the stored last-step gradients: they are the module's own after the step.
    assert all(layer.weight.grad is not None for env in batched.envs for layer in env._log.layers)
    batched.close()


def test_decorrelated_flagged_inputs_are_the_same_as_single_envs() -> None:
    """Spurious-pixel instances: once input relevance flags the planted pixels, augmentation decorrelates them from
    a generator of their own, in the batched env exactly as in single envs."""
    kwargs = {"task": "digits_pathologies", "obs_keys": ("training_stats", "neurons"), "steps_per_action": 50}
    instances = [{"split_seed": 11 + i, "depth": 1 + i, "width": 64, "lr": 0.1, "weight_decay": 1e-4,
                  "aug_level": 0, "label_noise": 0.0, "pathology": "spurious", "strength": 1.0} for i in range(2)]
    batched = BatchedTrainingEnv(len(instances), **kwargs)
    singles = [TrainingEnv(**kwargs) for _ in instances]
    for i, (env, instance) in enumerate(zip(singles, instances)):
        batched.reset_env(i, seed=i, options={"instance": instance})
        env.reset(seed=i, options={"instance": instance})
    decorrelated = 0
    for t in range(10):
        # Augmentation to level 1 at step 5: while pixels are flagged it only decorrelates them (the family's own
        # augmentation, drawn for all K batches at once in the batched env, stays off).
        actions = np.array([[1, 1, 2 if t == 4 else 1, 1]] * len(instances))
        for env, action, result in zip(singles, actions, batched.step_envs(actions)):
            obs = env.step(action)[0]
            assert result is not None and _max_obs_diff(result[0], obs) <= 1e-5
            decorrelated += bool(env._monitor.inputs.flagged_ids) and env.aug_level > 0
    assert decorrelated > 0  # the decorrelation path ran
    batched.close()


@pytest.mark.parametrize("relevance", [True, False])
def test_input_relevance_runs_where_the_single_envs_validation_runs_it(relevance: bool,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The stacked input relevance runs for the stepped sub-envs whose own validation would run it
    (``TrainingEnv.explains_inputs``: relevance on, after reset), for no others, and observations still equal the
    single envs'."""
    calls: list[list[int] | None] = []
    original = StackedMLP.input_relevance

    def spy(self: StackedMLP, *args: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        calls.append(None if rows is None else rows.tolist())
        return original(self, *args, rows=rows)

    monkeypatch.setattr(StackedMLP, "input_relevance", spy)
    kwargs = {**CORE, "steps_per_action": 5, "relevance": relevance}
    instances = [{**instance, "aug_level": 0} for instance in _instances("sgd")[:3]]
    batched = BatchedTrainingEnv(len(instances), grouping="none", **kwargs)
    singles = [TrainingEnv(**kwargs) for _ in instances]
    for i, (env, instance) in enumerate(zip(singles, instances)):
        batched.reset_env(i, seed=i, options={"instance": instance})
        env.reset(seed=i, options={"instance": instance})
    assert not calls  # reset: the single env runs no input relevance either
    keep = np.ones((len(instances), 4), dtype=np.int64)
    for skip in (None, np.array([False, True, False])):
        results = batched.step_envs(keep, skip)
        for i, (env, result) in enumerate(zip(singles, results)):
            if skip is None or not skip[i]:
                assert result is not None and _max_obs_diff(result[0], env.step(keep[i])[0]) <= 1e-5
    # Every stepped sub-env explains its inputs with relevance on (all rows, then rows 0 and 2), none with it off.
    assert calls == ([None, [0, 2]] if relevance else [])
    batched.close()


STAT_POLICIES = ("keep", "steer", "random")
STAT_KWARGS = {"task": "digits_mlp", "instance_set": "test", "obs_keys": ("training_stats", "neurons")}
"""The equivalence test's setting: the registered DigitsMLP defaults (K = 50, horizon 20) on held-out instances."""


def _policy(name: str, episode: int) -> Baseline:
    policy = make_baseline(name, "TrainGym/DigitsMLP-v0", seed=0)
    policy.begin_episode(episode)
    return policy


def _single_env_test_accuracies(name: str, n: int) -> np.ndarray:
    env, accuracies = TrainingEnv(**STAT_KWARGS), []
    for i in range(n):
        policy = _policy(name, i)
        obs, info = env.reset(seed=i, options={"instance_index": i})
        policy.observe_info(info)
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(policy.predict(obs)[0])
            policy.observe_info(info)
            done = terminated or truncated
        accuracies.append(info["test_accuracy"])
    env.close()
    return np.array(accuracies)


def _batched_env_test_accuracies(name: str, n: int) -> np.ndarray:
    env = BatchedTrainingEnv(n, **STAT_KWARGS)
    policies = [_policy(name, i) for i in range(n)]
    observations = []
    for i, policy in enumerate(policies):
        obs, info = env.reset_env(i, seed=i, options={"instance_index": i})
        policy.observe_info(info)
        observations.append(obs)
    accuracies = np.full(n, np.nan)
    while np.isnan(accuracies).any():
        actions = np.stack([policy.predict(obs)[0] for policy, obs in zip(policies, observations)])
        for i, result in enumerate(env.step_envs(actions, skip=~np.isnan(accuracies))):
            if result is not None:
                observations[i] = result[0]
                policies[i].observe_info(result[4])
                if result[2] or result[3]:
                    accuracies[i] = result[4]["test_accuracy"]
    env.close()
    return accuracies


@pytest.mark.slow
def test_statistically_the_single_env() -> None:
    """At K > 1 with augmentation the batched env's episodes are other samples of the single env's (module
    docstring of :mod:`traingym.envs.batched.mlp`): under fixed policies, on every held-out instance, the final test
    accuracies must agree on average, paired by instance and seed: mean difference within 0.005 and its bootstrap
    95% interval (over instances) within +-0.01.

    Pooled over the three policies: single runs are chaotic (a random policy's pairs differ by sd ~0.05, up to
    0.3), so one policy's 128 pairs give an interval of about +-0.015 on their own; the pooled one about +-0.005."""
    n = 128  # every held-out instance: about 4 minutes on 2 cores
    diffs = np.stack([_batched_env_test_accuracies(name, n) - _single_env_test_accuracies(name, n)
                      for name in STAT_POLICIES])  # (policies, instances)
    per_instance = diffs.mean(0)
    rng = np.random.default_rng(0)
    boot = per_instance[rng.integers(0, n, size=(10_000, n))].mean(1)
    low, high = np.percentile(boot, [2.5, 97.5])
    detail = {name: round(float(d.mean()), 4) for name, d in zip(STAT_POLICIES, diffs)}
    print(f"batched - single final test accuracy: {per_instance.mean():+.4f}, 95% CI [{low:+.4f}, {high:+.4f}], "
          f"per policy {detail}")
    assert abs(per_instance.mean()) <= 0.005 and low >= -0.01 and high <= 0.01, (per_instance.mean(), low, high,
                                                                                  detail)


@pytest.mark.parametrize("workers", [1, 2])
def test_make_vec_entry_point_matches_sync_vector_env_across_autoreset(workers: int) -> None:
    # K = 1: random train instances, augmentation on for some; the batched env then draws what the single env draws.
    kwargs = {"obs_keys": ["training_stats"], "steps_per_action": 1, "val_size": 64, "horizon": 2,
              "max_episode_steps": 2}
    batched = gym.make_vec("TrainGym/DigitsMLP-v0", num_envs=3, vectorization_mode="vector_entry_point",
                           workers=workers, **kwargs)
    sync = gym.make_vec("TrainGym/DigitsMLP-v0", num_envs=3, vectorization_mode="sync", **kwargs)
    assert isinstance(batched, BatchedTrainingEnv if workers == 1 else WorkerBatchedEnv)
    assert batched.metadata["autoreset_mode"] == sync.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert batched.observation_space == sync.observation_space and batched.action_space == sync.action_space
    obs_b, info_b = batched.reset(seed=5)
    obs_s, info_s = sync.reset(seed=5)
    assert _max_obs_diff(obs_b, obs_s) == 0.0 and info_b.keys() == info_s.keys()
    batched.action_space.seed(0)
    for t in range(5):  # two episodes of 2 steps, the autoreset step in between, and one more
        actions = batched.action_space.sample()
        obs_b, rew_b, term_b, trunc_b, info_b = batched.step(actions)
        obs_s, rew_s, term_s, trunc_s, info_s = sync.step(actions)
        assert batched.observation_space.contains(obs_b)
        assert _max_obs_diff(obs_b, obs_s) <= 1e-5 and np.allclose(rew_b, rew_s, atol=1e-5)
        assert np.array_equal(term_b, term_s) and np.array_equal(trunc_b, trunc_s)
        assert info_b.keys() == info_s.keys()
        if t == 1:
            assert trunc_b.all() and "test_accuracy" in info_b
        if t == 2:  # next-step autoreset: this step reset every sub-env
            assert not rew_b.any() and info_b["_instance"].all()
    batched.close()
    batched.close()  # idempotent
    sync.close()


def test_same_step_autoreset_and_reset_mask() -> None:
    env = BatchedTrainingEnv(2, autoreset_mode="SameStep", obs_keys=("training_stats",), steps_per_action=2,
                             val_size=64, horizon=1)
    obs, _ = env.reset(seed=0)
    first = obs["training_stats"].copy()
    obs, _, _, truncated, info = env.step(np.ones((2, 4), dtype=np.int64))
    assert truncated.all() and info["_final_obs"].all()
    assert info["final_obs"][0]["training_stats"][3] == 1.0  # progress t/T of the finished episode
    assert (obs["training_stats"][:, 3] == 0.0).all()  # already the next episode's first observation
    again, info = env.reset(seed=0, options={"reset_mask": np.array([True, False])})
    assert np.array_equal(again["training_stats"][0], first[0]) and list(info["_instance"]) == [True, False]
    with pytest.raises(ValueError, match="reset_mask"):
        env.reset(options={"reset_mask": [True, False]})
    env.close()


def test_same_seed_same_rollout_and_bad_arguments() -> None:
    def run() -> list[np.ndarray]:
        env = BatchedTrainingEnv(3, obs_keys=("training_stats",), steps_per_action=2, val_size=64)
        out = [env.reset(seed=11)[0]["training_stats"]]
        out += [env.step(np.full((3, 4), a))[0]["training_stats"] for a in (0, 2, 1)]
        env.close()
        return out

    assert all(np.array_equal(a, b) for a, b in zip(run(), run()))
    with pytest.raises(ValueError, match="batched training"):
        BatchedTrainingEnv(2, task="digits_cnn")
    with pytest.raises(ValueError, match="num_envs"):
        BatchedTrainingEnv(0)
    with pytest.raises(ValueError, match="steps_per_action"):
        BatchedTrainingEnv(2, steps_per_action=0)
    env = BatchedTrainingEnv(2, obs_keys=("training_stats",))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="actions must have shape"):
        env.step(np.ones(4, dtype=np.int64))
    env.close()


def test_tabular_mlp_mixed_datasets_match_single_envs() -> None:
    # breast cancer (30 features, 2 classes) and wine (13 features, 3 classes) in one stack: padded inputs and
    # -inf logits for padded classes.
    # K = 1: augmentation (feature noise and dropout) then draws what the single env draws.
    kwargs = {"task": "tabular_mlp", "obs_keys": ("training_stats",), "steps_per_action": 1, "val_size": 64}
    instances = [{"split_seed": i, "dataset": ds, "depth": d, "width": w, "lr": 0.05, "weight_decay": 1e-3,
                  "aug_level": i % 3} for i, (ds, d, w) in enumerate([("breast_cancer", 2, 64), ("wine", 1, 16)])]
    batched = BatchedTrainingEnv(2, **kwargs)
    singles = [TrainingEnv(**kwargs) for _ in instances]
    for i, (env, instance) in enumerate(zip(singles, instances)):
        batched.reset_env(i, seed=i, options={"instance": instance})
        env.reset(seed=i, options={"instance": instance})
    for _ in range(5):
        actions = np.ones((2, 4), dtype=np.int64)
        for env, action, result in zip(singles, actions, batched.step_envs(actions)):
            assert result is not None and _max_obs_diff(result[0], env.step(action)[0]) <= 1e-5


def test_sb3_adapter_terminal_observation_nan_check_and_ppo() -> None:
    from stable_baselines3 import PPO

    vec = make_batched_vec_env("TrainGym/DigitsMLP-v0", 2, seed=3, obs_keys=["training_stats"], steps_per_action=2,
                               val_size=64, horizon=2)
    assert isinstance(vec, BatchedSB3VecEnv)
    checked = VecCheckNan(vec, raise_exception=True)
    first = checked.reset()["training_stats"]
    checked.step(np.ones((2, 4), dtype=np.int64))
    obs, rewards, dones, infos = checked.step(np.ones((2, 4), dtype=np.int64))
    assert dones.all() and all(info["TimeLimit.truncated"] for info in infos)
    assert all(info["terminal_observation"]["training_stats"][3] == 1.0 for info in infos)
    assert (obs["training_stats"][:, 3] == 0.0).all()
    vec.seed(3)
    assert np.array_equal(vec.reset()["training_stats"], first)  # seeds apply at the next reset, as in SB3
    assert vec.get_attr("config")[0].steps_per_action == 2 and vec.env_is_wrapped(gym.Wrapper) == [False, False]
    model = PPO("MultiInputPolicy", checked, n_steps=4, batch_size=8, n_epochs=1, seed=0)
    model.learn(8)
    checked.close()
    with pytest.raises(ValueError, match="env_id"):
        make_batched_vec_env("TrainGym/DigitsCNN-v0", 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_runs_all_instances_on_the_gpu_and_agrees_with_cpu() -> None:
    # Augmentation off: every random draw then comes from the envs' CPU generators, so both devices train on the
    # same batches and differ only by kernel rounding.
    kwargs = {**CORE, "obs_keys": ("training_stats",), "optimizer": "adam", "steps_per_action": 10}
    instances = [{**instance, "aug_level": 0} for instance in _instances("adam")]
    outs = []
    for device in ("cpu", "cuda"):
        env = BatchedTrainingEnv(len(instances), device=device, **kwargs)
        for i, instance in enumerate(instances):
            env.reset_env(i, seed=i, options={"instance": instance})
        for _ in range(3):
            results = env.step_envs(np.ones((len(instances), 4), dtype=np.int64))
        weights = [w for stack in env.stacks for w in stack.weights]
        assert all(w.device.type == "cuda" for w in weights) == (device == "cuda")
        outs.append(np.stack([r[0]["training_stats"] for r in results if r is not None]))
        env.close()
    assert np.allclose(outs[0], outs[1], atol=1e-3)


@pytest.mark.slow
def test_benchmark_smoke_reports_every_size_and_setting() -> None:
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    proc = subprocess.run([sys.executable, "-m", "benchmarks.batched_env", "--smoke", "--obs-settings",
                           "training_stats+neurons"], cwd=root, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout)
    assert result["matmul_peak_gflops"] > 0 and result["target_met"] is None  # smoke: no N=16 row
    assert result["settings"][0]["obs_keys"] == ["training_stats", "neurons"]
    assert len(result["machine"]["loadavg"]) == len(result["loadavg_end"]) == 3
    rows = result["settings"][0]["batched"]
    assert [(r["n"], r["workers"]) for r in rows] == [(1, 1), (4, 1), (4, 2)]  # N >= 2 also in 2 worker processes
    assert all(r["steps_per_s"] > 0 and r["useful_gflop_per_step"] > 0 for r in rows)
    in_process = [r for r in rows if r["workers"] == 1]  # stack shapes are only read in this process
    assert all(r["computed_gflop_per_step"] >= r["useful_gflop_per_step"] for r in in_process)
    assert all(r["computed_gflop_per_step"] is None and r["train_share"] is None for r in rows if r["workers"] > 1)
    assert "ceiling" not in result["settings"][0]  # no N=16 in 2 workers: no target configuration to bound


@pytest.mark.slow
def test_benchmark_bounds_the_target_configuration_by_its_training_steps() -> None:
    from benchmarks.batched_env import Args, markdown, run

    args = Args(sizes=(16,), workers=(2,), obs_settings=("training_stats",), blocks=1, env_steps_per_block=16,
                write=False)
    result = run(args)
    setting = result["settings"][0]
    assert [(r["n"], r["workers"]) for r in setting["batched"]] == [(16, 2)]  # the ceiling's env is not a row
    ceiling = setting["ceiling"]
    assert (ceiling["n"], ceiling["workers"], ceiling["sub_envs_per_worker"]) == (16, 2, 8)
    assert ceiling["speedup_vs_subproc2"] > 0
    assert f"**{ceiling['speedup_vs_subproc2']}x** SubprocVecEnv(2)" in markdown(result)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_stack_deeper_than_every_row_trains_like_torch_optim(optimizer: str) -> None:
    # A depth-3 instance left the stack (its row now holds a depth-1 network): no row owns hidden layers 1 and 2,
    # which run on zero rows. Three steps must equal torch.optim on each module, bit for bit.
    gen = torch.Generator().manual_seed(0)
    models = [build_mlp(64, [64], 10, gen) for _ in range(2)]
    stack = StackedMLP(2, optimizer, 0.9, torch.device("cpu"))
    stack.load(0, build_mlp(64, [64] * 3, 10, gen), reset_state=True)
    stack.load(1, models[1], reset_state=True)
    stack.load(0, models[0], reset_state=True)
    assert stack.depth == 3
    x = torch.rand((3, 2, 8, 64), generator=gen)
    y = torch.randint(10, (3, 2, 8), generator=gen)
    lrs = [0.1, 0.02] if optimizer == "sgd" else [1e-2, 3e-3]
    stack.train(x, y, lr=lrs, weight_decay=[1e-3, 1e-2])
    for i, (model, lr, wd) in enumerate(zip(models, lrs, [1e-3, 1e-2])):
        reference = build_mlp(64, [64], 10, torch.Generator().manual_seed(0))
        reference.load_state_dict(model.state_dict())
        groups = [{"params": [p for n, p in reference.named_parameters() if n.endswith("weight")],
                   "weight_decay": wd},
                  {"params": [p for n, p in reference.named_parameters() if not n.endswith("weight")],
                   "weight_decay": 0.0}]
        opt = torch.optim.SGD(groups, lr=lr, momentum=0.9) if optimizer == "sgd" else torch.optim.AdamW(groups, lr=lr)
        for step in range(3):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(reference(x[step, i]), y[step, i]).backward()
            opt.step()
        stack.store(i, model)
        assert all(torch.equal(a, b) for a, b in zip(reference.parameters(), model.parameters())), f"instance {i}"
