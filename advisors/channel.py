"""The env-facing diagnosis channel: report -> advisor -> Diagnosis -> observation vector.

One channel per env (and per env process). It decides when to call the advisor (:class:`CallPolicy`), caches
diagnoses by the report's decision hash, never raises on advisor failures (heuristic fallback), and encodes the
diagnosis as a float32 vector in ``[-1, 1]``::

    [ text embedding (text_dim) | findings one-hot (len(FINDINGS)) | move one-hot (len(KNOBS) x 3) ]

The move block holds, per knob in ``KNOBS`` order, three slots for -1 / 0 / +1. With the heuristic advisor the
vectors are a deterministic function of the report sequence.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces
from traingym.advisors.advisor import advisor_name
from traingym.advisors.config import DiagnosisConfig
from traingym.advisors.diagnosis import Diagnosis
from traingym.advisors.encoders import MINILM_DIM, CachedEncoder, HashingEncoder, MiniLMEncoder, RandomProjection
from traingym.advisors.factory import make_advisor
from traingym.advisors.fallback import FallbackAdvisor
from traingym.advisors.findings import FINDINGS
from traingym.advisors.heuristic import HeuristicAdvisor
from traingym.advisors.lru import LRUCache
from traingym.protocol.choices import CallPolicy, EncoderName
from traingym.protocol.decision import event_signature, report_hash
from traingym.protocol.moves import KNOBS
from traingym.protocol.report import normalize_report

MOVE_SLOTS = 3
"""One-hot slots per knob: decrease, keep, increase."""
ACCOUNTING_KEYS: tuple[str, ...] = ("latency_ms", "cache_hit", "tokens", "tokens_total", "calls", "fallbacks",
                                    "cache_hits", "encoder_cache_hit_rate")
"""Keys of :meth:`DiagnosisChannel.observe`'s accounting dict: run-time values (wall-clock time, caches that
persist across episodes) that differ between identical runs, so they are kept apart from the reproducible info."""


class DiagnosisChannel:
    """Diagnoses TrainingReports and encodes the result into the ``"diagnosis"`` observation.

    Args:
        config: what advisor and encoder to use, when to call, cache sizes, transport options.

    Raises:
        ValueError: unknown advisor spec. AdvisorUnavailableError: the advisor or encoder cannot be loaded here
            (missing wheel or model files; the message says what to install).

    Example:
        ```python
        channel = DiagnosisChannel(DiagnosisConfig(advisor="heuristic", encoder="hashing", diagnosis_dim=64))
        vector, info, accounting = channel.observe(report, step=0)   # vector in channel.observation_space
        channel.reset()                                  # new episode
        channel.close()
        ```
    """

    def __init__(self, config: DiagnosisConfig | None = None) -> None:
        self.config = config or DiagnosisConfig()
        self._heuristic = _HeuristicOncePerObserve(HeuristicAdvisor())
        primary = make_advisor(self.config.advisor, self.config.llm)
        if type(primary) is HeuristicAdvisor:  # exactly the heuristic: reuse the on_event signature's diagnosis
            primary = self._heuristic
        self._advisor = FallbackAdvisor(primary, fallback=self._heuristic)
        self._encoder = CachedEncoder(self._build_encoder(), maxsize=self.config.encoder_cache_size)
        self.text_dim = self._encoder.dim
        size = self.text_dim + len(FINDINGS) + MOVE_SLOTS * len(KNOBS)
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(size,), dtype=np.float32)
        """``Box(-1, 1, (text_dim + len(FINDINGS) + 3 * len(KNOBS),), float32)``."""
        self.layout: dict[str, slice] = {
            "text": slice(0, self.text_dim),
            "findings": slice(self.text_dim, self.text_dim + len(FINDINGS)),
            "move": slice(self.text_dim + len(FINDINGS), size),
        }
        """Where each block lies in the vector."""
        self._cache: LRUCache[tuple[Diagnosis, str]] = LRUCache(self.config.diagnosis_cache_size)
        self._tokens = {"prompt": 0, "completion": 0}
        self._closed = False
        self.reset()

    @property
    def advisor_name(self) -> str:
        """Name of the configured (primary) advisor."""
        return self._advisor.name

    @property
    def last_diagnosis(self) -> Diagnosis | None:
        """The diagnosis in effect (None right after :meth:`reset`)."""
        return self._last[0] if self._last else None

    def reset(self) -> None:
        """Start a new episode: forget the last diagnosis (the next observe calls the advisor); keep caches."""
        self._last: tuple[Diagnosis, str] | None = None
        self._last_signature: tuple[Any, ...] | None = None
        self._last_call_step: int | None = None

    def observe(self, report: Mapping[str, Any], step: int) -> tuple[np.ndarray, dict[str, Any], dict[str, Any]]:
        """Diagnose ``report`` (or reuse the last diagnosis, per the call policy) and encode it.

        Args:
            report: the TrainingReport dict (any shape is tolerated).
            step: the env step (used by the ``every_n`` policy).

        Returns:
            ``(vector, info, accounting)``: the float32 observation vector (inside :attr:`observation_space`);
            the reproducible, JSON-able ``info`` (a function of the report sequence with the heuristic advisor):
            ``used``, ``findings``, ``suggested_move``, ``confidence``, ``text``, ``called`` (the advisor or the
            cache was consulted this step), ``fallback_reason``, ``report_hash``; and the run-time
            ``accounting`` (wall-clock time, caches that persist across episodes, tokens), keys
            :data:`ACCOUNTING_KEYS`: ``latency_ms``, ``cache_hit``, ``tokens`` (this step's
            ``{"prompt", "completion"}``), ``tokens_total``, ``calls``, ``fallbacks``, ``cache_hits``,
            ``encoder_cache_hit_rate``.
        """
        if self._closed:
            raise RuntimeError("DiagnosisChannel is closed")
        started = time.perf_counter()
        normalized = normalize_report(report)  # the only normalisation of this step
        self._heuristic.begin(normalized)
        try:
            return self._observe(normalized, int(step), started)
        finally:
            self._heuristic.end()

    def _observe(self, normalized: dict[str, Any], step: int, started: float
                 ) -> tuple[np.ndarray, dict[str, Any], dict[str, Any]]:
        key = report_hash(normalized, normalized=True)
        signature = self._signature(normalized, key)
        called = self._should_call(step, signature)
        cache_hit, reason, tokens = False, None, {"prompt": 0, "completion": 0}
        if called:
            cached = self._cache.get(key)
            if cached is not None:
                self._last, cache_hit = cached, True
            else:
                consultation = self._advisor.consult(normalized)
                self._last = (consultation.diagnosis, consultation.used)
                reason = consultation.fallback_reason
                tokens = {"prompt": consultation.prompt_tokens, "completion": consultation.completion_tokens}
                self._tokens["prompt"] += tokens["prompt"]
                self._tokens["completion"] += tokens["completion"]
                if reason is None:  # a fallback answer is not cached: the primary gets another chance later
                    self._cache.put(key, self._last)
            self._last_signature, self._last_call_step = signature, step
        assert self._last is not None
        diagnosis, used = self._last
        vector = self.encode(diagnosis)
        info = {
            "used": used,
            "findings": [f.value for f in diagnosis.findings],
            "suggested_move": list(diagnosis.suggested_move),
            "confidence": diagnosis.confidence,
            "text": diagnosis.text,
            "called": called,
            "fallback_reason": reason,
            "report_hash": key,
        }
        accounting = {
            "latency_ms": (time.perf_counter() - started) * 1000.0,
            "cache_hit": cache_hit,
            "tokens": tokens,
            "tokens_total": dict(self._tokens),
            "calls": self._advisor.calls,
            "fallbacks": self._advisor.fallbacks,
            "cache_hits": self._cache.hits,
            "encoder_cache_hit_rate": self._encoder.hit_rate,
        }
        return vector, info, accounting

    def encode(self, diagnosis: Diagnosis) -> np.ndarray:
        """The observation vector of a diagnosis (text embedding, findings one-hot, move one-hot)."""
        findings = np.array([1.0 if f in diagnosis.findings else 0.0 for f in FINDINGS], dtype=np.float32)
        move = np.zeros((len(KNOBS), MOVE_SLOTS), dtype=np.float32)
        move[np.arange(len(KNOBS)), np.asarray(diagnosis.suggested_move) + 1] = 1.0
        text = self._encoder.encode(diagnosis.text)
        vector = np.concatenate([text, findings, move.reshape(-1)]).astype(np.float32)
        return np.clip(vector, -1.0, 1.0)

    def close(self) -> None:
        """Release the advisor and the caches. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._advisor.close()
        self._cache.clear()
        self._encoder.clear()

    def __repr__(self) -> str:
        return (f"DiagnosisChannel(advisor={advisor_name(self._advisor.primary)!r}, "
                f"advisor_call={self.config.advisor_call.value!r}, encoder={self.config.encoder.value!r}, "
                f"dim={self.text_dim})")

    # ------------------------------------------------------------------------------------------------ internals

    def _build_encoder(self) -> Any:
        if self.config.encoder is EncoderName.MINILM:
            encoder: Any = MiniLMEncoder()
        else:
            encoder = HashingEncoder(dim=MINILM_DIM)
        dim = self.config.diagnosis_dim
        if dim is not None and dim != encoder.dim:
            encoder = RandomProjection(encoder, dim, seed=self.config.projection_seed)
        return encoder

    def _signature(self, normalized: dict[str, Any], key: str) -> tuple[Any, ...]:
        if self.config.advisor_call is not CallPolicy.ON_EVENT:
            return (key,)
        findings = self._heuristic.diagnose(normalized).findings
        return (key, findings, event_signature(normalized, normalized=True))

    def _should_call(self, step: int, signature: tuple[Any, ...]) -> bool:
        if self._last is None or self._last_call_step is None:
            return True
        policy = self.config.advisor_call
        if policy is CallPolicy.EVERY_STEP:
            return True
        if policy is CallPolicy.EVERY_N:
            return step < self._last_call_step or step - self._last_call_step >= self.config.advisor_every_n
        return signature != self._last_signature



class _HeuristicOncePerObserve:
    """The heuristic advisor, run at most once per :meth:`DiagnosisChannel.observe`.

    The channel hands it the step's normalised report (:meth:`begin`); a diagnose of that very object (the
    on_event signature, the heuristic as the configured advisor, the fallback) reuses one diagnosis. Any other
    report is diagnosed afresh, so it behaves exactly like :class:`HeuristicAdvisor`.
    """

    name = HeuristicAdvisor.name

    def __init__(self, heuristic: HeuristicAdvisor) -> None:
        self.heuristic = heuristic
        self._report: dict[str, Any] | None = None
        self._diagnosis: Diagnosis | None = None

    def begin(self, normalized: dict[str, Any]) -> None:
        """Start an observe step on ``normalized`` (the output of ``normalize_report``)."""
        self._report, self._diagnosis = normalized, None

    def end(self) -> None:
        """End the step (drop the report and its diagnosis)."""
        self._report = self._diagnosis = None

    def diagnose(self, report: Mapping[str, Any]) -> Diagnosis:
        """The heuristic diagnosis of ``report`` (computed once per step for the step's report)."""
        if self._report is None or report is not self._report:
            return self.heuristic.diagnose(report)
        if self._diagnosis is None:
            self._diagnosis = self.heuristic.diagnose_normalized(self._report)
        return self._diagnosis

    def __repr__(self) -> str:
        return repr(self.heuristic)
