"""An SB3 callback that publishes the training's current state to the live watch page (:class:`LiveState`)."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from traingym.report.live import LiveState

EVIDENCE_INTERVAL_S = 1.0
"""At most one ``report()`` call per this many seconds (the evidence: flagged neurons, tokens, recent events)."""


def report_evidence(report: dict[str, Any]) -> dict[str, Any]:
    """The part of a TrainingReport a human checks a diagnosis against."""
    return {"flagged_neurons": report.get("flagged_neurons", []), "flagged_tokens": report.get("flagged_tokens", []),
            "recent_events": (report.get("events") or {}).get("recent", [])[-4:],
            "gap": report.get("gap"), "slopes": report.get("slopes")}


class WatchCallback(BaseCallback):
    """After every vectorised env step, publish the first training env's episode, step, hyperparameters, metrics
    and last diagnosis (``info["advisor"]``); every :data:`EVIDENCE_INTERVAL_S` also the evidence from its report.
    """

    def __init__(self, state: LiveState, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.state = state
        self.episode = 0
        self._last_evidence = -float("inf")

    def _on_step(self) -> bool:
        infos: list[dict[str, Any]] = self.locals.get("infos", [])
        if not infos:
            return True
        info = infos[0]
        dones = self.locals.get("dones", np.zeros(len(infos), dtype=bool))
        fields: dict[str, Any] = {
            "timesteps": int(self.num_timesteps), "episode": self.episode, "step": int(info.get("step", 0)),
            "hparams": {k: float(info[k]) for k in ("lr", "weight_decay", "aug_level") if k in info},
            "metrics": {k: float(info[k]) for k in ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
                        if k in info} | ({"move": [int(m) for m in info["move"]]} if "move" in info else {}),
        }
        advisor = info.get("advisor")
        if isinstance(advisor, dict):
            fields["diagnosis"] = {"findings": [str(f) for f in advisor.get("findings", [])],
                                   "text": str(advisor.get("text", "")),
                                   "suggested_move": [int(m) for m in advisor.get("suggested_move", [])]}
        now = time.monotonic()
        if now - self._last_evidence >= EVIDENCE_INTERVAL_S:
            self._last_evidence = now
            # An env without a neuron log has no report: the page then shows no evidence.
            with contextlib.suppress(Exception):
                fields["evidence"] = report_evidence(self.training_env.env_method("report", indices=[0])[0])
        self.state.publish(**fields)
        if bool(dones[0]):
            self.episode += 1
        return True

    def _on_training_end(self) -> None:
        self.state.publish(finished=True, timesteps=int(self.num_timesteps))
