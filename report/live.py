"""The live watch-and-steer page: a local FastAPI app served by uvicorn in a background thread.

* :class:`LiveState` holds what the page shows (episode, step, hyperparameters, last diagnosis with its evidence,
  the open proposal); training publishes into it (:class:`~traingym.report.watch_callback.WatchCallback`).
* :class:`WatchServer` serves it on 127.0.0.1 (by default) behind a random token: every request without
  ``?token=<token>`` (or the ``X-TrainGym-Token`` header) gets 403. The page polls ``/state``.
* :class:`WebDecider` is a :class:`~traingym.protocol.proposals.Decider`: it puts a proposal on the page and
  blocks until a human clicks Accept / Edit / Skip or the timeout passes. An edited move goes through
  :func:`~traingym.protocol.proposals.parse_move_edit` (the terminal prompt's parser); a malformed edit is refused
  with the parser's message and leaves the proposal open.
"""

from __future__ import annotations

import copy
import itertools
import secrets
import threading
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

from traingym.protocol.moves import KEEP, KNOBS, Move

try:
    from fastapi import FastAPI, Request
    from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
except ImportError as error:  # pragma: no cover - the extra is part of make setup
    raise ImportError("the live watch page needs FastAPI and uvicorn: pip install 'traingym[report]'") from error
from traingym.protocol.proposals import DecidedBy, Decision, MoveEditError, Proposal, parse_move_edit

TOKEN_HEADER = "X-TrainGym-Token"
MAX_DECISIONS_SHOWN = 20


def move_text(move: Move | list[int] | None) -> str:
    """``lr=+1 weight_decay=0 ...``: a move as the edit box reads it back."""
    if move is None:
        return ""
    return ", ".join(f"{knob}={value:+d}" if value else f"{knob}=0" for knob, value in zip(KNOBS, move))


class LiveState:
    """What the page shows; thread-safe. ``version`` grows with every change (the page redraws on a new one)."""

    def __init__(self, title: str = "TrainGym run") -> None:
        self._lock = threading.Lock()
        self._state: dict[str, Any] = {
            "title": title, "version": 0, "updated": time.time(), "mode": "watch", "timesteps": 0, "episode": 0,
            "step": 0, "hparams": {}, "metrics": {}, "diagnosis": None, "evidence": None, "proposal": None,
            "message": "", "decisions": [], "finished": False,
        }

    def publish(self, **fields: Any) -> None:
        """Set top-level fields (JSON-able values)."""
        with self._lock:
            self._state.update(fields)
            self._state["version"] += 1
            self._state["updated"] = time.time()

    def record_decision(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._state["decisions"] = (self._state["decisions"] + [entry])[-MAX_DECISIONS_SHOWN:]
            self._state["version"] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._state)


@dataclass(frozen=True)
class Answer:
    """A human's click on the page."""

    proposal_id: int
    action: Literal["accept", "edit", "skip"]
    edit: str = ""


class StaleProposalError(LookupError):
    """The click answers a proposal that is no longer open (decided, or timed out)."""


class WebDecider:
    """A :class:`~traingym.protocol.proposals.Decider` whose human sits at the live page."""

    def __init__(self, state: LiveState) -> None:
        self.state = state
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._open: tuple[int, Proposal, threading.Event] | None = None
        self._decision: Decision | None = None

    def decide(self, proposal: Proposal, default: Decision, timeout_s: float) -> Decision:
        """Show ``proposal``; return the human's decision, or ``default`` when ``timeout_s`` passes first."""
        event = threading.Event()
        with self._lock:
            proposal_id = next(self._ids)
            self._open, self._decision = (proposal_id, proposal, event), None
        self.state.publish(mode="propose", message="", proposal={
            "id": proposal_id, "step": proposal.step, "proposed_move": list(proposal.proposed_move),
            "proposed_text": move_text(proposal.proposed_move), "diagnosis_text": proposal.diagnosis_text,
            "findings": list(proposal.findings),
            "suggested_move": None if proposal.suggested_move is None else list(proposal.suggested_move),
            "evidence": dict(proposal.evidence), "default_move": list(default.applied_move),
            "deadline": time.time() + timeout_s, "report_hash": proposal.report_hash})
        answered = event.wait(timeout_s)
        with self._lock:
            decision = self._decision if answered and self._decision is not None else default
            self._open, self._decision = None, None
        self.state.publish(proposal=None, message=f"step {proposal.step}: {decision.action} -> "
                                                  f"{move_text(decision.applied_move)}")
        self.state.record_decision({"step": proposal.step, "action": decision.action,
                                    "decided_by": decision.decided_by.value,
                                    "applied_move": list(decision.applied_move)})
        return decision

    def answer(self, answer: Answer) -> Decision:
        """Apply a click to the open proposal.

        Raises:
            StaleProposalError: no proposal with ``answer.proposal_id`` is open.
            MoveEditError: the edit is malformed (the proposal stays open, nothing changes).
        """
        with self._lock:
            if self._open is None or self._open[0] != answer.proposal_id:
                raise StaleProposalError(f"proposal {answer.proposal_id} is not open any more")
            _, proposal, event = self._open
            if answer.action == "accept":
                decision = Decision(proposal.proposed_move, DecidedBy.HUMAN, "accept")
            elif answer.action == "skip":
                decision = Decision(KEEP, DecidedBy.HUMAN, "skip")
            else:
                decision = Decision(parse_move_edit(answer.edit, base=proposal.proposed_move), DecidedBy.HUMAN,
                                    "edit")
            self._decision = decision
            event.set()
        return decision


def _page() -> str:
    return resources.files("traingym.report").joinpath("assets", "live.html").read_text(encoding="utf-8")


def create_app(state: LiveState, token: str, decider: WebDecider | None = None) -> FastAPI:
    """The FastAPI app: ``/`` (the page), ``/state`` (JSON), ``POST /decision`` (a click); all need the token."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def require_token(request: Request, call_next: Any) -> Any:
        given = request.query_params.get("token") or request.headers.get(TOKEN_HEADER) or ""
        if not secrets.compare_digest(given.encode(), token.encode()):
            return PlainTextResponse("403 Forbidden: this page needs the token printed in the terminal", 403)
        return await call_next(request)

    @app.get("/", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        return HTMLResponse(_page(), headers={"Cache-Control": "no-store", "Content-Security-Policy":
                                              "default-src 'self'; script-src 'unsafe-inline'; "
                                              "style-src 'unsafe-inline'; img-src data:"})

    @app.get("/state")
    async def get_state() -> JSONResponse:
        return JSONResponse(state.snapshot(), headers={"Cache-Control": "no-store"})

    @app.post("/decision")
    async def post_decision(request: Request) -> JSONResponse:
        body = await request.json()
        if decider is None:
            return JSONResponse({"error": "this run only watches: nothing to decide"}, 409)
        action = body.get("action") if isinstance(body, dict) else None
        if action not in ("accept", "edit", "skip") or not isinstance(body.get("proposal_id"), int):
            return JSONResponse({"error": "expected {proposal_id: int, action: accept|edit|skip, edit: str}"}, 400)
        try:
            decision = decider.answer(Answer(body["proposal_id"], action, str(body.get("edit", ""))))
        except StaleProposalError as error:
            return JSONResponse({"error": str(error)}, 409)
        except MoveEditError as error:
            state.publish(message=f"edit rejected: {error}")
            return JSONResponse({"error": str(error)}, 400)
        return JSONResponse({"applied_move": list(decision.applied_move), "action": decision.action})

    return app


class WatchServer:
    """uvicorn serving :func:`create_app` in a daemon thread. ``port=0`` picks a free port."""

    def __init__(self, state: LiveState, port: int = 0, host: str = "127.0.0.1", decider: WebDecider | None = None,
                 token: str | None = None) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be in [0, 65535], got {port}")
        self.state, self.host, self.decider = state, host, decider
        self.token = token or secrets.token_urlsafe(24)
        self.port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The page's address with its token (what the terminal prints)."""
        return f"http://{self.host}:{self.port}/?token={self.token}"

    def start(self, timeout_s: float = 10.0) -> str:
        """Start serving; returns :attr:`url` once the socket listens."""
        import uvicorn

        config = uvicorn.Config(create_app(self.state, self.token, self.decider), host=self.host, port=self.port,
                                log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="traingym-watch", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the watch page could not start on {self.host}:{self.port}")
            time.sleep(0.02)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self.url

    def stop(self) -> None:
        """Stop serving (idempotent)."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server, self._thread = None, None

    def __enter__(self) -> WatchServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
