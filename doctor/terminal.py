"""The terminal decider of ``propose`` mode: a human reads the diagnosis and accepts, edits or skips the move.

Shown per check: the diagnosis text, the findings, the advisor's own suggestion, the evidence (hyperparameters,
validation accuracy, top flagged neurons per layer, flagged tokens, recent events) and the policy's proposed move.
Answers: ``a`` / Enter accepts, ``s`` skips (nothing changes), ``e`` asks for an edit such as ``lr=-1, wd=0`` (or
type the edit directly). Edits are parsed by :func:`traingym.protocol.proposals.parse_move_edit` (the one parser,
shared with the live page); a malformed edit is explained and asked again. When stdin is not a terminal, or no
answer comes within ``timeout_s`` (one deadline for the whole decision), the default decision applies.
"""

from __future__ import annotations

import os
import select
import sys
import time
from typing import Any, TextIO

from traingym.protocol.moves import KEEP, KNOBS, Move
from traingym.protocol.proposals import DecidedBy, Decision, MoveEditError, Proposal, parse_move_edit

_KNOB_LABELS = {"lr": "lr", "weight_decay": "wd", "aug_level": "aug", "neuron_scale": "scale"}


def format_move(move: Move) -> str:
    """``lr -1, wd 0, aug +1, scale 0`` (the names an edit uses)."""
    return ", ".join(f"{_KNOB_LABELS[k]} {v:+d}" if v else f"{_KNOB_LABELS[k]} 0" for k, v in zip(KNOBS, move))


def render_proposal(proposal: Proposal) -> str:
    """The text a human sees for one proposal."""
    ev: dict[str, Any] = dict(proposal.evidence)
    lines = [f"== training doctor, check {proposal.step} ==",
             f"diagnosis: {proposal.diagnosis_text or '(none)'}",
             f"findings:  {', '.join(proposal.findings) or '(none)'}"]
    hp = ev.get("hparams") or {}
    if hp:
        acc = ev.get("val_accuracy")
        acc_text = f"{acc:.3f}" if isinstance(acc, (int, float)) else "?"
        lines.append(f"now:       lr {hp.get('lr', 0):.3g}, wd {hp.get('weight_decay', 0):.3g}, "
                     f"aug {hp.get('aug_level', 0)}, val acc {acc_text}")
    for entry in (ev.get("flagged_neurons") or [])[:4]:
        ids = ", ".join(f"{i} ({s:.2f})" for i, s in zip(entry["ids"][:4], entry["scores"][:4]))
        lines.append(f"flagged:   {entry['layer']}: {ids}")
    for token in (ev.get("flagged_tokens") or [])[:5]:
        lines.append(f"token:     {token.get('token')!r} z={token.get('z', 0):.1f}")
    for event in (ev.get("recent_events") or [])[-5:]:
        lines.append(f"event:     check {event.get('step')}: {event.get('type')}"
                     + (f" in {event['layer']}" if event.get("layer") else ""))
    if proposal.suggested_move is not None:
        lines.append(f"advisor suggests: {format_move(proposal.suggested_move)}")
    lines.append(f"PROPOSED MOVE:    {format_move(proposal.proposed_move)}")
    return "\n".join(lines)


class TerminalDecider:
    """Asks on the terminal (see the module docstring). ``stdin`` / ``stdout`` default to the process's."""

    def __init__(self, stdin: TextIO | None = None, stdout: TextIO | None = None) -> None:
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout

    def decide(self, proposal: Proposal, default: Decision, timeout_s: float) -> Decision:
        out = self.stdout
        if not self.stdin.isatty():
            print(f"[doctor] check {proposal.step}: stdin is not a terminal; default applies: "
                  f"{format_move(default.applied_move)}", file=out, flush=True)
            return default
        print(render_proposal(proposal), file=out, flush=True)
        reader = _LineReader(self.stdin.fileno())
        deadline = time.monotonic() + timeout_s
        prompt = "[a]ccept (Enter) / [e]dit / [s]kip"
        while True:
            left = deadline - time.monotonic()
            print(f"{prompt} ({left:.0f}s)> ", end="", file=out, flush=True)
            answer = reader.readline(deadline)
            if answer is None:
                return self._timeout(default, timeout_s)
            text = answer.strip().lower()
            if text in ("", "a", "accept", "y", "yes"):
                return Decision(proposal.proposed_move, DecidedBy.HUMAN, "accept")
            if text in ("s", "skip", "n", "no"):
                return Decision(KEEP, DecidedBy.HUMAN, "skip")
            if text in ("e", "edit"):
                print("move (e.g. 'lr=-1, wd=0'; knobs lr, wd, aug, scale; values -1, 0, +1)> ", end="", file=out,
                      flush=True)
                answer = reader.readline(deadline)
                if answer is None:
                    return self._timeout(default, timeout_s)
                text = answer.strip().lower()
            elif "=" not in text:
                print(f"answer a, e or s (or type an edit such as 'lr=-1'), got {answer.strip()!r}", file=out,
                      flush=True)
                continue
            try:
                move = parse_move_edit(text, base=proposal.proposed_move)
            except MoveEditError as error:
                print(f"rejected: {error}", file=out, flush=True)
                continue
            print(f"applying: {format_move(move)}", file=out, flush=True)
            return Decision(move, DecidedBy.HUMAN, "edit")

    def _timeout(self, default: Decision, timeout_s: float) -> Decision:
        print(f"\n[doctor] no answer within {timeout_s:g}s; default applies: {format_move(default.applied_move)}",
              file=self.stdout, flush=True)
        return default


class _LineReader:
    """Lines from a file descriptor with a deadline (``select``; no Python-level buffering to hide input)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buffer = b""

    def readline(self, deadline: float) -> str | None:
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(self.fd, 4096)
            if not chunk:  # end of input: nobody will answer
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode("utf-8", errors="replace")
