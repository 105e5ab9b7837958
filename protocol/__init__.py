"""The env <-> advisor contract, at the bottom of the package graph (imports nothing else from traingym).

* Moves: :data:`KNOBS`, :data:`Move`, :data:`KEEP`, :func:`action_to_move`, :func:`move_to_action`,
  :func:`clip_move` and the knob factors (:mod:`traingym.protocol.moves`).
* Events: :class:`EventType`, :data:`EVENT_TYPES`, :data:`DECISION_EVENTS` (:mod:`traingym.protocol.events`).
* The TrainingReport: limits and field names, :func:`slope`, :func:`history_slopes`, :func:`build_report`,
  :func:`normalize_report` (:mod:`traingym.protocol.report`); :func:`decision_key`, :func:`report_hash`
  (:mod:`traingym.protocol.decision`); :func:`compact_report_text` (:mod:`traingym.protocol.report_text`).
* Config choices shared by env and advisors: :class:`CallPolicy`, :class:`EncoderName`
  (:mod:`traingym.protocol.choices`).

``traingym.advisors`` imports only this package; ``traingym.envs`` imports it and, in exactly one module
(``envs/diagnosis.py``), ``traingym.advisors``.
"""

from traingym.protocol.choices import CallPolicy, EncoderName, choice_values
from traingym.protocol.decision import decision_key, event_signature, recent_event_types, report_hash
from traingym.protocol.events import DECISION_EVENTS, EVENT_TYPES, EventType
from traingym.protocol.moves import KEEP, KNOBS, Move, action_to_move, clip_move, move_to_action
from traingym.protocol.report import (
    HISTORY_KEYS,
    LAYER_FIELDS,
    MAX_FLAGGED_TOKENS,
    MAX_RECENT_EVENTS,
    REPORT_SCHEMA_VERSION,
    SLOPE_KEYS,
    build_report,
    history_slopes,
    normalize_report,
    slope,
)
from traingym.protocol.report_text import compact_report_text

__all__ = [
    "DECISION_EVENTS", "EVENT_TYPES", "HISTORY_KEYS", "KEEP", "KNOBS", "LAYER_FIELDS", "MAX_FLAGGED_TOKENS",
    "MAX_RECENT_EVENTS", "REPORT_SCHEMA_VERSION", "SLOPE_KEYS",
    "CallPolicy", "EncoderName", "EventType", "Move",
    "action_to_move", "build_report", "choice_values", "clip_move", "compact_report_text", "decision_key",
    "event_signature", "history_slopes", "move_to_action", "normalize_report", "recent_event_types",
    "report_hash", "slope",
]
