"""The doctor's propose mode decided from the live page, over real HTTP: the click reaches the optimizer and the
decision log; a request without the token and a malformed edit change nothing."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pytest
from doctor_testkit import plain_loop, setup_run
from traingym.doctor import TrainingDoctor
from traingym.report.live import LiveState, WatchServer, WebDecider


def _get_state(base: str, token: str) -> dict:
    with urllib.request.urlopen(f"{base}/state?token={token}", timeout=5) as response:
        return json.loads(response.read())


def _post(base: str, token: str | None, body: dict) -> tuple[int, dict]:
    url = f"{base}/decision" + (f"?token={token}" if token else "")
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        text = error.read().decode()
        return error.code, json.loads(text) if text.startswith("{") else {"error": text}


def _open_proposal(base: str, token: str, after: int = 0) -> dict:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        proposal = _get_state(base, token)["proposal"]
        if proposal is not None and proposal["id"] > after:
            return proposal
        time.sleep(0.05)
    raise AssertionError("no proposal appeared on the live page")


@pytest.mark.slow
def test_clicks_on_the_live_page_decide_the_doctors_moves(tmp_path) -> None:
    model, opt, (x, y, xv, yv, _, _) = setup_run(lr=0.05)
    state = LiveState("doctor test")
    server = WatchServer(state, decider=WebDecider(state))
    server.start()
    base, token = f"http://{server.host}:{server.port}", server.token
    doctors: list[TrainingDoctor] = []

    def user_run() -> None:  # the doctor's first check happens when it attaches: in the user's thread too
        doctors.append(TrainingDoctor(model, opt, (xv, yv), every=10, policy="advisor_greedy", mode="propose",
                                      decider=server.decider, timeout_s=30, default="keep",
                                      log_path=tmp_path / "d.jsonl", advisor="doctor_testkit:LowerLRAdvisor"))
        plain_loop(model, opt, x, y, 20, doctors[0])

    loop = threading.Thread(target=user_run, daemon=True)
    try:
        loop.start()
        first = _open_proposal(base, token)
        assert first["proposed_move"] == [-1, 0, 0, 0] and "lower the learning rate" in first["diagnosis_text"]
        # Without the token: refused, nothing decided.
        assert _post(base, None, {"proposal_id": first["id"], "action": "accept"})[0] == 403
        # A malformed edit: refused with the parser's message; the proposal stays open.
        code, body = _post(base, token, {"proposal_id": first["id"], "action": "edit", "edit": "lr=5"})
        assert code == 400 and "out of range" in body["error"]
        assert _get_state(base, token)["proposal"]["id"] == first["id"]
        assert opt.param_groups[0]["lr"] == pytest.approx(0.05)
        assert _post(base, token, {"proposal_id": first["id"], "action": "accept"})[0] == 200
        second = _open_proposal(base, token, after=first["id"])
        code, body = _post(base, token, {"proposal_id": second["id"], "action": "edit", "edit": "lr=+1"})
        assert code == 200 and body["applied_move"] == [1, 0, 0, 0]
        third = _open_proposal(base, token, after=second["id"])
        assert _post(base, token, {"proposal_id": third["id"], "action": "skip"})[0] == 200
        loop.join(timeout=30)
        assert not loop.is_alive()
    finally:
        for doctor in doctors:
            doctor.close()
        server.stop()
    # accept: lr / 2, edit: lr * 2, skip: unchanged.
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)
    records = [json.loads(line) for line in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert [(r["decided_by"], r["action"], r["applied_move"]) for r in records] == [
        ("human", "accept", [-1, 0, 0, 0]), ("human", "edit", [1, 0, 0, 0]), ("human", "skip", [0, 0, 0, 0])]
