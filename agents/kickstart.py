"""Kickstarting: the agent imitates a hand controller on TRAIN instances before RL takes over.

Learning from demonstrations before reinforcement learning (Hester et al. 2018, DQfD; Schmitt et al. 2018,
"Kickstarting deep reinforcement learning"): the controller plays whole episodes on random TRAIN instances, the
agent's policy is fitted to its moves (the negative log-likelihood of SB3's own action distribution,
``policy.evaluate_actions``) and its value head to the episodes' returns, then PPO continues from there. The
demonstrations' env steps count against ``--total-timesteps``, so an agent with and one without a kickstart get the
same number of env steps.

With ``demo_coef`` > 0, kickstarting's second half follows: while RL fine-tunes the policy, a decaying imitation term
keeps it near the demonstrations (:class:`DemonstrationLoss`).

Each agent sees only its own observation keys: the controller reads the advisor's findings from ``info`` (the
demonstration env emits the diagnosis whether the agent observes it or not), so an agent without the diagnosis
imitates the controller's moves from what it sees, as well as that allows.

Why not the ``imitation`` library's BC: it pins gymnasium 0.29 and stable-baselines3 2.2, which this package's
Ray pin (gymnasium 1.2) excludes; the fit below is SB3's policy loss with the actions given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import VecNormalize
from traingym.agents.baselines import make_baseline
from traingym.agents.env_factory import make_env
from traingym.agents.policies import env_overrides
from traingym.protocol.moves import agent_columns, expand_actions, knob_indices

DEMO_SEED_OFFSET = 1_000_003
"""Demonstration episode ``e`` of agent seed ``s`` resets with seed ``DEMO_SEED_OFFSET * (s + 1) + e`` (a random
TRAIN instance drawn from it), apart from the training envs' seeds ``s + rank``."""

OBS_PREFIX = "obs."
"""Array names of the observation keys in a saved :class:`Demonstrations` file."""


@dataclass(frozen=True)
class Demonstrations:
    """The controller's steps as the agent sees them: raw observations (per key, stacked), the agent's actions
    (its knobs, then the env's entries after the knobs), per-step rewards and episode-start flags."""

    observations: dict[str, np.ndarray]
    actions: np.ndarray
    rewards: np.ndarray
    episode_starts: np.ndarray

    @property
    def steps(self) -> int:
        return len(self.actions)

    @staticmethod
    def concatenate(parts: list[Demonstrations]) -> Demonstrations:
        return Demonstrations({k: np.concatenate([p.observations[k] for p in parts]) for k in parts[0].observations},
                              np.concatenate([p.actions for p in parts]), np.concatenate([p.rewards for p in parts]),
                              np.concatenate([p.episode_starts for p in parts]))

    def save(self, path: str | Path) -> None:
        np.savez_compressed(path, actions=self.actions, rewards=self.rewards, episode_starts=self.episode_starts,
                            **{OBS_PREFIX + key: value for key, value in self.observations.items()})

    @staticmethod
    def load(path: str | Path) -> Demonstrations:
        with np.load(path, allow_pickle=False) as data:
            return Demonstrations({k.removeprefix(OBS_PREFIX): data[k] for k in data.files if k.startswith(OBS_PREFIX)},
                                  data["actions"], data["rewards"], data["episode_starts"])


@dataclass(frozen=True)
class KickstartResult:
    """What the kickstart did (recorded in the run's ``config.json``)."""

    controller: str
    episodes: int
    env_steps: int
    epochs: int
    action_accuracy: float
    """Share of the gathered steps whose most likely agent action equals the controller's, after the last fit."""
    rounds: int = 1

    def to_json(self) -> dict[str, Any]:
        return {"controller": self.controller, "episodes": self.episodes, "rounds": self.rounds,
                "env_steps": self.env_steps, "epochs": self.epochs, "action_accuracy": round(self.action_accuracy, 4)}


Driver = Callable[[dict[str, np.ndarray]], np.ndarray]
"""The agent acting on its own (raw) observation: returns its action over its knobs."""


def collect_demonstrations(controller: str, env_id: str, env_kwargs: dict[str, Any], obs_keys: tuple[str, ...],
                           knobs: tuple[str, ...], episodes: int, horizon: int, seed: int, first_episode: int = 0,
                           driver: Driver | None = None) -> Demonstrations:
    """Episodes ``first_episode ..`` on random TRAIN instances, labelled with ``controller``'s moves (a baseline
    name); the controller also acts, unless ``driver`` (the agent) does: then the controller only says what it would
    have done in the states the agent reaches (DAgger's labels).

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
        for episode in range(first_episode, first_episode + episodes):
            episode_seed = DEMO_SEED_OFFSET * (seed + 1) + episode
            policy.begin_episode(episode_seed)
            obs, info = env.reset(seed=episode_seed)
            done, start = False, True
            while not done:
                policy.observe_info(info)
                label, _ = policy.predict(obs, episode_start=np.array([start]))
                seen = {key: np.asarray(obs[key], dtype=np.float32) for key in obs_keys}
                for key in obs_keys:
                    observations[key].append(seen[key])
                actions.append(np.asarray(label)[agent_columns(indices, len(label))])
                starts.append(start)
                action = label if driver is None else expand_actions(driver(seen), indices)
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


def imitation_loss(policy: ActorCriticPolicy, observations: dict[str, torch.Tensor], actions: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """The negative log-likelihood of ``actions`` under the policy's own action distribution (mean over the
    batch), and the value head's predictions."""
    values, log_prob, _ = policy.evaluate_actions(observations, actions)
    return -log_prob.mean(), values.flatten()


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
            nll, values = imitation_loss(policy, sample, action_tensor[batch])
            loss = nll + 0.5 * torch.nn.functional.mse_loss(values, return_tensor[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    policy.set_training_mode(False)
    with torch.no_grad():
        predicted = policy.get_distribution(obs_tensor).mode()
    return float((predicted.reshape(action_tensor.shape) == action_tensor).all(dim=1).float().mean())


def kickstart(model: BaseAlgorithm, normalizer: VecNormalize | None, controller: str, env_id: str,
              env_kwargs: dict[str, Any], obs_keys: tuple[str, ...], knobs: tuple[str, ...], episodes: int,
              epochs: int, horizon: int, gamma: float, seed: int, rounds: int = 1
              ) -> tuple[KickstartResult, Demonstrations]:
    """Fit the agent to the controller: behaviour cloning of the controller's own episodes (``rounds`` 1), or
    DAgger (Ross et al. 2011, ``rounds`` > 1): the ``episodes`` are split over the rounds; in the first the
    controller drives, in each later one the agent fitted so far drives and the controller labels the states it
    reaches, and the agent is fitted again to everything gathered (errors that take the agent off the controller's
    path get labels there). Each round's data primes the normaliser as if the agent had run it. Returns what
    happened and everything gathered (raw observations, the controller's labels)."""
    per_round = [episodes // rounds + (r < episodes % rounds) for r in range(rounds)]
    gathered: list[tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]] = []
    rounds_demos: list[Demonstrations] = []
    accuracy, steps, first = 0.0, 0, 0
    for count in per_round:
        driver = None if not gathered else _driver(model, normalizer)
        demos = collect_demonstrations(controller, env_id, env_kwargs, obs_keys, knobs, count, horizon, seed,
                                       first_episode=first, driver=driver)
        first, steps = first + count, steps + demos.steps
        rounds_demos.append(demos)
        rewards = demos.rewards if normalizer is None else prime_normalizer(normalizer, demos, gamma)
        gathered.append((demos.observations, demos.actions, returns_to_go(rewards, demos.episode_starts, gamma)))
        raw = {key: np.concatenate([g[0][key] for g in gathered]) for key in obs_keys}
        observations = raw if normalizer is None else normalizer.normalize_obs(raw)
        accuracy = fit_policy(model, observations, np.concatenate([g[1] for g in gathered]),
                              np.concatenate([g[2] for g in gathered]), epochs, seed=seed + len(gathered))
    result = KickstartResult(controller, episodes, steps, epochs, accuracy, rounds)
    return result, Demonstrations.concatenate(rounds_demos)


def _driver(model: BaseAlgorithm, normalizer: VecNormalize | None) -> Driver:
    """The agent's deterministic action on one raw observation (normalised as in training)."""
    def act(observation: dict[str, np.ndarray]) -> np.ndarray:
        seen = observation if normalizer is None else normalizer.normalize_obs(observation)
        action, _ = model.predict(seen, deterministic=True)
        return np.asarray(action)
    return act


class DemonstrationLoss(BaseCallback):
    """Kickstarting's decaying imitation term while RL fine-tunes a kickstarted policy (Schmitt et al. 2018; the
    demonstration term of DAPG, Rajeswaran et al. 2018): after every policy update, one pass over the
    demonstrations in minibatches, each an optimizer step on ``coef * w * NLL`` of the demonstrated actions, where
    ``w`` falls linearly from 1 after the demonstrations to 0 at ``total_timesteps``.

    The steps are the algorithm's own optimizer's (its Adam moments and current learning rate, gradients clipped at
    its ``max_grad_norm``), interleaved with its updates rather than added to its loss, so SB3's update stays as it
    is. What the term needs survives a ``--resume``: the optimizer's state is saved with the model, the
    demonstrations in the run directory, and the minibatch order derives from ``seed`` and the step counter.
    Observations are normalised with the running statistics of the moment.
    """

    def __init__(self, demonstrations: Demonstrations, normalizer: VecNormalize | None, coef: float,
                 total_timesteps: int, batch_size: int = 64, seed: int = 0) -> None:
        super().__init__()
        self.demonstrations, self.normalizer = demonstrations, normalizer
        self.coef, self.total_timesteps, self.batch_size, self.seed = coef, total_timesteps, batch_size, seed
        self.passes = 0

    def weight(self, num_timesteps: int) -> float:
        """``coef`` times the share of the RL steps still to come."""
        start = self.demonstrations.steps
        return self.coef * max(0.0, 1.0 - (num_timesteps - start) / max(1, self.total_timesteps - start))

    def _on_rollout_start(self) -> None:
        # The first rollout of a fresh run comes before any update: nothing to pull back yet.
        steps = self.model.num_timesteps
        weight = self.weight(steps)
        if steps <= self.demonstrations.steps or weight <= 0.0:
            return
        policy = self.model.policy
        raw = self.demonstrations.observations
        seen = raw if self.normalizer is None else self.normalizer.normalize_obs(raw)
        observations, _ = policy.obs_to_tensor(seen)
        actions = torch.as_tensor(self.demonstrations.actions, device=policy.device)
        # The order of this pass: one stream per (agent seed, step count), apart as the demonstration episodes' seeds.
        generator = torch.Generator().manual_seed(self.seed * DEMO_SEED_OFFSET + steps)
        policy.set_training_mode(True)
        for batch in torch.randperm(len(actions), generator=generator).split(self.batch_size):
            batch = batch.to(policy.device)
            nll, _ = imitation_loss(policy, {k: v[batch] for k, v in observations.items()}, actions[batch])
            policy.optimizer.zero_grad()
            (weight * nll).backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), self.model.max_grad_norm)
            policy.optimizer.step()
        policy.set_training_mode(False)
        self.passes += 1
        self.logger.record("kickstart/demo_weight", weight)
        self.logger.record("kickstart/demo_nll", float(nll.detach()))

    def _on_step(self) -> bool:
        return True
