"""What an agent observes, as one frozen value: saved with each run and passed whole to everything that builds or
reads the agent's observations (its policy, the periodic evaluation, RLlib, the training doctor)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from traingym.protocol.checks import check_range

OBS_KEY_NAMES: tuple[str, ...] = ("training_stats", "neurons", "diagnosis")
"""The env's observation keys (:data:`traingym.envs.config.OBS_KEYS`; checked equal by the tests)."""
MAX_DIAGNOSIS_DIM = 384
"""MiniLM's embedding size: the most a projected diagnosis can keep."""


@dataclass(frozen=True)
class ObservationSpec:
    """The observation an agent was trained on (``config.json`` ``"observation"``).

    Args:
        keys: the env's observation keys (distinct, from ``training_stats``, ``neurons``, ``diagnosis``).
        advisor: the advisor spec behind the diagnosis key (None: the env's default; only with that key).
        diagnosis_dim: the diagnosis text embedding's projected size (None: all 384; only with that key).
        normalized_keys: the keys VecNormalize normalises (empty: every key, when the run normalises).
    """

    keys: tuple[str, ...] = ("training_stats",)
    advisor: str | None = None
    diagnosis_dim: int | None = None
    normalized_keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "keys", tuple(self.keys))
        object.__setattr__(self, "normalized_keys", tuple(self.normalized_keys))
        if not self.keys or len(set(self.keys)) != len(self.keys) or not set(self.keys) <= set(OBS_KEY_NAMES):
            raise ValueError(f"observation keys must be distinct values from {OBS_KEY_NAMES}, got {list(self.keys)}")
        if not set(self.normalized_keys) <= set(self.keys) or len(set(self.normalized_keys)) != len(
                self.normalized_keys):
            raise ValueError(f"normalized keys must be distinct observed keys ({list(self.keys)}), got "
                             f"{list(self.normalized_keys)}")
        if "diagnosis" not in self.keys and (self.advisor is not None or self.diagnosis_dim is not None):
            raise ValueError("advisor and diagnosis_dim only matter with the 'diagnosis' observation key")
        if self.diagnosis_dim is not None:
            check_range("diagnosis_dim", self.diagnosis_dim, 1, MAX_DIAGNOSIS_DIM, integer=True)

    def env_kwargs(self) -> dict[str, Any]:
        """The ``gym.make`` kwargs that shape this observation (the training env's and every evaluation env's)."""
        kwargs: dict[str, Any] = {"obs_keys": self.keys}
        if self.advisor is not None:
            kwargs["advisor"] = self.advisor
        if self.diagnosis_dim is not None:
            kwargs["diagnosis_dim"] = self.diagnosis_dim
        return kwargs

    def to_json(self) -> dict[str, Any]:
        return {"keys": list(self.keys), "advisor": self.advisor, "diagnosis_dim": self.diagnosis_dim,
                "normalized_keys": list(self.normalized_keys)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ObservationSpec:
        return cls(tuple(data["keys"]), data.get("advisor"), data.get("diagnosis_dim"),
                   tuple(data.get("normalized_keys", ())))

    @classmethod
    def from_run_config(cls, config: Mapping[str, Any]) -> ObservationSpec:
        """The spec of a saved run: its ``"observation"``, or (runs saved before it existed) its env kwargs."""
        if "observation" in config:
            return cls.from_json(config["observation"])
        env_kwargs = config["env_kwargs"]
        return cls(tuple(env_kwargs["obs_keys"]), env_kwargs.get("advisor"), env_kwargs.get("diagnosis_dim"),
                   tuple(config.get("args", {}).get("norm_obs_keys", ())))
