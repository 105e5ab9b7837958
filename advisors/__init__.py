"""Advisors: read a TrainingReport, return a :class:`Diagnosis`, and encode it for the agent's observation.

Public API:

* :class:`Finding`, :class:`Diagnosis` — the verdict and its closed vocabulary.
* :class:`Advisor` (protocol), :func:`make_advisor` — ``"heuristic"``, ``"smollm"``, ``"gemma"``,
  ``"hf:<path>"``, ``"openai:<model>"``, ``"module:Class"`` or an object.
* :class:`HeuristicAdvisor`, :class:`LLMAdvisor` (JSON answers, e.g. over HTTP), :class:`GuidedLLMAdvisor`
  (local models under a JSON grammar), :class:`FallbackAdvisor` (never raises; accounts calls).
* :class:`ChatBackend`, :class:`Completion`, :class:`HFChatBackend`, :class:`OpenAIChatBackend` — the reusable
  chat transport (``complete(system, user) -> Completion``); :func:`make_chat_backend` builds one from a spec.
  :func:`extract_json_object`, :class:`MalformedAnswerError` and :func:`fallback_reason` serve other JSON clients.
* :class:`DiagnosisChannel`, :class:`DiagnosisConfig`, :class:`CallPolicy`, :class:`EncoderName` — what the env
  uses.
* Report helpers, re-exported from :mod:`traingym.protocol` (where they are defined): :func:`normalize_report`,
  :func:`decision_key`, :func:`report_hash`, :func:`compact_report_text`.

This package imports only :mod:`traingym.protocol` from traingym (never :mod:`traingym.envs`).
"""

from traingym.advisors.advisor import Advisor, advisor_name
from traingym.advisors.channel import DiagnosisChannel
from traingym.advisors.completion import ChatBackend, Completion
from traingym.advisors.config import DiagnosisConfig
from traingym.advisors.diagnosis import MAX_TEXT_CHARS, Diagnosis
from traingym.advisors.encoders import (
    CachedEncoder,
    HashingEncoder,
    MiniLMEncoder,
    RandomProjection,
    TextEncoder,
)
from traingym.advisors.errors import (
    AdvisorConnectionError,
    AdvisorError,
    AdvisorHTTPError,
    AdvisorTimeoutError,
    AdvisorUnavailableError,
    MalformedAnswerError,
    OutOfVocabularyError,
    ResponseTooLargeError,
    fallback_reason,
)
from traingym.advisors.factory import ACCEPTED_SPECS, LLMOptions, make_advisor, make_chat_backend
from traingym.advisors.fallback import Consultation, FallbackAdvisor
from traingym.advisors.findings import FINDINGS, Finding
from traingym.advisors.guided import GuidedLLMAdvisor
from traingym.advisors.heuristic import HeuristicAdvisor
from traingym.advisors.hf_backend import HFChatBackend
from traingym.advisors.llm_advisor import LLMAdvisor
from traingym.advisors.llm_prompt import SYSTEM_PROMPT, extract_json_object, parse_diagnosis
from traingym.advisors.openai_backend import OpenAIChatBackend
from traingym.protocol.choices import CallPolicy, EncoderName
from traingym.protocol.decision import decision_key, report_hash
from traingym.protocol.report import normalize_report
from traingym.protocol.report_text import compact_report_text

__all__ = [
    "ACCEPTED_SPECS", "FINDINGS", "MAX_TEXT_CHARS", "SYSTEM_PROMPT",
    "Advisor", "AdvisorConnectionError", "AdvisorError", "AdvisorHTTPError", "AdvisorTimeoutError",
    "AdvisorUnavailableError", "CachedEncoder", "CallPolicy", "ChatBackend", "Completion", "Consultation",
    "Diagnosis", "DiagnosisChannel", "DiagnosisConfig", "EncoderName", "FallbackAdvisor", "Finding", "GuidedLLMAdvisor",
    "HFChatBackend", "HashingEncoder", "HeuristicAdvisor", "LLMAdvisor", "LLMOptions", "MalformedAnswerError",
    "MiniLMEncoder", "OpenAIChatBackend", "OutOfVocabularyError", "RandomProjection", "ResponseTooLargeError",
    "TextEncoder", "advisor_name", "compact_report_text", "decision_key", "extract_json_object", "fallback_reason",
    "make_advisor", "make_chat_backend", "normalize_report", "parse_diagnosis", "report_hash",
]
