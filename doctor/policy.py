"""What proposes the doctor's moves: a saved agent, a shipped agent, the advisor-greedy rule, or any object with
SB3's ``predict``, together with the observation it expects.

A policy decides from an observation whose keys (and shapes) are those of the env it was trained in. The doctor
builds its observation with the env's own code (:class:`~traingym.envs.monitoring.monitor.TrainingMonitor`) from
the same observation settings (the agent's run ``config.json``: ``obs_keys``, encoder, ``flag_top_k``, ...), hands the
policy exactly its keys, and checks at attach time that the spaces match the ones the agent was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gymnasium import spaces
from traingym.agents.observation_spec import ObservationSpec
from traingym.envs.config import field_names

ACCEPTED_POLICIES = ('a saved agent run directory (or its model .zip), "pretrained:<name>" (an agent shipped with '
                     'the package, e.g. "pretrained:digits-mlp"), "advisor_greedy" (apply the advisor\'s suggested '
                     'move), another baseline name, or an object with predict(observation)')
OBSERVATION_FIELDS: tuple[str, ...] = (
    "obs_keys", "encoder", "diagnosis_dim", "flag_top_k", "max_error_samples", "history_len", "neuron_log",
    "relevance", "advisor", "advisor_call", "advisor_every_n",
)
"""Env config fields that shape an observation: taken from an agent's training config."""
_NEEDS_ENV = ("good_defaults", "steer")
"""Baselines tied to a registered env's tuned defaults: not usable on a user's run."""


@dataclass
class DoctorPolicy:
    """A resolved policy: the object that predicts, the observation it needs, and its name for the decision log."""

    predictor: Any
    label: str
    observation: ObservationSpec
    """The observation the policy decides from (an agent's: its run's, passed whole)."""
    env_settings: dict[str, Any] = field(default_factory=dict)
    """Observation settings of the agent's training env (:data:`OBSERVATION_FIELDS` only)."""
    horizon: int | None = None
    """Env steps per episode the agent was trained with (the doctor's default number of checks)."""
    discrete_actions: bool = False

    @property
    def obs_keys(self) -> tuple[str, ...]:
        return self.observation.keys

    def move(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> tuple[int, int, int, int]:
        """The policy's move for one check (``info`` feeds baselines that read it, as in the evaluation loop)."""
        from traingym.protocol.moves import action_to_move

        observe_info = getattr(self.predictor, "observe_info", None)
        if observe_info is not None:
            observe_info(info)
        action, _ = self.predictor.predict({k: observation[k] for k in self.obs_keys}, deterministic=True)
        if self.discrete_actions:  # Discrete(81): base-3 digits, as DiscreteActionWrapper decodes them
            action = np.unravel_index(int(np.asarray(action).reshape(-1)[0]), (3, 3, 3, 3))
        return action_to_move(np.asarray(action).reshape(-1))

    def check_spaces(self, observation_space: spaces.Dict) -> None:
        """Raise ValueError when the doctor's observation does not match the agent's training spaces."""
        trained = getattr(getattr(self.predictor, "model", None), "observation_space", None)
        if trained is None:
            trained = getattr(self.predictor, "observation_space", None)
        if not isinstance(trained, spaces.Dict):
            return
        mine = {k: observation_space[k].shape for k in self.obs_keys if k in observation_space.spaces}
        theirs = {k: s.shape for k, s in trained.spaces.items()}
        if mine != theirs:
            raise ValueError(f"policy {self.label!r} was trained on observations {theirs} but the doctor builds "
                             f"{mine} with these settings ({self.env_settings}); give the doctor the agent's "
                             "observation settings (encoder, diagnosis_dim, flag_top_k) or retrain the agent")


def resolve_policy(policy: Any) -> DoctorPolicy:
    """A :class:`DoctorPolicy` from a spec (see :data:`ACCEPTED_POLICIES`)."""
    if not isinstance(policy, str):
        if not callable(getattr(policy, "predict", None)):
            raise ValueError(f"policy must be a string or an object with predict(); got {type(policy).__name__}. "
                             f"Accepted: {ACCEPTED_POLICIES}")
        observation = getattr(policy, "observation", None)
        if not isinstance(observation, ObservationSpec):
            observation = ObservationSpec(tuple(getattr(policy, "env_overrides", {}).get("obs_keys",
                                                                                          ("training_stats",))))
        return DoctorPolicy(policy, type(policy).__name__, observation,
                            discrete_actions=bool(getattr(policy, "discrete_actions", False)))
    from traingym.agents.baselines import BASELINES, make_baseline

    text = policy.strip()
    if text in BASELINES:
        if text in _NEEDS_ENV:
            raise ValueError(f"policy {text!r} replays a registered env's tuned defaults and cannot steer your own "
                             f"run. Accepted: {ACCEPTED_POLICIES}")
        baseline = make_baseline(text, "", 0)
        keys = tuple(baseline.env_overrides.get("obs_keys", ("training_stats",)))
        settings = {k: v for k, v in baseline.env_overrides.items() if k in OBSERVATION_FIELDS and k != "obs_keys"}
        return DoctorPolicy(baseline, text, ObservationSpec(keys), settings)
    return _load_saved_agent(text)


def _load_saved_agent(text: str) -> DoctorPolicy:
    from traingym.agents.policies import find_run_config, load_agent
    from traingym.agents.pretrained import resolve_agent_path

    path = resolve_agent_path(text)  # ValueError for an unknown pretrained name
    if not path.exists():
        raise ValueError(f"policy {text!r}: no saved agent at {path}. Accepted: {ACCEPTED_POLICIES}")
    agent = load_agent(path)
    config = find_run_config(path)
    grid = _mask_grid(config)
    if grid:
        raise ValueError(f"policy {text!r} was trained with mask_grid={grid}: its actions pick a grid cell of the "
                         "input images to decorrelate, which the doctor cannot apply to your run. Accepted: "
                         f"{ACCEPTED_POLICIES}")
    known = set(field_names())
    spec_fields = ("obs_keys", "advisor", "diagnosis_dim")  # the agent's ObservationSpec holds these
    settings = {k: v for k, v in config.get("env_kwargs", {}).items()
                if k in OBSERVATION_FIELDS and k in known and k not in spec_fields}
    settings.update({k: v for k, v in agent.observation.env_kwargs().items() if k != "obs_keys"})
    horizon = config.get("args", {}).get("horizon")
    return DoctorPolicy(agent, text, agent.observation, settings,
                        int(horizon) if horizon else None, agent.discrete_actions)


def _mask_grid(config: dict[str, Any]) -> int:
    """The ``mask_grid`` an agent's training env had: its own kwargs', else its registered id's."""
    import gymnasium as gym
    import traingym.envs  # noqa: F401  (registers the ids)

    kwargs = config.get("env_kwargs", {})
    if "mask_grid" in kwargs:
        return int(kwargs["mask_grid"])
    env_id = config.get("args", {}).get("env", "")
    return int(gym.spec(env_id).kwargs.get("mask_grid", 0)) if env_id in gym.registry else 0
