"""Kickstarting: the agent imitates a hand controller on TRAIN instances before RL takes over.

Learning from demonstrations before reinforcement learning (Hester et al. 2018, DQfD; Schmitt et al. 2018,
"Kickstarting deep reinforcement learning"): the controller plays whole episodes on random TRAIN instances, the
agent's policy is fitted to its moves (the negative log-likelihood of SB3's own action distribution,
``policy.evaluate_actions``) and its value head to the episodes' returns, then PPO continues from there. The
demonstrations' env steps count against ``--total-timesteps``, so an agent with and one without a kickstart get the
same number of env steps.

Each agent sees only its own observation keys: the controller reads the advisor's findings from ``info`` (the
demonstration env emits the diagnosis whether the agent observes it or not), so an agent without the diagnosis
imitates the controller's moves from what it sees, as well as that allows.

Why not the ``imitation`` library's BC: it pins gymnasium 0.29 and stable-baselines3 2.2, which this package's
Ray pin (gymnasium 1.2) excludes; the fit below is SB3's policy loss with the actions given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecNormalize
from traingym.agents.baselines import make_baseline
from traingym.agents.env_factory import make_env
from traingym.agents.policies import env_overrides
from traingym.protocol.moves import knob_indices

DEMO_SEED_OFFSET = 1_000_003
"""Demonstration episode ``e`` of agent seed ``s`` resets with seed ``DEMO_SEED_OFFSET * (s + 1) + e`` (a random
TRAIN instance drawn from it), apart from the training envs' seeds ``s + rank``."""


@dataclass(frozen=True)
class Demonstrations:
    """The controller's steps as the agent sees them: raw observations (per key, stacked), the agent's actions
    (its knobs only), per-step rewards and episode-start flags."""

    observations: dict[str, np.ndarray]
    actions: np.ndarray
    rewards: np.ndarray
    episode_starts: np.ndarray

    @property
    def steps(self) -> int:
        return len(self.actions)


@dataclass(frozen=True)
class KickstartResult:
    """What the kickstart did (recorded in the run's ``config.json``)."""

    controller: str
    episodes: int
    env_steps: int
    epochs: int
    action_accuracy: float
    """Share of demonstration steps whose most likely agent action equals the controller's, after the fit."""

    def to_json(self) -> dict[str, Any]:
        return {"controller": self.controller, "episodes": self.episodes, "env_steps": self.env_steps,
                "epochs": self.epochs, "action_accuracy": round(self.action_accuracy, 4)}


def collect_demonstrations(controller: str, env_id: str, env_kwargs: dict[str, Any], obs_keys: tuple[str, ...],
                           knobs: tuple[str, ...], episodes: int, horizon: int, seed: int) -> Demonstrations:
    """Run ``controller`` (a baseline name) for ``episodes`` episodes on random TRAIN instances.

    ``env_kwargs`` are the agent's training-env kwargs; the controller's own needs (the diagnosis key for the
    advisor's findings) are added, and only ``obs_keys`` are kept of each observation.
    """
    policy = make_baseline(controller, env_id, seed=seed, horizon=horizon)
    needed = env_overrides(policy)
    keys = tuple(dict.fromkeys((*env_kwargs.get("obs_keys", obs_keys), *needed.get("obs_keys", ()))))
    # The agent's own env settings win; the controller's encoder only where the agent never sees the text.
    extra = {k: v for k, v in needed.items() if k != "encoder" or "diagnosis" not in obs_keys}
    kwargs = {**extra, **env_kwargs, "obs_keys": keys, "instance_set": "train"}
    indices = knob_indices(knobs)
    env = make_env(env_id, horizon, kwargs)
    observations: dict[str, list[np.ndarray]] = {k: [] for k in obs_keys}
    actions, rewards, starts = [], [], []
    try:
        for episode in range(episodes):
            episode_seed = DEMO_SEED_OFFSET * (seed + 1) + episode
            policy.begin_episode(episode_seed)
            obs, info = env.reset(seed=episode_seed)
            done, start = False, True
            while not done:
                policy.observe_info(info)
                action, _ = policy.predict(obs, episode_start=np.array([start]))
                for key in obs_keys:
                    observations[key].append(np.asarray(obs[key], dtype=np.float32))
                actions.append(np.asarray(action)[list(indices)])
                starts.append(start)
                obs, reward, terminated, truncated, info = env.step(action)
                rewards.append(float(reward))
                done, start = terminated or truncated, False
    finally:
        env.close()
    return Demonstrations({k: np.stack(v) for k, v in observations.items()}, np.stack(actions).astype(np.int64),
                          np.asarray(rewards, dtype=np.float32), np.asarray(starts, dtype=bool))


def returns_to_go(rewards: np.ndarray, episode_starts: np.ndarray, gamma: float) -> np.ndarray:
    """Discounted reward-to-go of every step, within its episode."""
    out = np.zeros_like(rewards, dtype=np.float64)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + gamma * running
        out[t] = running
        if episode_starts[t]:
            running = 0.0
    return out.astype(np.float32)


def prime_normalizer(normalizer: VecNormalize, demos: Demonstrations, gamma: float) -> np.ndarray:
    """Feed the demonstrations into VecNormalize's running statistics (as if the agent had run them) and return the
    rewards as the agent will see them (scaled by the running return's std, clipped)."""
    if normalizer.norm_obs:
        keys = normalizer.norm_obs_keys if normalizer.norm_obs_keys is not None else list(demos.observations)
        for key in keys:
            normalizer.obs_rms[key].update(demos.observations[key])
    if not normalizer.norm_reward:
        return demos.rewards
    running = np.zeros(len(demos.rewards))
    value = 0.0
    for t, reward in enumerate(demos.rewards):
        value = reward + (0.0 if demos.episode_starts[t] else gamma * value)
        running[t] = value
    normalizer.ret_rms.update(running)
    return np.asarray(normalizer.normalize_reward(demos.rewards), dtype=np.float32)


def fit_policy(model: BaseAlgorithm, observations: dict[str, np.ndarray], actions: np.ndarray, returns: np.ndarray,
               epochs: int, batch_size: int = 64, learning_rate: float = 1e-3, seed: int = 0) -> float:
    """Fit ``model.policy`` to the actions (negative log-likelihood) and its value head to ``returns`` (MSE, half
    weight as in PPO's loss). Returns the share of steps whose most likely action is the demonstrated one."""
    policy = model.policy
    policy.set_training_mode(True)
    optimizer = torch.optim.Adam(policy.parameters(), lr=learning_rate)
    obs_tensor, _ = policy.obs_to_tensor(observations)
    action_tensor = torch.as_tensor(actions, device=policy.device)
    return_tensor = torch.as_tensor(returns, device=policy.device)
    generator = torch.Generator().manual_seed(seed)
    n = len(actions)
    for _ in range(epochs):
        for batch in torch.randperm(n, generator=generator).split(batch_size):
            batch = batch.to(policy.device)
            sample = {k: v[batch] for k, v in obs_tensor.items()}
            values, log_prob, _ = policy.evaluate_actions(sample, action_tensor[batch])
            loss = -log_prob.mean() + 0.5 * torch.nn.functional.mse_loss(values.flatten(), return_tensor[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    policy.set_training_mode(False)
    with torch.no_grad():
        predicted = policy.get_distribution(obs_tensor).mode()
    return float((predicted.reshape(action_tensor.shape) == action_tensor).all(dim=1).float().mean())


def kickstart(model: BaseAlgorithm, normalizer: VecNormalize | None, controller: str, env_id: str,
              env_kwargs: dict[str, Any], obs_keys: tuple[str, ...], knobs: tuple[str, ...], episodes: int,
              epochs: int, horizon: int, gamma: float, seed: int) -> KickstartResult:
    """Collect the controller's demonstrations, prime the normaliser with them and fit the agent to them."""
    demos = collect_demonstrations(controller, env_id, env_kwargs, obs_keys, knobs, episodes, horizon, seed)
    rewards = demos.rewards if normalizer is None else prime_normalizer(normalizer, demos, gamma)
    observations = demos.observations if normalizer is None else normalizer.normalize_obs(demos.observations)
    returns = returns_to_go(rewards, demos.episode_starts, gamma)
    accuracy = fit_policy(model, observations, demos.actions, returns, epochs, seed=seed)
    return KickstartResult(controller, episodes, demos.steps, epochs, accuracy)
