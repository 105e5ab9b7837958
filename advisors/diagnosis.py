"""The validated result of one advisor call."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from traingym.advisors.findings import FINDINGS, Finding, parse_finding
from traingym.protocol.moves import KEEP, KNOBS, Move

MAX_TEXT_CHARS = 320
"""Longest diagnosis text accepted (the text is embedded into the observation)."""


@dataclass(frozen=True)
class Diagnosis:
    """An advisor's verdict on one TrainingReport.

    Findings are stored as a tuple of :class:`Finding` in canonical (enum) order without duplicates, so equal
    verdicts compare equal. ``healthy`` never appears together with another finding.
    """

    findings: tuple[Finding, ...]
    """What is wrong (or ``(Finding.HEALTHY,)``); strings are accepted and converted."""
    confidence: float
    """How sure the advisor is, in [0, 1]."""
    suggested_move: Move = KEEP
    """One int in {-1, 0, +1} per knob, in ``KNOBS`` order (lr, weight_decay, aug_level, neuron_scale)."""
    text: str = ""
    """A short natural-language explanation (single line, at most ``MAX_TEXT_CHARS`` characters)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "findings", _validate_findings(self.findings))
        object.__setattr__(self, "confidence", _validate_confidence(self.confidence))
        object.__setattr__(self, "suggested_move", _validate_move(self.suggested_move))
        object.__setattr__(self, "text", _validate_text(self.text))

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able view (finding values, move as a list)."""
        return {
            "findings": [f.value for f in self.findings],
            "confidence": self.confidence,
            "suggested_move": list(self.suggested_move),
            "text": self.text,
        }


def _validate_findings(findings: object) -> tuple[Finding, ...]:
    if isinstance(findings, (str, Finding)) or not isinstance(findings, Iterable):
        raise ValueError(f"findings must be a sequence of Finding values, got {findings!r:.80}")
    parsed = {parse_finding(f) for f in findings}
    if not parsed:
        raise ValueError("findings must name at least one Finding (use Finding.HEALTHY when nothing is wrong)")
    if Finding.HEALTHY in parsed and len(parsed) > 1:
        raise ValueError("findings: 'healthy' cannot be combined with other findings")
    return tuple(f for f in FINDINGS if f in parsed)


def _validate_confidence(confidence: object) -> float:
    if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real):
        raise ValueError(f"confidence must be a real number in [0, 1], got {confidence!r:.40}")
    value = float(confidence)
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"confidence must be in [0, 1], got {value}")
    return value


def _validate_move(move: object) -> Move:
    if isinstance(move, (str, bytes)) or not isinstance(move, Iterable):
        raise ValueError(f"suggested_move must be {len(KNOBS)} ints in {{-1, 0, 1}} for {KNOBS}, got {move!r:.60}")
    values = list(move)
    ok = len(values) == len(KNOBS) and all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) and -1 <= int(v) <= 1 for v in values
    )
    if not ok:
        raise ValueError(f"suggested_move must be {len(KNOBS)} ints in {{-1, 0, 1}} for {KNOBS}, got {values!r:.60}")
    return tuple(int(v) for v in values)  # type: ignore[return-value]


def _validate_text(text: object) -> str:
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}")
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(f"text must be at most {MAX_TEXT_CHARS} characters, got {len(text)}")
    if any(ch in text for ch in "\r\n\x00"):
        raise ValueError("text must be a single line without control characters")
    return text
