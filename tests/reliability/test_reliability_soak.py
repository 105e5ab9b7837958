"""Long random-action soak over every task family, memory growth, and hook hygiene.

Soak settings (chosen to fit CI's budget on 2 shared cores): K = ``steps_per_action=1``, ``val_size=32``,
``batch_size=32``, horizon 20, every observation key and neuron-log policy on, the heuristic advisor called at
every step with the hashing encoder. Episodes rotate over all registered ``TrainGym/`` ids; every fourth episode
starts from an extreme learning rate and is steered into divergence, the others play uniform random actions.
"""

from __future__ import annotations

import gc
import json
import math
import pickle
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
import traingym.envs  # noqa: F401  (registers the ids)
from advisors_testkit import Reply, ScriptedChatServer
from torch import nn
from traingym.envs import TrainingEnv
from traingym.protocol.moves import keep_action

ENV_IDS = sorted(k for k in gym.registry if k.startswith("TrainGym/"))
SOAK_STEPS = 10_000
SOAK_KWARGS: dict[str, Any] = {"steps_per_action": 1, "val_size": 32, "batch_size": 32, "encoder": "hashing",
                               "advisor_call": "every_step"}
HORIZON = 20
DIVERGE = np.array([2, 0, 1, 2])
RSS_STEPS = 5_000
RSS_WARMUP_STEPS = 1_000
RSS_LIMIT_MB = 50.0


def rss_mb() -> float:
    """Resident set size of this process (``VmRSS`` from ``/proc/self/status``), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("VmRSS not found in /proc/self/status")


HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def is_library_hook(hook: object) -> bool:
    """transformers installs output-capturing hooks once per model (for ``output_attentions``); they belong to the
    model, stay fixed in number and go away with it."""
    return "output_capturing_hook" in getattr(hook, "__qualname__", "")


def hook_count(model: nn.Module, library: bool = False) -> int:
    """Forward / backward hooks on any module of ``model`` (transformers' own only with ``library=True``)."""
    return sum(1 for module in model.modules() for name in HOOK_DICTS for hook in getattr(module, name, {}).values()
               if library or not is_library_hook(hook))


@pytest.mark.slow
def test_soak_10k_random_steps_over_all_families() -> None:
    rng = np.random.default_rng(2024)
    envs = {env_id: gym.make(env_id, max_episode_steps=HORIZON, horizon=HORIZON, **SOAK_KWARGS)
            for env_id in ENV_IDS}
    counts: Counter[str] = Counter()
    per_env: Counter[str] = Counter()
    crashes: list[str] = []
    episode = 0
    while counts["steps"] < SOAK_STEPS:
        env_id = ENV_IDS[episode % len(ENV_IDS)]
        env = envs[env_id]
        steer = (episode // len(ENV_IDS)) % 4 == 3  # every fourth round, on every env
        episode += 1
        try:
            options = None
            if steer:
                base = env.unwrapped.instances[int(rng.integers(len(env.unwrapped.instances)))]
                options = {"instance": {**base, "lr": float(10 ** rng.uniform(0, 3))}}
            obs, info = env.reset(seed=int(rng.integers(2**31)), options=options)
            check(env, obs, None, info, counts)
            done = False
            while not done and counts["steps"] < SOAK_STEPS:
                # Every entry in its range (a mask_grid env's fifth entry is a cell); steering pads with no cell.
                action = (np.concatenate([DIVERGE, keep_action(env.action_space)[len(DIVERGE):]]) if steer
                          else rng.integers(0, env.action_space.nvec))
                obs, reward, terminated, truncated, info = env.step(action)
                counts["steps"] += 1
                per_env[env_id] += 1
                check(env, obs, reward, info, counts)
                counts["divergences"] += int(terminated)
                done = terminated or truncated
            counts["episodes"] += 1
        except Exception:  # noqa: BLE001 - counted and reported, then the soak goes on with a fresh env
            crashes.append(f"{env_id}: {traceback.format_exc()}")
            env.close()
            envs[env_id] = gym.make(env_id, max_episode_steps=HORIZON, horizon=HORIZON, **SOAK_KWARGS)
    for env in envs.values():
        env.close()
    print(f"\nsoak: {counts['steps']} steps, {counts['episodes']} episodes, {counts['divergences']} divergences, "
          f"{len(crashes)} crashes, {counts['nonfinite_obs']} non-finite observations, "
          f"{counts['nonfinite_reward']} non-finite rewards, {counts['space_violations']} space violations, "
          f"{counts['info_not_json']} non-JSON infos; steps per env: {dict(per_env)}; settings: {SOAK_KWARGS}")
    assert not crashes, crashes[:3]
    assert counts["nonfinite_obs"] == counts["nonfinite_reward"] == counts["space_violations"] == 0
    assert counts["info_not_json"] == 0
    assert counts["steps"] == SOAK_STEPS
    assert counts["divergences"] > 0, "the steered episodes must actually diverge"
    assert set(per_env) == set(ENV_IDS)


def check(env: gym.Env, obs: dict[str, np.ndarray], reward: float | None, info: dict[str, Any],
          counts: Counter[str]) -> None:
    counts["nonfinite_obs"] += sum(int(not np.isfinite(v).all()) for v in obs.values())
    counts["space_violations"] += int(not env.observation_space.contains(obs))
    if reward is not None:
        counts["nonfinite_reward"] += int(not math.isfinite(reward))
    try:
        json.dumps(info, allow_nan=False)
    except (TypeError, ValueError):
        counts["info_not_json"] += 1


@pytest.mark.slow
def test_rss_growth_over_5000_steps_with_hooks_event_log_and_advisor_caches(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Every neuron-log policy (hooks), the event log (in memory and capped on disk) and the advisor's diagnosis
    and encoder caches (an ``openai:`` advisor against a local server, called every step; fresh instances so the
    caches fill to their caps): after a warm-up, RSS grows by less than 50 MB over 5,000 steps."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-rss-test")
    answers = [Reply(content=json.dumps({"findings": [finding], "confidence": 0.5,
                                         "move": {"lr": 0, "weight_decay": 1, "aug_level": 0, "neuron_scale": 0},
                                         "text": f"{finding}: step answer {i}."}))
               for i, finding in enumerate(["overfitting", "plateau", "healthy"] * 4)]
    with ScriptedChatServer(answers) as server:
        env = gym.make("TrainGym/DigitsMLP-v0", max_episode_steps=HORIZON, horizon=HORIZON,
                       steps_per_action=1, val_size=64, encoder="hashing", advisor="openai:test-model",
                       advisor_base_url=server.base_url, advisor_call="every_step", advisor_max_retries=0,
                       instance_set="sampled", log_path=str(tmp_path / "events.jsonl"))
        rng = np.random.default_rng(0)
        requests = [0]

        def run(steps: int) -> None:
            env.reset(seed=int(rng.integers(2**31)))
            for _ in range(steps):
                _, _, terminated, truncated, _ = env.step(rng.integers(0, 3, size=4))
                if terminated or truncated:
                    env.reset()
                    # the test server keeps every request it saw: drop them, or they are the growth we measure
                    requests[0] += len(server.requests)
                    server.requests.clear()

        run(RSS_WARMUP_STEPS)
        gc.collect()
        before = rss_mb()
        run(RSS_STEPS)
        gc.collect()
        growth = rss_mb() - before
        accounting = dict(env.unwrapped.advisor_accounting)
        env.close()
    print(f"\nRSS: {before:.1f} MB after {RSS_WARMUP_STEPS} warm-up steps, +{growth:.1f} MB over {RSS_STEPS} steps "
          f"(advisor calls {accounting.get('calls')}, fallbacks {accounting.get('fallbacks')}, "
          f"cache hits {accounting.get('cache_hits')}, HTTP requests {requests[0] + len(server.requests)})")
    assert growth < RSS_LIMIT_MB
    assert accounting["calls"] > 0 and accounting["fallbacks"] == 0


@pytest.fixture
def hook_spy(monkeypatch: pytest.MonkeyPatch) -> list[tuple[nn.Module, int]]:
    """Records ``(module, handle id)`` of every forward hook registered while the test runs."""
    registered: list[tuple[nn.Module, int]] = []
    original = nn.Module.register_forward_hook

    def spy(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
        handle = original(self, *args, **kwargs)
        registered.append((self, handle.id))
        return handle

    monkeypatch.setattr(nn.Module, "register_forward_hook", spy)
    return registered


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_hooks_never_outlive_a_step_or_close(env_id: str, hook_spy: list[tuple[nn.Module, int]]) -> None:
    """The neuron log (and token relevance) hook the hidden layers during a pass only: after every reset and
    step no hook is left on the model, none accumulate over episodes, and close() leaves none."""
    env = gym.make(env_id, steps_per_action=1, val_size=32, encoder="hashing")
    models: list[nn.Module] = []
    for seed in range(3):
        env.reset(seed=seed)
        models.append(env.unwrapped.model)
        library_hooks = []
        cell = [1] * (len(env.action_space.nvec) - len(DIVERGE))  # a mask_grid env's fifth entry: the first cell
        for action in (DIVERGE, np.array([1, 1, 1, 0]), np.array([2, 1, 1, 2])):
            env.step(np.concatenate([action, cell]))
            assert hook_count(models[-1]) == 0, "a hook outlived its pass"
            library_hooks.append(hook_count(models[-1], library=True))
        assert len(set(library_hooks)) == 1, f"library hooks accumulate: {library_hooks}"
    ours = [(m, h) for m, h in hook_spy if h not in m._forward_hooks or not is_library_hook(m._forward_hooks[h])]
    assert ours, "the neuron log must hook the hidden layers during its passes"
    assert all(handle not in module._forward_hooks for module, handle in ours)
    env.close()
    env.close()  # idempotent
    assert all(hook_count(model) == 0 for model in models)
    assert not nn.modules.module._global_forward_hooks and not nn.modules.module._global_backward_hooks


def test_hooks_are_removed_when_a_pass_raises(hook_spy: list[tuple[nn.Module, int]]) -> None:
    """A forward that fails inside the validation pass (hooks attached) propagates, leaves no hook behind, and the
    env recovers with a reset."""
    env = TrainingEnv(steps_per_action=1, val_size=32, obs_keys=["training_stats", "neurons"])
    env.reset(seed=0)
    module = env._log.layers[0].module
    original_forward = module.forward

    def failing_in_validation(x: Any) -> Any:
        if not torch.is_grad_enabled():  # the validation pass runs under no_grad, the training steps do not
            raise RuntimeError("injected failure in the validation pass")
        return original_forward(x)

    module.forward = failing_in_validation  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="injected failure"):
        env.step(np.array([1, 1, 1, 1]))
    assert hook_spy and hook_count(env.model) == 0
    del module.forward
    env.reset(seed=1)
    _, reward, *_ = env.step(np.array([1, 1, 1, 1]))
    assert math.isfinite(reward) and hook_count(env.model) == 0
    env.close()


@pytest.mark.parametrize("obs_keys", [["training_stats", "neurons"], ["training_stats", "neurons", "diagnosis"]])
def test_env_writing_an_event_file_can_be_pickled_and_keeps_logging(tmp_path: Path, obs_keys: list[str]) -> None:
    """An env with an open event-log file and the diagnosis channel's caches is picklable (copies reopen the file
    lazily and start with empty caches); both keep stepping."""
    path = tmp_path / "events.jsonl"
    env = TrainingEnv(steps_per_action=1, val_size=32, obs_keys=obs_keys, encoder="hashing", log_path=str(path))
    env.reset(seed=0, options={"instance": {**env.instances[0], "lr": 50.0}})
    env.step(DIVERGE)  # events are written, the file is open
    assert path.stat().st_size > 0
    clone = pickle.loads(pickle.dumps(env))
    for copy in (env, clone):
        copy.reset(seed=1, options={"instance": {**env.instances[0], "lr": 50.0}})
        _, reward, *_ = copy.step(DIVERGE)
        assert math.isfinite(reward)
        copy.close()
    assert len(path.read_text().splitlines()) >= 3
