"""``propose`` mode through a real pseudo-terminal: accept, edit (a malformed edit is refused and asked again),
skip, timeout, and the default when stdin is not a terminal."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
CHILD = """
import json, sys
from traingym.doctor.terminal import TerminalDecider
from traingym.protocol.proposals import DecidedBy, Decision, Proposal
proposal = Proposal(step=3, report_hash="abc", proposed_move=(-1, 0, 1, 0), diagnosis_text="loss is spiking",
                    findings=("diverging",), suggested_move=(-1, 0, 0, 0),
                    evidence={"flagged_neurons": [{"layer": "fc", "ids": [3, 7], "scores": [0.5, 0.2]}],
                              "recent_events": [{"step": 2, "type": "loss_spike", "layer": None}],
                              "hparams": {"lr": 0.5, "weight_decay": 1e-4, "aug_level": 1}, "val_accuracy": 0.4})
default = Decision((0, 0, 0, 0), DecidedBy.DEFAULT, "timeout")
decision = TerminalDecider().decide(proposal, default, float(sys.argv[1]))
print("RESULT " + json.dumps([list(decision.applied_move), decision.decided_by.value, decision.action]), flush=True)
"""


class Terminal:
    """A child process whose stdin/stdout are a pseudo-terminal; we read its screen and type answers."""

    def __init__(self, timeout_s: float, use_pty: bool = True) -> None:
        env = {**os.environ, "PYTHONPATH": str(TESTS)}
        if use_pty:
            self.master, slave = pty.openpty()
            self.proc = subprocess.Popen([sys.executable, "-c", CHILD, str(timeout_s)], stdin=slave, stdout=slave,
                                         stderr=slave, env=env, close_fds=True)
            os.close(slave)
        else:
            self.master = None
            self.proc = subprocess.Popen([sys.executable, "-c", CHILD, str(timeout_s)], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        self.screen = ""

    def expect(self, text: str, within_s: float = 60.0) -> str:
        deadline = time.monotonic() + within_s
        while text not in self.screen:
            left = deadline - time.monotonic()
            assert left > 0, f"never saw {text!r}; screen:\n{self.screen}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # the child exited and closed the terminal
                    chunk = b""
                if not chunk:
                    assert text in self.screen, f"child ended before {text!r}; screen:\n{self.screen}"
                self.screen += chunk.decode(errors="replace")
        return self.screen

    def type(self, line: str) -> None:
        assert self.master is not None
        os.write(self.master, (line + "\n").encode())

    def result(self) -> list:
        if self.master is None:
            out, _ = self.proc.communicate(timeout=120)
            self.screen = out.decode()
        else:
            self.expect("RESULT ")
            self.expect("\n", 10) if not self.screen.rstrip().endswith("]") else None
        self.proc.wait(timeout=60)
        if self.master is not None:
            os.close(self.master)
        line = next(line for line in self.screen.splitlines() if line.startswith("RESULT "))
        return json.loads(line[len("RESULT "):])


def test_accept_shows_the_evidence_and_applies_the_proposed_move() -> None:
    term = Terminal(timeout_s=60)
    screen = term.expect("[a]ccept")
    for shown in ("loss is spiking", "diverging", "fc: 3 (0.50)", "loss_spike",
                  "PROPOSED MOVE:    lr -1, wd 0, aug +1"):
        assert shown in screen
    term.type("a")
    assert term.result() == [[-1, 0, 1, 0], "human", "accept"]


def test_edit_rejects_a_malformed_move_and_asks_again() -> None:
    term = Terminal(timeout_s=60)
    term.expect("[a]ccept")
    term.type("e")
    term.expect("move (e.g.")
    term.type("lr=5")
    term.expect("rejected: lr=5 is out of range")
    term.type("lr=+1, scale=-1")
    assert term.result() == [[1, 0, 1, -1], "human", "edit"]


def test_skip_keeps_everything() -> None:
    term = Terminal(timeout_s=60)
    term.expect("[a]ccept")
    term.type("s")
    assert term.result() == [[0, 0, 0, 0], "human", "skip"]


def test_no_answer_within_the_timeout_applies_the_default() -> None:
    term = Terminal(timeout_s=1.5)
    term.expect("[a]ccept")
    screen = term.expect("no answer within 1.5s")
    assert "default applies" in screen
    assert term.result() == [[0, 0, 0, 0], "default", "timeout"]


def test_stdin_not_a_terminal_applies_the_default_at_once() -> None:
    term = Terminal(timeout_s=600, use_pty=False)
    started = time.monotonic()
    assert term.result() == [[0, 0, 0, 0], "default", "timeout"]
    assert "stdin is not a terminal" in term.screen and time.monotonic() - started < 60


@pytest.mark.parametrize("answer", ["maybe"])
def test_an_unknown_answer_is_asked_again(answer: str) -> None:
    term = Terminal(timeout_s=60)
    term.expect("[a]ccept")
    term.type(answer)
    term.expect("answer a, e or s")
    term.type("wd=-1")
    assert term.result() == [[-1, -1, 1, 0], "human", "edit"]
