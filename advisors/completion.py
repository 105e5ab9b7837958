"""The chat transport shared by LLM advisors (and reusable by an LLM-based HPO sampler)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Completion:
    """One chat completion: the assistant's text and the token usage it cost."""

    text: str
    """The assistant message (for local models including any forced answer prefix)."""
    prompt_tokens: int = 0
    """Tokens in the prompt (as reported by the server, or counted by the local tokenizer)."""
    completion_tokens: int = 0
    """Tokens generated."""


@runtime_checkable
class ChatBackend(Protocol):
    """Anything that turns a system + user message into a :class:`Completion`.

    Implementations: :class:`~traingym.advisors.hf_backend.HFChatBackend` (local transformers model) and
    :class:`~traingym.advisors.openai_backend.OpenAIChatBackend` (any OpenAI-compatible server). Failures are
    raised as :class:`~traingym.advisors.errors.AdvisorError` subclasses.
    """

    name: str

    def complete(self, system: str, user: str) -> Completion:
        """Return the model's answer to one system + user exchange (greedy / temperature 0)."""
        ...
