"""Static HPO baselines (Optuna TPE over starting hyperparameters) and the compute-matched comparison."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from traingym.advisors import Completion
from traingym.hpo import compare as hpo_compare
from traingym.hpo import llm_tpe
from traingym.hpo.__main__ import main
from traingym.hpo.compare import CompareConfig, format_table, row_source, run_comparison
from traingym.hpo.llm_tpe import clip_proposal
from traingym.hpo.study import (
    HPOConfig,
    HPOResult,
    TrialResult,
    hpo_search_space,
    run_fixed_config,
    run_study,
)
from traingym.protocol.moves import AUG_LEVELS


def small(fast_kwargs: dict, **overrides) -> HPOConfig:
    values = {"n_trials": 4, "horizon": 2, "steps_per_action": fast_kwargs["steps_per_action"],
              "val_size": fast_kwargs["val_size"], "instance_index": 3, "n_startup_trials": 2}
    return HPOConfig(**{**values, **overrides})


def test_search_space_covers_the_instances_it_tunes(fast_kwargs: dict) -> None:
    """Every held-out instance's own starting point lies inside the space (log scale for lr and weight decay),
    so the study can always reach the configuration the keep baseline runs."""
    for optimizer in ("sgd", "adam"):
        space = hpo_search_space(optimizer)
        env = HPOConfig(optimizer=optimizer, val_size=fast_kwargs["val_size"]).make_env()
        try:
            instances = env.unwrapped.instances
        finally:
            env.close()
        assert len(instances) > 0 and space["lr"].log and space["weight_decay"].log
        for instance in instances:
            clipped, changed = clip_proposal(instance, space)
            assert not changed, (optimizer, instance)
            assert clipped == {"lr": instance["lr"], "weight_decay": instance["weight_decay"],
                               "aug_level": instance["aug_level"]}
        assert {i["aug_level"] for i in instances} <= set(range(space["aug_level"].low, space["aug_level"].high + 1))
    with pytest.raises(ValueError, match="optimizer"):
        hpo_search_space("rmsprop")


@pytest.mark.parametrize(("field", "value"), [("n_trials", 0), ("sampler", "cmaes"), ("p_llm", 2.0),
                                              ("instance_set", "sampled"), ("horizon", 0), ("min_distance", 1.0)])
def test_config_validation_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        HPOConfig(**{field: value})


def test_fixed_run_uses_the_trial_hyperparameters_and_keeps_them(fast_kwargs: dict) -> None:
    env = HPOConfig(horizon=3, steps_per_action=fast_kwargs["steps_per_action"],
                    val_size=fast_kwargs["val_size"]).make_env()
    try:
        params = {"lr": 0.0123, "weight_decay": 2e-5, "aug_level": 3}
        result = run_fixed_config(env, 0, 0, params)
        assert result.final_report["hparams"] == params  # keep action: never moved
        assert result.optimizer_steps_run == 3 * fast_kwargs["steps_per_action"]
        assert 0.0 <= result.test_accuracy <= 1.0 and not result.diverged
        again = run_fixed_config(env, 0, 0, params)
        assert (again.val_accuracy, again.test_accuracy) == (result.val_accuracy, result.test_accuracy)
    finally:
        env.close()


def test_tpe_study_counts_compute_and_prefixes_equal_shorter_studies(fast_kwargs: dict) -> None:
    config = small(fast_kwargs)
    result = run_study(config)
    space = hpo_search_space("sgd")
    assert len(result.trials) == 4 and result.sampler_stats is None
    for trial in result.trials:
        assert space["lr"].low <= trial.params["lr"] <= space["lr"].high
        assert space["weight_decay"].low <= trial.params["weight_decay"] <= space["weight_decay"].high
        assert trial.params["aug_level"] in range(AUG_LEVELS) and trial.proposer == "tpe"
    best = result.best_at()
    assert best.best_val_accuracy == max(t.val_accuracy for t in result.trials)
    assert best.optimizer_steps == 4 * 2 * fast_kwargs["steps_per_action"]
    shorter = run_study(small(fast_kwargs, n_trials=2))
    assert [(t.params, t.val_accuracy) for t in shorter.trials] == [
        (t.params, t.val_accuracy) for t in result.trials[:2]]
    assert shorter.best_at() == result.best_at(2)


def test_best_trial_is_chosen_by_validation_never_test() -> None:
    trials = (TrialResult(0, {"lr": 0.1}, 0.80, 0.99, False, 10, "tpe"),
              TrialResult(1, {"lr": 0.2}, 0.90, 0.70, False, 10, "tpe"),
              TrialResult(2, {"lr": 0.3}, 0.90, 0.95, False, 4, "tpe"))
    result = HPOResult(HPOConfig(n_trials=3, horizon=2, steps_per_action=5), {}, trials)
    best = result.best_at()
    assert best.best_params == {"lr": 0.2} and best.best_test_accuracy == 0.70  # earliest of equal val
    assert best.optimizer_steps == 3 * 10 and best.optimizer_steps_run == 24
    assert result.best_at(1).best_test_accuracy == 0.99
    with pytest.raises(ValueError, match="n_trials"):
        result.best_at(4)


def test_study_cli_prints_budgets(fast_kwargs: dict, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "study.json"
    assert main(["study", "--n-trials", "2", "--horizon", "2", "--steps-per-action",
                 str(fast_kwargs["steps_per_action"]), "--val-size", "128", "--sampler", "llm_tpe",
                 "--budgets", "1", "2", "--json", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [r["n_trials"] for r in printed["results"]] == [1, 2]
    trials = json.loads(out.read_text())["trials"]
    assert len(trials) == 2
    stats = printed["sampler_stats"]
    assert stats["llm_calls"] == sum(t["proposer"] != "tpe" for t in trials)
    assert stats["llm_trials"] == sum(t["proposer"] == "llm" for t in trials)
    best = max(trials, key=lambda t: (t["val_accuracy"], -t["number"]))
    assert printed["results"][-1]["best_params"] == best["params"]


@pytest.mark.parametrize(("args", "pattern"), [
    (["study", "--n-trials", "0"], r"n_trials must be in \[1, 10000\]"),
    (["study", "--sampler", "cmaes"], r"sampler must be one of"),
    (["study", "--n-trials", "many"], r"Error parsing --n-trials"),
    (["study", "--sampler", "llm_tpe", "--advisor", "gpt5"], r"--advisor 'gpt5': advisor spec 'gpt5' has no chat"),
    (["compare", "--methods", "oracle"], r"methods must be a subset of"),
    (["compare", "--methods", "rl_policy"], r"rl_policy is now --policies pretrained:<name>"),
    (["compare", "--policies", "stear"], r"policies: 'stear' is neither a baseline \[.*'steer'"),
    (["compare", "--budgets", "0"], r"budgets must be"),
    (["tune"], r"tune"),
])
def test_cli_rejects_bad_arguments_with_one_line(args: list[str], pattern: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("python -m traingym.hpo: error: ") and re.search(pattern, last), last


def test_compare_cli_rejects_an_advisor_that_cannot_propose_before_training(
        fast_kwargs: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_comparison(compare_config(fast_kwargs, tmp_path, methods=("keep",), policies=(), n_instances=1),
                   log=lambda line: None)
    stored = {name: (tmp_path / name).read_text() for name in ("per_instance.jsonl", "config.json")}
    with pytest.raises(SystemExit) as exit_info:  # other settings too: it would start afresh
        main(["compare", "--advisors", "heuristic", "gpt5", "--policies", "--n-instances", "1",
              "--out-dir", str(tmp_path)])
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.search(r"error: advisors: 'gpt5' cannot propose: advisor spec 'gpt5' has no chat backend", last), last
    assert {name: (tmp_path / name).read_text() for name in stored} == stored  # nothing ran, nothing was lost


class ScriptedChat:
    """A chat backend (the ``openai:scripted`` advisor in these tests) that always proposes the same configuration."""

    name = "scripted"
    CONFIG = {"lr": 0.05, "weight_decay": 1e-4, "aug_level": 1}

    def complete(self, system: str, user: str) -> Completion:
        return Completion(json.dumps(self.CONFIG), prompt_tokens=100, completion_tokens=10)


@pytest.fixture
def scripted_advisor(monkeypatch: pytest.MonkeyPatch) -> str:
    """``openai:scripted``: an LLM-TPE advisor besides the heuristic, without a model or a server."""
    def make_chat_backend(spec: str, options: object, *, answer_prefix: str = "") -> ScriptedChat:
        assert spec == "openai:scripted", spec
        return ScriptedChat()

    monkeypatch.setattr(llm_tpe, "make_chat_backend", make_chat_backend)
    return "openai:scripted"


def compare_config(fast_kwargs: dict, out_dir: Path, **overrides) -> CompareConfig:
    values = {"n_instances": 2, "first_instance": 5, "budgets": (1, 2), "horizon": 2,
              "steps_per_action": fast_kwargs["steps_per_action"], "val_size": 128, "n_bootstrap": 200,
              "p_llm": 1.0, "out_dir": str(out_dir)}
    return CompareConfig(**{**values, **overrides})


def lines_of(out_dir: Path) -> list[str]:
    return (out_dir / "per_instance.jsonl").read_text().splitlines()


def test_comparison_of_advisors_and_policies_table_plot_and_resume(fast_kwargs: dict, tmp_path: Path,
                                                                   scripted_advisor: str) -> None:
    config = compare_config(fast_kwargs, tmp_path, advisors=("heuristic", scripted_advisor),
                            policies=("steer", "pretrained:digits-mlp"))
    result = run_comparison(config, log=lambda line: None)
    labels = [row["method"] for row in result.table]
    assert labels == ["keep", "steer", "pretrained:digits-mlp", "TPE-1", "TPE-2", "LLM-TPE[heuristic]-1",
                      "LLM-TPE[heuristic]-2", "LLM-TPE[openai:scripted]-1", "LLM-TPE[openai:scripted]-2"]
    per_run = 2 * fast_kwargs["steps_per_action"]
    assert {row["method"]: row["optimizer_steps"] for row in result.table} == {
        label: per_run * (int(label[-1]) if label[-2] == "-" else 1) for label in labels}
    by_label = {row["method"]: row for row in result.table}
    for n in (1, 2):  # p_llm=1: every trial asks the row's own advisor
        heuristic, scripted = by_label[f"LLM-TPE[heuristic]-{n}"], by_label[f"LLM-TPE[openai:scripted]-{n}"]
        assert heuristic["llm_calls"] == scripted["llm_calls"] == 2 * n
        assert heuristic["llm_trials"] == 2 * n  # the heuristic moves away from what it tried
        assert (scripted["llm_trials"], scripted["fallbacks"]) == (2, 2 * (n - 1))  # its repeat is too close
        assert "delta_vs_tpe" in heuristic and "delta_vs_tpe" in scripted
    one_trial = [r for r in result.rows if r["label"] == "LLM-TPE[openai:scripted]-1"]
    assert [r["best_params"] for r in one_trial] == [ScriptedChat.CONFIG] * 2
    assert by_label["steer"]["delta_vs_steer"] == 0.0 and by_label["keep"]["delta_vs_keep"] == 0.0
    assert all(row["delta_vs_steer"] is not None and row["delta_vs_keep"] is not None for row in result.table)
    agent_rows = [r for r in result.rows if r["label"] == "pretrained:digits-mlp"]
    assert [r["instance_index"] for r in agent_rows] == [5, 6] and all(0 <= r["test_accuracy"] <= 1 for r in agent_rows)
    assert all(row["n_instances"] == 2 and row["test_acc_ci_low"] <= row["test_acc_mean"] <= row["test_acc_ci_high"]
               for row in result.table)
    assert any("pretrained:digits-mlp was trained with" in note and "'steps_per_action': 50" in note
               for note in result.notes)
    assert {r["instance_index"] for r in result.rows} == {5, 6} and all(r["seed"] == r["instance_index"]
                                                                         for r in result.rows)
    for name in ("table.csv", "table.json", "accuracy_vs_compute.png", "per_instance.jsonl"):
        assert (tmp_path / name).stat().st_size > 0
    printed = format_table(result.table)
    assert "LLM-TPE[openai:scripted]-2" in printed and "LLM-TPE vs TPE" in printed and "Δ vs steer" in printed
    totals = json.loads((tmp_path / "table.json").read_text())["llm_tpe_totals"]
    assert totals["openai:scripted"]["prompt_tokens"] == 100 * 2 * 2 and totals["heuristic"]["prompt_tokens"] == 0
    lines = lines_of(tmp_path)
    again = run_comparison(config, log=lambda line: None)  # resumes: nothing is re-run
    assert lines_of(tmp_path) == lines and again.table == result.table


def test_resume_adds_only_the_rows_of_a_new_advisor_policy_or_instance(fast_kwargs: dict, tmp_path: Path,
                                                                       scripted_advisor: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    first = compare_config(fast_kwargs, tmp_path, advisors=("heuristic",), policies=("steer",))
    run_comparison(first, log=lambda line: None)
    lines = lines_of(tmp_path)
    more = compare_config(fast_kwargs, tmp_path, advisors=("heuristic", scripted_advisor),
                          policies=("steer", "good_defaults"), n_instances=3)
    result = run_comparison(more, log=lambda line: None)
    assert lines_of(tmp_path)[: len(lines)] == lines  # only adds
    added = [json.loads(line) for line in lines_of(tmp_path)[len(lines):]]
    assert {(row_source(r), r["instance_index"]) for r in added} == (
        {("llm_tpe[openai:scripted]", i) for i in (5, 6, 7)} | {("policy[good_defaults]", i) for i in (5, 6, 7)}
        | {(s, 7) for s in ("keep", "tpe", "llm_tpe[heuristic]", "policy[steer]")})
    assert all(row["n_instances"] == 3 for row in result.table)
    # A policy that changed (re-tuned targets) is run again; the other rows stay.
    from traingym.agents import baselines

    monkeypatch.setattr(baselines, "tuned_defaults", lambda env_id: {"lr": 0.2, "weight_decay": 1e-5, "aug_level": 0})
    before = lines_of(tmp_path)
    run_comparison(more, log=lambda line: None)
    after = lines_of(tmp_path)
    rerun = [json.loads(line) for line in after if line not in before]
    assert {(row_source(r), r["instance_index"]) for r in rerun} == {
        (f"policy[{name}]", i) for name in ("steer", "good_defaults") for i in (5, 6, 7)}
    assert [line for line in before if line in after] == [
        line for line in before if json.loads(line).get("policy") not in ("steer", "good_defaults")]
    # A result-defining setting starts afresh.
    fresh = run_comparison(compare_config(fast_kwargs, tmp_path, horizon=3, methods=("keep",), policies=()),
                           log=lambda line: None)
    assert [r["method"] for r in fresh.table] == ["keep"] and len(lines_of(tmp_path)) == 2


def test_compare_config_validation(tmp_path: Path) -> None:
    assert CompareConfig().policies == ("good_defaults", "pretrained:digits-mlp")  # the agent shipped for the env
    assert CompareConfig(env_id="TrainGym/TabularMLP-v0").policies == ("good_defaults",)  # none shipped for it
    assert CompareConfig(policies=()).policies == ()
    agent_dir = str(Path(hpo_compare.__file__).resolve().parents[1] / "agents" / "pretrained" / "digits-mlp")
    assert CompareConfig(policies=(" steer", "steer", agent_dir, agent_dir + "/")).policies == ("steer", agent_dir)
    for policies, pattern in [(("stear",), r"policies: 'stear' is neither a baseline \[.*'diagnosis_aware_defaults'"),
                              (("pretrained:nope",), r"policies: no pretrained agent 'nope'"),
                              ((str(tmp_path / "missing"),), r"policies: .* is neither a baseline"),
                              (("keep",), r"policies: 'keep' is the keep method")]:
        with pytest.raises(ValueError, match=pattern):
            CompareConfig(policies=policies)
    with pytest.raises(ValueError, match="methods and policies are both empty"):
        CompareConfig(methods=(), policies=())
    with pytest.raises(ValueError, match="good_defaults is now --policies good_defaults"):
        CompareConfig(methods=("keep", "good_defaults"))
    with pytest.raises(ValueError, match="advisors must name at least one"):
        CompareConfig(advisors=())
    assert CompareConfig(advisors=(), methods=("keep", "tpe")).advisors == ()
    assert CompareConfig(advisors=("smollm", " smollm", "gemma")).advisors == ("smollm", "gemma")
    with pytest.raises(ValueError, match="env_id must be a registered TrainGym id"):
        CompareConfig(env_id="CartPole-v1")
    with pytest.raises(ValueError, match="budgets"):
        CompareConfig(budgets=(0,))
    with pytest.raises(ValueError, match="first_instance"):
        CompareConfig(first_instance=120, n_instances=20)
    assert CompareConfig(budgets=(20, 5, 5)).budgets == (5, 20)
    assert CompareConfig(methods=("tpe", "keep")).methods == ("keep", "tpe")


def test_aggregate_pairs_llm_tpe_with_tpe_and_has_no_keep_delta_without_keep() -> None:
    config = CompareConfig(budgets=(1,), methods=("tpe", "llm_tpe"), advisors=("heuristic", "smollm"), policies=(),
                           n_bootstrap=200)
    rows = [{"method": m, "advisor": a, "n_trials": 1, "instance_index": i, "test_accuracy": acc,
             "val_accuracy": acc, "optimizer_steps": 1000, "optimizer_steps_run": 1000}
            for i in (0, 1) for m, a, acc in [("tpe", None, 0.8), ("llm_tpe", "heuristic", 0.9),
                                              ("llm_tpe", "smollm", 0.7 + 0.1 * i)]]
    table = hpo_compare.aggregate(rows, config)
    assert [r["method"] for r in table] == ["TPE-1", "LLM-TPE[heuristic]-1", "LLM-TPE[smollm]-1"]
    assert table[0]["delta_vs_keep"] is None and "n/a (keep not run)" in format_table(table)
    assert table[1]["delta_vs_tpe"] == 0.1 and table[2]["delta_vs_tpe"] == pytest.approx(-0.05)
    assert "delta_vs_steer" not in table[0]
