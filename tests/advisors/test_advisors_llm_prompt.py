"""Parsing untrusted LLM answers, and the JSON stop criterion of local generation."""

from __future__ import annotations

import json

import pytest
from traingym.advisors import MAX_TEXT_CHARS, Finding, MalformedAnswerError, OutOfVocabularyError, parse_diagnosis
from traingym.advisors.errors import AdvisorHTTPError, fallback_reason
from traingym.advisors.hf_backend import _json_object_closed


def test_parses_json_inside_prose_and_fences() -> None:
    answer = 'Here you go:\n```json\n{"findings": ["lr_too_high", "healthy"], "confidence": "high", ' \
             '"move": {"lr": "decrease", "aug_level": 0.4}, "text": "  loss\\nexplodes  "}\n```'
    diagnosis = parse_diagnosis(answer)
    assert diagnosis.findings == (Finding.DIVERGING,)  # alias; "healthy" dropped next to a problem
    assert diagnosis.suggested_move == (-1, 0, 1, 0)  # words and signs, clipped into {-1, 0, 1}
    assert diagnosis.confidence == 0.5 and diagnosis.text == "loss explodes"


def test_missing_text_gets_a_canonical_one_and_long_text_is_cut() -> None:
    assert parse_diagnosis('{"findings": "plateau"}').text == "llm: plateau."
    long = parse_diagnosis(json.dumps({"findings": ["plateau"], "text": "word " * 500}))
    assert len(long.text) <= MAX_TEXT_CHARS


@pytest.mark.parametrize("answer, error", [
    ("no json here", MalformedAnswerError),
    ('{"findings": []}', MalformedAnswerError),
    ('{"findings": [3]}', OutOfVocabularyError),
    ('{"confidence": 1}', MalformedAnswerError),
    ('{"findings": ["plateau"], "move": "up"}', MalformedAnswerError),
    ('{"findings": ["plateau"], "move": {"lr": true}}', OutOfVocabularyError),
    ('{"findings": ["exploding_gradients"]}', OutOfVocabularyError),
    ('{"findings": ["plateau"', MalformedAnswerError),  # truncated
])
def test_invalid_answers_raise_categorised_errors(answer: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_diagnosis(answer)


def test_fallback_reasons() -> None:
    assert fallback_reason(AdvisorHTTPError(502)) == "http_502"
    assert fallback_reason(OutOfVocabularyError("x")) == "out_of_vocabulary"
    assert fallback_reason(TimeoutError()) == "timeout"
    assert fallback_reason(ConnectionRefusedError()) == "connection"
    assert fallback_reason(KeyError("x")) == "exception:KeyError"


def test_json_stop_criterion() -> None:
    assert not _json_object_closed('{"findings": ["a"], "move": {"lr": 1}')
    assert _json_object_closed('{"findings": ["a"], "move": {"lr": 1}} trailing')
    assert not _json_object_closed('{"text": "a } inside a string \\" still"')
    assert not _json_object_closed("} no object yet")
