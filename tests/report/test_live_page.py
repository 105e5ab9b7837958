"""The live watch-and-steer page: token, WebDecider (Accept / Edit / Skip / timeout) and a real training run,
driven over HTTP and in a real headless Chromium."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from report_testkit import ROOT, browser, console_errors, screenshot, wait_for  # noqa: F401  (browser: fixture)
from traingym.protocol.moves import KEEP, KNOBS, LR_FACTOR
from traingym.protocol.proposals import DecidedBy, Decision, MoveEditError, Proposal
from traingym.report.live import Answer, LiveState, StaleProposalError, WatchServer, WebDecider

PROPOSED = (-1, 1, 0, 0)
"""The test-local policy's move at every step (neither KEEP nor the edits below, so each path is told apart)."""
DEFAULT = Decision(KEEP, DecidedBy.DEFAULT, "timeout")


def _request(url: str, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
             ) -> tuple[int, str]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture
def server() -> Iterator[WatchServer]:
    state = LiveState("test run")
    with WatchServer(state, port=0, decider=WebDecider(state)) as watch:
        yield watch


def _proposal(step: int) -> Proposal:
    return Proposal(step=step, report_hash="0" * 16, proposed_move=PROPOSED, diagnosis_text="overfitting: gap up",
                    findings=("overfitting",), suggested_move=(0, 1, 0, 0))


def test_every_request_without_the_token_is_refused(server: WatchServer) -> None:
    base = f"http://127.0.0.1:{server.port}"
    assert server.url.startswith(base + "/?token=") and len(server.token) >= 32
    wrong_last = "y" if server.token.endswith("x") else "x"  # a token ending in "x" made this case the real token
    for path in ("/", "/state", "/docs", "/favicon.ico", "/?token=", f"/?token={server.token[:-1]}{wrong_last}"):
        assert _request(base + path)[0] == 403, path
    assert _request(base + "/decision", {"proposal_id": 1, "action": "accept"})[0] == 403
    status, body = _request(f"{base}/state?token={server.token}")
    assert status == 200 and json.loads(body)["title"] == "test run"
    assert _request(f"{base}/state", headers={"X-TrainGym-Token": server.token})[0] == 200
    assert _request(server.url)[0] == 200


def test_decider_applies_clicks_rejects_malformed_edits_and_times_out_to_the_default(server: WatchServer) -> None:
    decider = server.decider
    assert decider is not None
    decisions: list[Decision] = []
    url = f"http://127.0.0.1:{server.port}/decision?token={server.token}"

    def loop() -> None:
        for step, timeout in enumerate((30.0, 30.0, 0.3)):
            decisions.append(decider.decide(_proposal(step), DEFAULT, timeout))

    thread = threading.Thread(target=loop)
    thread.start()
    first = wait_for(lambda: server.state.snapshot()["proposal"], what="the first proposal")
    for edit, message in (("foo=1", "unknown knob 'foo'"), ("lr=5", "out of range"), ("lr", "cannot read")):
        status, body = _request(url, {"proposal_id": first["id"], "action": "edit", "edit": edit})
        assert status == 400 and message in json.loads(body)["error"]
        assert message in server.state.snapshot()["message"]  # shown on the page
        assert server.state.snapshot()["proposal"]["id"] == first["id"] and not decisions  # nothing changed
    status, body = _request(url, {"proposal_id": first["id"], "action": "edit", "edit": "lr=+1, scale=-1"})
    assert status == 200 and json.loads(body) == {"applied_move": [1, 1, 0, -1], "action": "edit"}
    second = wait_for(lambda: (p := server.state.snapshot()["proposal"]) and p["id"] != first["id"] and p,
                      what="the second proposal")
    assert _request(url, {"proposal_id": first["id"], "action": "accept"})[0] == 409  # already decided
    assert _request(url, {"proposal_id": second["id"], "action": "accept"})[0] == 200
    thread.join(timeout=10)
    assert decisions == [Decision((1, 1, 0, -1), DecidedBy.HUMAN, "edit"), Decision(PROPOSED, DecidedBy.HUMAN),
                         DEFAULT]
    with pytest.raises(StaleProposalError):
        decider.answer(Answer(second["id"], "skip"))


def test_a_malformed_edit_is_the_parsers_error() -> None:
    state = LiveState()
    decider = WebDecider(state)
    thread = threading.Thread(target=decider.decide, args=(_proposal(0), DEFAULT, 5.0))
    thread.start()
    proposal_id = wait_for(lambda: state.snapshot()["proposal"], what="a proposal")["id"]
    with pytest.raises(MoveEditError, match="unknown knob"):
        decider.answer(Answer(proposal_id, "edit", "momentum=+1"))
    assert decider.answer(Answer(proposal_id, "skip")) == Decision(KEEP, DecidedBy.HUMAN, "skip")
    thread.join(timeout=5)


def _page_reading(driver: Any) -> tuple[int, int, int]:
    return tuple(int(driver.find_element("id", key).text or 0) for key in ("timesteps", "episode", "step"))


@pytest.mark.slow
def test_live_page_follows_a_training_run(browser: Any, tmp_path: Path) -> None:  # noqa: F811
    """``train_agent.py --watch 0``: the page's step counter advances while the run trains."""
    command = [sys.executable, "-u", "train_agent.py", "--smoke", "--watch", "0", "--run-dir", str(tmp_path / "run"),
               "--total-timesteps", "300", "--eval-freq", "0", "--checkpoint-freq", "0", "--baselines", "keep",
               "--eval-episodes", "1", "--no-progress-bar", "--no-tensorboard",
               "--obs-keys", "training_stats", "neurons", "diagnosis"]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        url = ""
        for line in proc.stdout:
            if line.startswith("watch page: "):
                url = line.split("watch page: ", 1)[1].strip()
                break
        assert url.startswith("http://127.0.0.1:") and "?token=" in url, "no watch URL printed"
        browser.get(url)
        readings = []
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline and len({r[0] for r in readings}) < 4:
            readings.append(_page_reading(browser))
            time.sleep(0.25)
        timesteps = [r[0] for r in readings]
        assert len(set(timesteps) - {0}) >= 3, readings  # the page followed the run while it trained
        assert timesteps == sorted(timesteps)
        assert len({r[2] for r in readings}) >= 2  # the step within the episode moved
        assert browser.find_element("id", "diagnosis").text.startswith("[")  # the advisor's findings
        assert "flagged neurons fc1: " in browser.find_element("id", "evidence").text  # from the env's report
        assert "lr" in browser.find_element("id", "hparams").text
        assert console_errors(browser) == []
        output = proc.communicate(timeout=300)[0]
        assert proc.returncode == 0, output[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _move_text(move: list[int]) -> str:
    """How the page writes a move (independent of the page's code: the knob names and signed steps)."""
    return ", ".join(f"{knob}={'0' if v == 0 else f'{v:+d}'}" for knob, v in zip(KNOBS, move))


@pytest.mark.slow
def test_accept_edit_skip_clicks_drive_the_doctor_demo(browser: Any, tmp_path: Path) -> None:  # noqa: F811
    """``python -m traingym.doctor demo --web 0``: the doctor's four decisions (attach, steps 40, 80, 120) are taken
    on the page, Accept / Edit (after two malformed edits) / Skip / no answer; the demo's own decision log records
    each, and the edit's LR move reaches the optimizer of the run."""
    log_path = tmp_path / "decisions.jsonl"
    command = [sys.executable, "-u", "-m", "traingym.doctor", "demo", "--web", "0", "--steps", "120", "--every", "40",
               "--timeout-s", "15", "--log-path", str(log_path)]
    proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        url = ""
        for line in proc.stdout:
            if line.startswith("live page (decide there): "):
                url = line.split(": ", 1)[1].strip()
                break
        assert url.startswith("http://127.0.0.1:") and "?token=" in url, "no live page URL printed"
        browser.get(url)

        def proposal_step() -> str:
            box = browser.find_element("id", "proposal")
            return browser.find_element("id", "proposal-step").text if box.is_displayed() else ""

        wait_for(lambda: proposal_step() == "0", timeout=120, what="the attach-time proposal on the page")
        shown = browser.find_element("id", "proposal-move").text
        screenshot(browser, "live.png")
        browser.find_element("id", "accept").click()

        wait_for(lambda: proposal_step() == "1", timeout=120, what="proposal 1 on the page")
        box = browser.find_element("id", "edit-text")
        for edit, message in (("foo=1", "unknown knob 'foo'"), ("lr=5", "out of range")):
            box.clear()
            box.send_keys(edit)
            browser.find_element("id", "edit").click()
            wait_for(lambda m=message: m in browser.find_element("id", "message").text, what=f"the message {message!r}")
            assert "error" in browser.find_element("id", "message").get_attribute("class")
            time.sleep(0.4)  # a poll or two: the proposal stays open
            assert proposal_step() == "1"
        box.clear()
        box.send_keys("lr=+1, scale=-1")
        browser.find_element("id", "edit").click()

        wait_for(lambda: proposal_step() == "2", timeout=120, what="proposal 2 on the page")
        browser.find_element("id", "skip").click()
        output = proc.communicate(timeout=300)[0]  # proposal 3: nobody answers, the default applies after 15 s
        assert proc.returncode == 0, output[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    records = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert [(r["step"], r["action"], r["decided_by"]) for r in records] == [
        (0, "accept", "human"), (1, "edit", "human"), (2, "skip", "human"), (3, "timeout", "default")]
    assert shown == _move_text(records[0]["move"]) and records[0]["applied_move"] == records[0]["move"]
    proposed = records[1]["move"]
    assert records[1]["applied_move"] == [1, proposed[1], proposed[2], -1]  # the edit over the proposal
    lr = [r["report"]["hparams"]["lr"] for r in records]
    assert lr[2] == pytest.approx(lr[1] * LR_FACTOR)  # the edited LR move reached the run's optimizer
    assert records[2]["applied_move"] == records[3]["applied_move"] == list(KEEP)
    assert "final test accuracy" in output
    # The only console errors: Chromium's network log of the two refused edits (400) and of the page's polls
    # after the demo ended and stopped its server; nothing from the page's script.
    errors = console_errors(browser)
    assert all(e["source"] == "network" for e in errors), errors
    assert sum("/decision?" in e["message"] and "400" in e["message"] for e in errors) == 2
    assert all("/decision?" in e["message"] or "ERR_CONNECTION_REFUSED" in e["message"] for e in errors), errors
