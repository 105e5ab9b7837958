"""Errors raised by advisors and their transports, each with a short fallback category.

Every error an advisor may raise *during a call* derives from :class:`AdvisorError` and carries a ``reason``: the
short category string that :class:`~traingym.advisors.fallback.FallbackAdvisor` records as ``fallback_reason``.
:class:`AdvisorUnavailableError` is different: it is raised when an advisor is *built* (missing optional
dependency, unknown model path, bad spec) and tells the user what to install or change; it is not swallowed.
"""

from __future__ import annotations


class AdvisorError(Exception):
    """Base class of advisor call failures; ``reason`` is the fallback category."""

    reason: str = "error"


class AdvisorUnavailableError(AdvisorError, RuntimeError):
    """The advisor cannot be built or loaded here (missing dependency, model files or configuration)."""

    reason = "unavailable"


class AdvisorTimeoutError(AdvisorError, TimeoutError):
    """The backend did not answer within the time limit."""

    reason = "timeout"


class AdvisorConnectionError(AdvisorError, ConnectionError):
    """The backend could not be reached (refused, reset, DNS failure, truncated response)."""

    reason = "connection"


class AdvisorHTTPError(AdvisorError):
    """The backend answered with a non-success HTTP status (after any retries)."""

    def __init__(self, status: int, message: str = "", retry_after: float | None = None) -> None:
        self.status = int(status)
        self.retry_after = retry_after
        """Seconds the server asked to wait (``Retry-After``), if it said so."""
        super().__init__(message or f"HTTP {self.status}")

    @property
    def reason(self) -> str:  # type: ignore[override]
        return f"http_{self.status}"


class ResponseTooLargeError(AdvisorError):
    """The response body exceeded the configured size cap and was rejected unread."""

    reason = "oversized"


class MalformedAnswerError(AdvisorError):
    """The answer is not the requested JSON diagnosis (prose, broken JSON, wrong types, empty findings)."""

    reason = "malformed"


class OutOfVocabularyError(MalformedAnswerError):
    """The answer is JSON but names a finding or a move knob/value outside the shared vocabulary."""

    reason = "out_of_vocabulary"


def fallback_reason(error: BaseException) -> str:
    """The short category recorded when ``error`` made an advisor call fall back.

    Advisor errors give their ``reason``; built-in timeouts and connection errors map to ``"timeout"`` and
    ``"connection"``; anything else becomes ``"exception:<TypeName>"``.
    """
    if isinstance(error, AdvisorError):
        return error.reason
    if isinstance(error, TimeoutError):
        return "timeout"
    if isinstance(error, ConnectionError):
        return "connection"
    return f"exception:{type(error).__name__}"
