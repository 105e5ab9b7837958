"""Advisors: read a TrainingReport, return a :class:`Diagnosis`, and encode it for the agent's observation.

Public API:

* :class:`Finding`, :class:`Diagnosis` — the verdict and its closed vocabulary.
* :class:`Advisor` (protocol), :func:`make_advisor` — ``"heuristic"``, ``"smollm"``, ``"hf:<path>"``,
  ``"openai:<model>"``, ``"module:Class"`` or an object.
* :class:`HeuristicAdvisor`, :class:`LLMAdvisor` (JSON answers, e.g. over HTTP), :class:`GuidedLLMAdvisor`
  (local models under a JSON grammar), :class:`FallbackAdvisor` (never raises; accounts calls).
* :class:`ChatBackend`, :class:`Completion`, :class:`HFChatBackend`, :class:`OpenAIChatBackend` — the reusable
  chat transport (``complete(system, user) -> Completion``); :func:`make_chat_backend` builds one from a spec.
* :class:`DiagnosisChannel`, :class:`DiagnosisConfig`, :class:`CallPolicy`, :class:`EncoderName` — what the env
  uses.
* Report helpers: :func:`normalize_report`, :func:`decision_key`, :func:`report_hash`, :func:`compact_report_text`.
"""

from traingym.advisors.advisor import Advisor, advisor_name
from traingym.advisors.channel import DiagnosisChannel
from traingym.advisors.completion import ChatBackend, Completion
from traingym.advisors.config import CallPolicy, DiagnosisConfig, EncoderName
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
)
from traingym.advisors.factory import ACCEPTED_SPECS, LLMOptions, make_advisor, make_chat_backend
from traingym.advisors.fallback import Consultation, FallbackAdvisor
from traingym.advisors.findings import FINDINGS, Finding
from traingym.advisors.guided import GuidedLLMAdvisor
from traingym.advisors.heuristic import HeuristicAdvisor
from traingym.advisors.hf_backend import HFChatBackend
from traingym.advisors.llm_advisor import LLMAdvisor
from traingym.advisors.llm_prompt import SYSTEM_PROMPT, parse_diagnosis
from traingym.advisors.openai_backend import OpenAIChatBackend
from traingym.advisors.report import compact_report_text, decision_key, normalize_report, report_hash

__all__ = [
    "ACCEPTED_SPECS", "FINDINGS", "MAX_TEXT_CHARS", "SYSTEM_PROMPT",
    "Advisor", "AdvisorConnectionError", "AdvisorError", "AdvisorHTTPError", "AdvisorTimeoutError",
    "AdvisorUnavailableError", "CachedEncoder", "CallPolicy", "ChatBackend", "Completion", "Consultation",
    "Diagnosis", "DiagnosisChannel", "DiagnosisConfig", "EncoderName", "FallbackAdvisor", "Finding", "GuidedLLMAdvisor",
    "HFChatBackend", "HashingEncoder", "HeuristicAdvisor", "LLMAdvisor", "LLMOptions", "MalformedAnswerError",
    "MiniLMEncoder", "OpenAIChatBackend", "OutOfVocabularyError", "RandomProjection", "ResponseTooLargeError",
    "TextEncoder", "advisor_name", "compact_report_text", "decision_key", "make_advisor", "make_chat_backend",
    "normalize_report",
    "parse_diagnosis", "report_hash",
]
