"""A proposed move and the decision taken on it: the contract between a policy, a human and the decision log.

The training doctor (``traingym.doctor``) builds a :class:`Proposal` at each check (what the policy wants to do and
the evidence behind it); a :class:`Decider` (the terminal prompt, the live web page, or nobody in ``auto`` mode)
turns it into a :class:`Decision`. Every way a human can edit a move goes through :func:`parse_move_edit`, so the
terminal and the web page accept and reject exactly the same input.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from traingym.protocol.moves import KEEP, KNOBS, Move

KNOB_ALIASES: dict[str, str] = {"lr": "lr", "weight_decay": "weight_decay", "wd": "weight_decay",
                                "aug_level": "aug_level", "aug": "aug_level", "neuron_scale": "neuron_scale",
                                "scale": "neuron_scale"}
"""Names a human may use for a knob in an edited move."""


class DecidedBy(str, enum.Enum):
    """Who chose the applied move."""

    POLICY = "policy"
    """``auto`` mode: the policy's move, applied as proposed."""
    HUMAN = "human"
    """A human accepted, edited or skipped the proposal."""
    DEFAULT = "default"
    """No answer (stdin not a terminal, or the timeout passed): the configured default applied."""
    WATCH = "watch"
    """``watch`` mode: logged only, nothing applied."""


@dataclass(frozen=True)
class Proposal:
    """What is put in front of the decider at one check.

    ``evidence`` holds JSON-able detail for a human: top flagged neurons per layer, flagged tokens, recent events.
    """

    step: int
    report_hash: str
    proposed_move: Move
    diagnosis_text: str = ""
    findings: tuple[str, ...] = ()
    suggested_move: Move | None = None
    """The advisor's own suggestion (may differ from the policy's proposed move)."""
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_move("proposed_move", self.proposed_move)
        if self.suggested_move is not None:
            _check_move("suggested_move", self.suggested_move)
        if self.step < 0:
            raise ValueError(f"step must be >= 0, got {self.step}")


@dataclass(frozen=True)
class Decision:
    """The move to apply (``KEEP`` for a skip) and who decided it."""

    applied_move: Move
    decided_by: DecidedBy
    action: str = "accept"
    """``accept``, ``edit``, ``skip``, ``timeout`` or ``watch``: how the decision came about (for the log)."""

    def __post_init__(self) -> None:
        _check_move("applied_move", self.applied_move)
        if self.action not in {"accept", "edit", "skip", "timeout", "watch"}:
            raise ValueError(f"action must be accept, edit, skip, timeout or watch, got {self.action!r}")


class Decider(Protocol):
    """Turns a proposal into a decision; ``default`` is what applies when nobody answers within ``timeout_s``."""

    def decide(self, proposal: Proposal, default: Decision, timeout_s: float) -> Decision: ...


class MoveEditError(ValueError):
    """A human's edited move was malformed; the message says what to type instead."""


_ASSIGNMENT = re.compile(r"^\s*([a-z_]+)\s*=\s*([+-]?\d+)\s*$")


def parse_move_edit(text: str, base: Move = KEEP) -> Move:
    """Parse a human's edit of a move: ``"lr=+1, wd=0"`` (knobs not named keep ``base``'s value).

    Knob names: see :data:`KNOB_ALIASES`; values: -1, 0 or +1. Raises :class:`MoveEditError` naming the problem.
    """
    _check_move("base", base)
    move = list(base)
    parts = [p for p in re.split(r"[,;\s]+(?=[a-z_]+\s*=)", text.strip().lower()) if p.strip()]
    if not parts:
        raise MoveEditError("empty edit: type e.g. 'lr=-1, wd=0' (knobs: lr, wd, aug, scale; values -1, 0, +1)")
    for part in parts:
        match = _ASSIGNMENT.match(part.strip(" ,;"))
        if match is None:
            raise MoveEditError(f"cannot read {part.strip()!r}: write knob=value, e.g. 'lr=-1'")
        name, value = match.group(1), int(match.group(2))
        if name not in KNOB_ALIASES:
            raise MoveEditError(f"unknown knob {name!r}: use one of {', '.join(sorted(KNOB_ALIASES))}")
        if value not in (-1, 0, 1):
            raise MoveEditError(f"{name}={value} is out of range: a move is -1, 0 or +1")
        move[KNOBS.index(KNOB_ALIASES[name])] = value
    return tuple(move)  # type: ignore[return-value]


def _check_move(name: str, move: Any) -> None:
    if (not isinstance(move, tuple) or len(move) != len(KNOBS)
            or not all(isinstance(v, int) and v in (-1, 0, 1) for v in move)):
        raise ValueError(f"{name} must be a tuple of {len(KNOBS)} ints in {{-1, 0, 1}} ({KNOBS}), got {move!r}")
