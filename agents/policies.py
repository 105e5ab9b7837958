"""Trained agents as evaluation policies, and resolving a policy spec (baseline name or saved agent path)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecNormalize
from traingym.agents.algos import algo_class, uses_discrete_actions
from traingym.agents.args import saved_run_knobs
from traingym.agents.baselines import BASELINES, make_baseline
from traingym.agents.checkpoints import load_normalizer, normalizer_path
from traingym.agents.observation_spec import ObservationSpec
from traingym.agents.pretrained import resolve_agent_path
from traingym.agents.tuned_defaults import TunedValues
from traingym.protocol.moves import KNOBS, expand_actions, knob_indices
from traingym.protocol.run_files import BEST_MODEL_FILE, CONFIG_FILE, MODEL_FILE

MIN_OBS_KEYS: tuple[str, ...] = ("training_stats",)
"""Observation keys of the env a baseline runs in (baselines read ``info``, not the observation)."""


class Policy(Protocol):
    """What the evaluation loop needs: SB3's ``predict`` for one (unbatched) observation."""

    def predict(self, observation: dict[str, np.ndarray], state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[np.ndarray, Any]: ...


class AgentPolicy:
    """A trained SB3 agent, with the observation normalisation it was trained with, for one env."""

    def __init__(self, model: BaseAlgorithm, normalizer: VecNormalize | None, observation: ObservationSpec,
                 discrete_actions: bool, knobs: Sequence[str] = KNOBS) -> None:
        self.model = model
        indices = knob_indices(knobs)
        self.knob_indices = None if indices == tuple(range(len(KNOBS))) else indices
        """The knobs the agent moves when a subset (``train_agent.py --knobs``; its actions are expanded to all
        knobs), else None."""
        self.normalizer = normalizer
        self.discrete_actions = discrete_actions
        self.observation = observation
        self.env_overrides = observation.env_kwargs()

    def predict(self, observation: dict[str, np.ndarray], state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[np.ndarray, Any]:
        batch = {k: np.asarray(v)[None] for k, v in observation.items()}
        if self.normalizer is not None:
            batch = self.normalizer.normalize_obs(batch)  # type: ignore[assignment]
        starts = None if episode_start is None else np.asarray(episode_start, dtype=bool).reshape(1)
        action, state = self.model.predict(batch, state=state, episode_start=starts,  # type: ignore[arg-type]
                                           deterministic=deterministic)
        action = np.asarray(action)[0]
        if self.knob_indices is not None:
            action = expand_actions(action, self.knob_indices)
        return action, state


@dataclass(frozen=True)
class PolicySpec:
    """A picklable description of a policy: ``target`` is a baseline name or the path of a saved agent (a run
    directory, or a model ``.zip`` inside one); ``label`` names it in tables."""

    label: str
    target: str
    seed: int = 0

    @staticmethod
    def parse(text: str, seed: int = 0) -> PolicySpec:
        """``name``, ``path`` or ``label=name-or-path``."""
        label, _, target = text.rpartition("=")
        target = target or text
        if not label:
            label = target if target in BASELINES else _agent_label(Path(target))
        return PolicySpec(label, target, seed)


def _agent_label(path: Path) -> str:
    run_dir = path if path.is_dir() else path.parent
    return run_dir.name or str(path)


def find_run_config(path: Path) -> dict[str, Any]:
    """The ``config.json`` of the run a saved agent belongs to (the run directory or up to two parents)."""
    start = path if path.is_dir() else path.parent
    for directory in (start, start.parent, start.parent.parent):
        config = directory / CONFIG_FILE
        if config.exists():
            return json.loads(config.read_text())
    raise FileNotFoundError(f"no config.json found for the agent at {path} (looked in {start} and its parents)")


def agent_model_path(path: Path, which: str = "final") -> Path:
    """The model file of a run directory (``model.zip`` or ``best_model.zip``) or ``path`` itself."""
    if path.is_dir():
        best = path / BEST_MODEL_FILE
        return best if which == "best" and best.exists() else path / MODEL_FILE
    return path


def load_agent(path: str | Path, which: str = "final", device: str = "cpu") -> AgentPolicy:
    """Load a saved agent (run directory, model file, or ``pretrained:<name>`` for an agent shipped with the
    package, see :mod:`traingym.agents.pretrained`) as a :class:`AgentPolicy`."""
    path = resolve_agent_path(path)
    if not path.exists():
        raise FileNotFoundError(f"no saved agent at {path}")
    config = find_run_config(path)
    args = config["args"]
    if args.get("backend") == "rllib":  # a --backend rllib run: its RLModule (imports Ray only here)
        from traingym.agents.rllib_policy import load_rllib_policy

        return load_rllib_policy(path, config)  # type: ignore[return-value]
    model_path = agent_model_path(path, which)
    model = algo_class(args["algo"]).load(model_path, device=device)
    stats = normalizer_path(model_path)
    normalizer = load_normalizer(stats) if stats.exists() else None
    return AgentPolicy(model, normalizer, ObservationSpec.from_run_config(config), uses_discrete_actions(args["algo"]),
                       saved_run_knobs(args))



def resolve_policy(spec: PolicySpec, env_id: str, horizon: int, which: str = "final",
                   tuned: TunedValues | None = None) -> Any:
    """Build the policy a spec names (a fresh object: safe to call in worker processes); ``tuned``: see
    :func:`~traingym.agents.baselines.make_baseline`."""
    if spec.target in BASELINES:
        return make_baseline(spec.target, env_id, spec.seed, horizon, tuned)
    return load_agent(spec.target, which)


def env_overrides(policy: Any) -> dict[str, Any]:
    """The ``gym.make`` kwargs a policy needs (baselines: the cheapest observation)."""
    return {"obs_keys": MIN_OBS_KEYS, **getattr(policy, "env_overrides", {})}
