"""Shared helpers for the advisors tests: scripted TrainingReports, a scripted OpenAI-compatible HTTP server on
127.0.0.1, and a tiny user advisor class for the ``"module:Class"`` spec (``advisors_testkit:ConstantAdvisor``)."""

from __future__ import annotations

import copy
import json
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
from traingym.advisors import Diagnosis, DiagnosisChannel, Finding


def observe_merged(channel: DiagnosisChannel, report: Mapping[str, Any], step: int
                   ) -> tuple[np.ndarray, dict[str, Any]]:
    """``channel.observe`` with the accounting merged into the info (what ``advisor_accounting=True`` shows)."""
    vector, info, accounting = channel.observe(report, step)
    assert not set(info) & set(accounting)
    return vector, {**info, **accounting}


def make_report(**overrides: Any) -> dict[str, Any]:
    """A healthy mid-training digits report (schema_version 1); top-level keys replaced by ``overrides``."""
    report: dict[str, Any] = {
        "schema_version": 1,
        "task": {"env_id": "TrainGym/DigitsMLP-v0", "family": "digits_mlp", "modality": "image",
                 "n_classes": 10, "model": "MLP 64-32", "n_params": 6570},
        "step": 5, "horizon": 20,
        "hparams": {"lr": 0.1, "weight_decay": 1e-4, "aug_level": 0},
        "bounds": {"lr": [1e-5, 3.0], "weight_decay": [1e-7, 0.1], "aug_level": [0, 4]},
        "history": {"train_loss": [1.2, 0.8, 0.55, 0.4, 0.3], "val_loss": [1.25, 0.85, 0.6, 0.45, 0.36],
                    "train_acc": [0.6, 0.75, 0.83, 0.88, 0.91], "val_acc": [0.58, 0.73, 0.81, 0.86, 0.89]},
        "gap": {"loss": 0.06, "acc": 0.02},
        "slopes": {"val_loss": -0.21, "val_acc": 0.075, "gap_loss": 0.0},
        "layers": [{"name": "fc1", "grad_norm": 0.3, "weight_change": 0.01, "mean_abs_weight": 0.05,
                    "dead_fraction": 0.1, "saturation": 0.0, "error_share": 0.6},
                   {"name": "fc2", "grad_norm": 0.2, "weight_change": 0.01, "mean_abs_weight": 0.06,
                    "dead_fraction": 0.05, "saturation": 0.0, "error_share": 0.4}],
        "flagged_neurons": [{"layer": "fc1", "ids": [3, 17], "scores": [0.8, 0.5]}],
        "flagged_tokens": [],
        "flagged_inputs": [],
        "events": {"counts": {}, "recent": []},
        "diverged": False,
    }
    report.update(copy.deepcopy(overrides))
    return report


def _history(train_loss: list[float], val_loss: list[float], train_acc: list[float],
             val_acc: list[float]) -> dict[str, list[float]]:
    return {"train_loss": train_loss, "val_loss": val_loss, "train_acc": train_acc, "val_acc": val_acc}


def _layers(dead: float = 0.1, grad: float = 0.3) -> list[dict[str, Any]]:
    return [{"name": "fc1", "grad_norm": grad, "weight_change": 0.01, "mean_abs_weight": 0.05,
             "dead_fraction": dead, "saturation": 0.0, "error_share": 0.7}]


SCENARIOS: dict[str, dict[str, Any]] = {
    "healthy": make_report(),
    "diverging": make_report(
        hparams={"lr": 2.0, "weight_decay": 1e-4, "aug_level": 0},
        history=_history([2.3, 1.9, 6.5, 40.0], [2.3, 2.0, 7.0, 45.0], [0.1, 0.3, 0.12, 0.1], [0.1, 0.28, 0.11, 0.1]),
        gap={"loss": 5.0, "acc": 0.0}, slopes={"val_loss": 13.0, "val_acc": -0.03, "gap_loss": 1.5},
        layers=_layers(grad=180.0), step=4,
        events={"counts": {"loss_spike": 2}, "recent": [
            {"step": 3, "type": "loss_spike", "layer": None, "neuron_ids": [], "values": {"loss": 6.5}},
            {"step": 4, "type": "loss_spike", "layer": None, "neuron_ids": [], "values": {"loss": 40.0}}]},
    ),
    "overfitting": make_report(
        history=_history([0.6, 0.35, 0.2, 0.1, 0.05], [0.7, 0.55, 0.56, 0.62, 0.71],
                         [0.8, 0.9, 0.95, 0.98, 0.99], [0.78, 0.83, 0.82, 0.8, 0.76]),
        gap={"loss": 0.66, "acc": 0.23}, slopes={"val_loss": 0.009, "val_acc": -0.007, "gap_loss": 0.144},
    ),
    "plateau": make_report(
        hparams={"lr": 1e-4, "weight_decay": 1e-4, "aug_level": 0}, step=8,
        history=_history([1.52, 1.51, 1.51, 1.5, 1.5, 1.5], [1.55, 1.54, 1.54, 1.54, 1.53, 1.53],
                         [0.71, 0.715, 0.715, 0.72, 0.72, 0.72], [0.7, 0.705, 0.705, 0.71, 0.71, 0.71]),
        gap={"loss": 0.03, "acc": 0.01}, slopes={"val_loss": -0.004, "val_acc": 0.002, "gap_loss": 0.0},
    ),
    "shortcut": make_report(
        task={"env_id": "TrainGym/ReviewsShortcut-v0", "family": "reviews_shortcut", "modality": "text",
              "n_classes": 2, "model": "BERT-tiny", "n_params": 4_400_000},
        flagged_tokens=[{"token": "zqx", "z": 5.4, "share": 0.31}, {"token": "great", "z": 1.2, "share": 0.05}],
        events={"counts": {"over_relevant_token": 1}, "recent": [
            {"step": 5, "type": "over_relevant_token", "layer": None, "neuron_ids": [17],
             "values": {"z": 5.4, "share": 0.31}}]},
    ),
    "shortcut_features": make_report(
        step=8,
        history=_history([0.5, 0.2, 0.05, 0.01], [0.9, 1.1, 1.3, 1.4], [0.85, 0.95, 0.99, 1.0],
                         [0.72, 0.74, 0.74, 0.75]),
        gap={"loss": 1.39, "acc": 0.25}, slopes={"val_loss": 0.16, "val_acc": 0.009, "gap_loss": 0.3},
        flagged_inputs=[{"feature": "pixel r0c3", "z": 9.2, "share": 0.3},
                        {"feature": "pixel r7c1", "z": 7.5, "share": 0.2}],
        events={"counts": {"over_relevant_input": 2}, "recent": [
            {"step": 8, "type": "over_relevant_input", "layer": None, "neuron_ids": [3],
             "values": {"z": 9.2, "share": 0.3}}]},
    ),
    "memorised": make_report(
        step=10,
        history=_history([0.3, 0.05, 0.01, 0.004], [0.5, 0.4, 0.38, 0.37], [0.92, 0.99, 1.0, 1.0],
                         [0.9, 0.92, 0.92, 0.93]),
        gap={"loss": 0.366, "acc": 0.07}, slopes={"val_loss": -0.04, "val_acc": 0.009, "gap_loss": 0.02},
    ),
    "dead_units": make_report(layers=_layers(dead=0.65)),
    "noisy_labels": make_report(
        step=8,
        history=_history([1.1, 1.08, 1.07, 1.07, 1.06, 1.06], [0.62, 0.6, 0.6, 0.59, 0.59, 0.59],
                         [0.71, 0.72, 0.725, 0.73, 0.73, 0.73], [0.86, 0.87, 0.87, 0.875, 0.875, 0.88]),
        gap={"loss": -0.47, "acc": -0.15}, slopes={"val_loss": -0.006, "val_acc": 0.004, "gap_loss": 0.004},
    ),
    "underfitting": make_report(
        hparams={"lr": 0.01, "weight_decay": 0.03, "aug_level": 2}, step=6,
        history=_history([2.0, 1.9, 1.85, 1.82], [2.0, 1.9, 1.86, 1.83], [0.35, 0.4, 0.42, 0.43],
                         [0.34, 0.4, 0.42, 0.43]),
        gap={"loss": 0.01, "acc": 0.0}, slopes={"val_loss": -0.055, "val_acc": 0.028, "gap_loss": 0.0},
    ),
}
"""Scripted reports, one per situation the heuristic rules name."""


class ConstantAdvisor:
    """A user advisor for the ``"advisors_testkit:ConstantAdvisor"`` spec: always suggests more weight decay."""

    name = "constant"

    def diagnose(self, report: Mapping[str, Any]) -> Diagnosis:
        return Diagnosis((Finding.OVERFITTING,), 0.9, (0, 1, 0, 0), "constant: always more weight decay.")


class BrokenAdvisor:
    """A user advisor that always raises."""

    name = "broken"

    def diagnose(self, report: Mapping[str, Any]) -> Diagnosis:
        raise RuntimeError("boom")


# ---------------------------------------------------------------- scripted OpenAI-compatible server

@dataclass
class Reply:
    """One scripted HTTP answer."""

    status: int = 200
    content: str | None = None
    """Assistant message content, wrapped in a chat completion body (with usage)."""
    raw: bytes | None = None
    """Exact body bytes (overrides ``content``)."""
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    prompt_tokens: int = 120
    completion_tokens: int = 40
    omit_length: bool = False
    """Send no Content-Length (the body ends when the connection closes)."""


def chat_body(content: str, prompt_tokens: int = 120, completion_tokens: int = 40) -> bytes:
    return json.dumps({
        "id": "chatcmpl-test", "object": "chat.completion", "model": "test-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }).encode()


class ScriptedChatServer:
    """``POST /v1/chat/completions`` on 127.0.0.1 (port 0), answering from a script; records the requests.

    The last reply repeats once the script is exhausted. Use as a context manager; ``base_url`` ends in ``/v1``.
    """

    def __init__(self, replies: list[Reply]) -> None:
        self.replies = list(replies)
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with outer._lock:
                    outer.requests.append({"path": self.path, "headers": dict(self.headers.items()),
                                           "json": json.loads(body or b"{}")})
                    reply = outer.replies.pop(0) if len(outer.replies) > 1 else outer.replies[0]
                if self.path != "/v1/chat/completions":
                    reply = Reply(status=404, raw=b'{"error": "not found"}')
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                payload = reply.raw if reply.raw is not None else chat_body(
                    reply.content or "", reply.prompt_tokens, reply.completion_tokens)
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    if not reply.omit_length:
                        self.send_header("Content-Length", str(len(payload)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout / size cap)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> ScriptedChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def closed_port() -> int:
    """A local port with nothing listening (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
