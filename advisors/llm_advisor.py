"""An advisor that asks a chat model (local or remote) for a JSON diagnosis."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from traingym.advisors.completion import ChatBackend, Completion
from traingym.advisors.diagnosis import Diagnosis
from traingym.advisors.llm_prompt import SYSTEM_PROMPT, diagnosis_user_prompt, parse_diagnosis


class LLMAdvisor:
    """Prompt a :class:`~traingym.advisors.completion.ChatBackend` with the compact report, parse its answer.

    Raises :class:`~traingym.advisors.errors.AdvisorError` subclasses on transport failures and invalid answers;
    wrap it in :class:`~traingym.advisors.fallback.FallbackAdvisor` (``make_advisor`` callers such as the
    :class:`~traingym.advisors.channel.DiagnosisChannel` do) so a failed call never reaches the env.

    Args:
        backend: the chat transport.
        system_prompt: system message (default :data:`~traingym.advisors.llm_prompt.SYSTEM_PROMPT`).
        max_report_chars: bound on the rendered report in the user message.
    """

    def __init__(self, backend: ChatBackend, *, system_prompt: str = SYSTEM_PROMPT,
                 max_report_chars: int = 1200) -> None:
        self.backend = backend
        self.system_prompt = system_prompt
        self.max_report_chars = max_report_chars
        self.name = backend.name
        self.last_completion: Completion | None = None
        """The raw completion of the latest call (also set when its parsing failed), for token accounting."""

    def diagnose(self, report: Mapping[str, Any]) -> Diagnosis:
        """Ask the model; raise an ``AdvisorError`` if the transport fails or the answer is invalid."""
        self.last_completion = None
        completion = self.backend.complete(self.system_prompt,
                                           diagnosis_user_prompt(report, self.max_report_chars))
        self.last_completion = completion
        return parse_diagnosis(completion.text)

    def close(self) -> None:
        """Close the backend if it holds resources."""
        close = getattr(self.backend, "close", None)
        if callable(close):
            close()

    def __repr__(self) -> str:
        return f"LLMAdvisor({self.backend!r})"
