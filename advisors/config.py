"""Configuration of the diagnosis channel (frozen, validated).

Field names are the env's (:class:`~traingym.envs.config.TrainingEnvConfig`): ``advisor``, ``advisor_call``,
``advisor_every_n``, ``encoder``, ``diagnosis_dim``. The transport options travel as one nested
:class:`~traingym.advisors.factory.LLMOptions` object (``llm``) from here down to the chat backends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from traingym.advisors.advisor import Advisor
from traingym.advisors.factory import LLMOptions
from traingym.protocol.checks import check_range
from traingym.protocol.choices import CallPolicy, EncoderName, choice_values


@dataclass(frozen=True)
class DiagnosisConfig:
    """How the env's :class:`~traingym.advisors.channel.DiagnosisChannel` diagnoses and encodes reports."""

    advisor: str | Advisor = "heuristic"
    """Advisor spec (``"heuristic"``, ``"smollm"``, ``"gemma"``, ``"hf:<path>"``, ``"openai:<model>"``,
    ``"module:Class"``) or an advisor object. Every advisor but the heuristic is wrapped in a fallback to it."""
    advisor_call: CallPolicy | str = CallPolicy.ON_EVENT
    """When to call the advisor (see :class:`~traingym.protocol.choices.CallPolicy`)."""
    advisor_every_n: int = 5
    """Steps between calls under ``every_n`` (>= 1)."""
    encoder: EncoderName | str = EncoderName.MINILM
    """Text encoder: ``"minilm"`` or ``"hashing"``."""
    diagnosis_dim: int | None = None
    """Text embedding size in the observation; None keeps the encoder's native 384, else a fixed seeded Gaussian
    random projection to ``diagnosis_dim`` (then L2-normalised)."""
    projection_seed: int = 0
    """Seed of the random projection (used only when ``diagnosis_dim`` is set)."""
    diagnosis_cache_size: int = 256
    """Diagnoses cached by report hash (LRU; 0 disables)."""
    encoder_cache_size: int = 1024
    """Encoded clauses cached (LRU, plus as many whole texts in a memo; 0 disables)."""
    llm: LLMOptions = field(default_factory=LLMOptions)
    """Transport options of LLM advisors (generation budget, threads, server URL, key variable, timeout,
    retries), handed unchanged to :func:`~traingym.advisors.factory.make_advisor`."""

    def __post_init__(self) -> None:
        if isinstance(self.advisor, str):
            if not self.advisor.strip():
                raise ValueError("advisor must be a non-empty spec such as 'heuristic'")
        elif not isinstance(self.advisor, Advisor):
            raise ValueError(f"advisor must be a spec string or an object with diagnose(report), "
                             f"got {type(self.advisor).__name__}")
        object.__setattr__(self, "advisor_call", _enum(CallPolicy, self.advisor_call, "advisor_call"))
        object.__setattr__(self, "encoder", _enum(EncoderName, self.encoder, "encoder"))
        if not _is_int(self.advisor_every_n) or self.advisor_every_n < 1:
            raise ValueError(f"advisor_every_n must be an int >= 1, got {self.advisor_every_n!r}")
        if self.diagnosis_dim is not None and (not _is_int(self.diagnosis_dim) or not 1 <= self.diagnosis_dim <= 4096):
            raise ValueError(f"diagnosis_dim must be None or an int in [1, 4096], got {self.diagnosis_dim!r}")
        if not _is_int(self.projection_seed) or self.projection_seed < 0:
            raise ValueError(f"projection_seed must be an int >= 0, got {self.projection_seed!r}")
        for name in ("diagnosis_cache_size", "encoder_cache_size"):
            check_range(name, getattr(self, name), 0, 1_000_000, integer=True)
        if not isinstance(self.llm, LLMOptions):
            raise ValueError(f"llm must be an LLMOptions, got {type(self.llm).__name__}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _enum(kind: type[Enum], value: object, name: str) -> Enum:
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"{name} must be one of {choice_values(kind)}, got {value!r}") from None
