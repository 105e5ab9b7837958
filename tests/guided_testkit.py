"""The guided decoder's choices recomputed from the model's own scores, for the SmolLM / ``hf:`` tests.

The guided decoder (:mod:`traingym.advisors.guided`) writes the JSON itself, so a well-formed diagnosis proves
nothing about the model. These helpers recompute what the model decides with plain forward passes (without the
decoder's cache cropping, batching and padding) and compare.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from traingym.advisors import Diagnosis
from traingym.advisors.findings import FINDINGS
from traingym.advisors.guided import ANSWER_START, MOVE_OPTIONS, GuidedLLMAdvisor
from traingym.advisors.hf_backend import chat_prompt, load_causal_lm
from traingym.advisors.llm_prompt import diagnosis_user_prompt


def option_scores(tokenizer: Any, model: Any, prefix: str, options: Sequence[str], after: str) -> list[float]:
    """Log-probability of each ``option + after`` as the continuation of ``prefix``, summed over the tokens from
    the first one not shared by ``prefix`` and every option: one plain forward over the shared tokens, then one
    forward per option over its own tokens (no cropping, no batching, no padding)."""
    import torch

    def encode(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    base = encode(prefix)
    fulls = [encode(prefix + option + after) for option in options]
    start = max(1, min(next((i for i, (a, b) in enumerate(zip(base, f)) if a != b), min(len(base), len(f)))
                       for f in fulls))
    scores = []
    with torch.inference_mode():
        shared = model(input_ids=torch.tensor([fulls[0][:start]]), use_cache=True)
        for ids in fulls:
            out = model(input_ids=torch.tensor([ids[start:]]), past_key_values=copy.deepcopy(shared.past_key_values),
                        use_cache=True)
            logits = torch.cat([shared.logits[0, -1:], out.logits[0, :-1]])  # predicts ids[start:]
            logprobs = torch.log_softmax(logits.float(), -1)
            scores.append(float(logprobs[torch.arange(len(ids) - start), torch.tensor(ids[start:])].sum()))
    return scores


def expected_finding_and_lr_move(advisor: GuidedLLMAdvisor, report: dict[str, Any]) -> tuple[str, float, int]:
    """The finding (with its confidence) and the LR move the model's calibrated scores pick for ``report``."""
    import torch

    tokenizer, model = load_causal_lm(advisor.backend.model, advisor.backend.gguf_file)

    def prompt(rep: dict[str, Any]) -> str:
        user = diagnosis_user_prompt(rep, advisor.max_report_chars)
        return chat_prompt(tokenizer, advisor.system_prompt, user) + ANSWER_START

    def calibrated(prefix: str, null_prefix: str, options: Sequence[str], after: str) -> list[float]:
        scores = option_scores(tokenizer, model, prefix, options, after)
        prior = option_scores(tokenizer, model, null_prefix, options, after)
        return [s - p for s, p in zip(scores, prior)]

    prefix, null_prefix = prompt(report), prompt({})
    options, after = [f'{f.value}"]' for f in FINDINGS], ', "move": {"lr":'
    scores = calibrated(prefix, null_prefix, options, after)
    best = int(np.argmax(scores))  # first maximum, like the decoder's tie-break
    confidence = float(torch.softmax(torch.tensor(scores, dtype=torch.float64), 0)[best])
    prefix, null_prefix = prefix + options[best] + after, null_prefix + options[best] + after
    lr_scores = calibrated(prefix, null_prefix, MOVE_OPTIONS, ', "weight_decay":')
    return FINDINGS[best].value, confidence, int(MOVE_OPTIONS[int(np.argmax(lr_scores))])


def assert_decided_by_the_model(advisor: GuidedLLMAdvisor, report: dict[str, Any]) -> Diagnosis:
    diagnosis = advisor.diagnose(report)
    finding, confidence, lr_move = expected_finding_and_lr_move(advisor, report)
    assert [f.value for f in diagnosis.findings] == [finding]
    assert diagnosis.confidence == pytest.approx(confidence, abs=2e-3)
    assert diagnosis.suggested_move[0] == lr_move
    return diagnosis
