"""The advisor protocol: anything with ``diagnose(report) -> Diagnosis``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from traingym.advisors.diagnosis import Diagnosis


@runtime_checkable
class Advisor(Protocol):
    """Reads a TrainingReport (a plain dict, see ``docs/architecture.md``) and returns a :class:`Diagnosis`.

    Advisors may raise on failure (``AdvisorError`` subclasses preferred); the
    :class:`~traingym.advisors.fallback.FallbackAdvisor` around them turns any failure into a heuristic answer.
    An optional ``name`` attribute is reported as ``info["used"]``; an optional ``close()`` is called when the
    channel closes.
    """

    def diagnose(self, report: Mapping[str, Any]) -> Diagnosis:
        """Diagnose one report."""
        ...


def advisor_name(advisor: object) -> str:
    """The advisor's ``name`` attribute, or its class name."""
    name = getattr(advisor, "name", None)
    return name if isinstance(name, str) and name else type(advisor).__name__
