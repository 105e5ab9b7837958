"""Never-failing advisor calls: fall back to the heuristic on any error, and account for every call."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from traingym.advisors.advisor import Advisor, advisor_name
from traingym.advisors.diagnosis import Diagnosis
from traingym.advisors.errors import MalformedAnswerError, fallback_reason
from traingym.advisors.findings import Finding
from traingym.advisors.heuristic import HeuristicAdvisor

logger = logging.getLogger(__name__)

_LAST_RESORT = Diagnosis((Finding.HEALTHY,), 0.0, (0, 0, 0, 0), "no diagnosis available; keep the current settings.")


@dataclass(frozen=True)
class Consultation:
    """The outcome of one advisor call, with its accounting."""

    diagnosis: Diagnosis
    """A valid diagnosis, always."""
    used: str
    """Name of the advisor whose answer this is (the primary's, or the fallback's)."""
    fallback_reason: str | None
    """Why the primary's answer was not used (``"timeout"``, ``"http_500"``, ``"malformed"``, ...), else None."""
    prompt_tokens: int
    """Prompt tokens spent by the primary in this call (also when its answer was then rejected)."""
    completion_tokens: int
    """Completion tokens spent by the primary in this call."""
    latency_ms: float
    """Wall time of the whole call, fallback included."""


class FallbackAdvisor:
    """Calls ``primary``; on any exception or invalid return uses ``fallback`` for that call. Never raises.

    Args:
        primary: the advisor to try first (e.g. an :class:`~traingym.advisors.llm_advisor.LLMAdvisor`).
        fallback: the advisor used when the primary fails (default :class:`HeuristicAdvisor`).

    Attributes:
        calls: primary calls made. fallbacks: calls that fell back. reasons: ``Counter`` of fallback reasons.
        prompt_tokens / completion_tokens: totals over all calls.
    """

    def __init__(self, primary: Advisor, fallback: Advisor | None = None) -> None:
        self.primary = primary
        self.fallback = fallback if fallback is not None else HeuristicAdvisor()
        self.name = advisor_name(primary)
        self.calls = 0
        self.fallbacks = 0
        self.reasons: Counter[str] = Counter()
        self.prompt_tokens = 0
        self.completion_tokens = 0

    def consult(self, report: Mapping[str, Any]) -> Consultation:
        """Diagnose ``report`` and say which advisor answered, why it fell back, and what it cost."""
        started = time.perf_counter()
        self.calls += 1
        reason: str | None = None
        try:
            diagnosis = self.primary.diagnose(report)
            if not isinstance(diagnosis, Diagnosis):
                raise MalformedAnswerError(f"advisor returned {type(diagnosis).__name__}, not a Diagnosis")
            used = self.name
        except Exception as error:  # noqa: BLE001 - by contract nothing reaches the env
            reason = fallback_reason(error)
            self.fallbacks += 1
            self.reasons[reason] += 1
            # warn once per reason, then keep quiet: an unreachable server would otherwise log every step
            level = logging.WARNING if self.reasons[reason] == 1 else logging.DEBUG
            logger.log(level, "advisor %s failed (%s); using %s for this call", self.name, reason,
                       advisor_name(self.fallback))
            diagnosis, used = self._fallback(report)
        completion = getattr(self.primary, "last_completion", None)
        prompt_tokens = int(getattr(completion, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(completion, "completion_tokens", 0) or 0)
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        return Consultation(diagnosis, used, reason, prompt_tokens, completion_tokens,
                            (time.perf_counter() - started) * 1000.0)

    def diagnose(self, report: Mapping[str, Any]) -> Diagnosis:
        """The :class:`Advisor` protocol: :meth:`consult` without the accounting."""
        return self.consult(report).diagnosis

    def close(self) -> None:
        """Close the primary advisor if it holds resources."""
        close = getattr(self.primary, "close", None)
        if callable(close):
            close()

    def _fallback(self, report: Mapping[str, Any]) -> tuple[Diagnosis, str]:
        try:
            diagnosis = self.fallback.diagnose(report)
            if isinstance(diagnosis, Diagnosis):
                return diagnosis, advisor_name(self.fallback)
        except Exception:  # noqa: BLE001
            logger.exception("fallback advisor %s failed too", advisor_name(self.fallback))
        return _LAST_RESORT, "last_resort"

    def __repr__(self) -> str:
        return f"FallbackAdvisor(primary={self.primary!r}, fallback={self.fallback!r})"
