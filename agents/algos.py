"""The RL algorithms ``train_agent.py`` offers, their policies and default hyperparameters."""

from __future__ import annotations

from typing import Any

from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import VecEnv


def algo_class(algo: str) -> type[BaseAlgorithm]:
    """The SB3 class of ``algo`` (ppo, a2c, dqn, recurrent_ppo)."""
    if algo == "recurrent_ppo":
        from sb3_contrib import RecurrentPPO

        return RecurrentPPO
    classes: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "a2c": A2C, "dqn": DQN}
    if algo not in classes:
        raise ValueError(f"algo must be one of ppo, a2c, dqn, recurrent_ppo, got {algo!r}")
    return classes[algo]


def policy_name(algo: str) -> str:
    """SB3 policy for the Dict observation space."""
    return "MultiInputLstmPolicy" if algo == "recurrent_ppo" else "MultiInputPolicy"


def uses_discrete_actions(algo: str) -> bool:
    """DQN needs a ``Discrete`` action space (``DiscreteActionWrapper``: ``Discrete(81)`` for the four knobs)."""
    return algo == "dqn"


def algo_kwargs(algo: str, n_envs: int, total_timesteps: int, learning_rate: float | None, n_steps: int | None,
                ent_coef: float, gamma: float, gae_lambda: float = 0.95, n_epochs: int = 10,
                batch_size: int | None = None, net_arch: tuple[int, ...] | None = None,
                anneal_lr: bool = False, target_kl: float | None = None) -> dict[str, Any]:
    """Constructor kwargs for the small budgets TrainGym runs at (an episode is 20 steps, a run ~1e4 steps).

    ``gae_lambda``, ``n_epochs``, ``target_kl`` and ``batch_size`` (None: the largest of 64, 32, ... dividing the
    rollout) apply to PPO and RecurrentPPO; ``net_arch`` (hidden sizes of both the policy and the
    value network; None: SB3's default) and ``anneal_lr`` (the learning rate falls linearly to 0 over the run) to
    PPO, RecurrentPPO and A2C. The kwargs stay JSON-able (``config.json`` records them); :func:`build_model` turns
    ``anneal_lr`` into SB3's ``LinearSchedule``.
    """
    kwargs: dict[str, Any] = {"gamma": gamma}
    if net_arch is not None and algo != "dqn":
        kwargs["policy_kwargs"] = {"net_arch": list(net_arch)}
    if algo in ("ppo", "recurrent_ppo"):
        # A rollout of >= 64 env steps in multiples of 16 per env (64, 32, 32, 16, ... for 1, 2, 3, 4+ envs), so
        # the minibatch below is never smaller than 16 (3 envs x 21 steps had only 1 as a divisor).
        steps = n_steps or 16 * -(-64 // (16 * n_envs))
        rollout = steps * n_envs
        batch = batch_size or next(b for b in (64, 32, 16, 8, 4, 2, 1) if rollout % b == 0 and b <= rollout)
        kwargs.update(n_steps=steps, batch_size=batch, n_epochs=n_epochs, gae_lambda=gae_lambda, ent_coef=ent_coef,
                      learning_rate=learning_rate or 1e-3)
        if target_kl is not None:
            kwargs["target_kl"] = target_kl
    elif algo == "a2c":
        kwargs.update(n_steps=n_steps or 5, ent_coef=ent_coef, learning_rate=learning_rate or 7e-4)
    elif algo == "dqn":
        kwargs.update(learning_rate=learning_rate or 1e-4, buffer_size=min(100_000, max(1_000, total_timesteps)),
                      learning_starts=min(1_000, total_timesteps // 10), batch_size=64, train_freq=4,
                      target_update_interval=max(1, min(1_000, total_timesteps // 20)), exploration_fraction=0.3)
    else:
        raise ValueError(f"unknown algo {algo!r}")
    if anneal_lr and algo != "dqn":
        kwargs["anneal_lr"] = True
    return kwargs


def build_model(algo: str, env: VecEnv, seed: int, device: str, tensorboard_log: str | None, verbose: int,
                **kwargs: Any) -> BaseAlgorithm:
    """A fresh agent for ``env`` (``kwargs``: :func:`algo_kwargs`)."""
    if kwargs.pop("anneal_lr", False):
        kwargs["learning_rate"] = LinearSchedule(kwargs["learning_rate"], 0.0, 1.0)
    return algo_class(algo)(policy_name(algo), env, seed=seed, device=device, tensorboard_log=tensorboard_log,
                            verbose=verbose, **kwargs)
