"""Static HPO baselines (Optuna TPE over starting hyperparameters) and the compute-matched comparison."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from traingym.hpo import compare as hpo_compare
from traingym.hpo.__main__ import main
from traingym.hpo.compare import CompareConfig, format_table, run_comparison
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
    (["compare", "--methods", "oracle"], r"methods must be a non-empty subset"),
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


def test_comparison_table_plot_and_resume(fast_kwargs: dict, tmp_path: Path) -> None:
    config = CompareConfig(n_instances=2, first_instance=5, budgets=(1, 2), horizon=2,
                           steps_per_action=fast_kwargs["steps_per_action"], val_size=128, n_bootstrap=200,
                           methods=("keep", "rl_policy", "tpe", "llm_tpe"), out_dir=str(tmp_path))
    result = run_comparison(config, log=lambda line: None)
    labels = [row["method"] for row in result.table]
    assert labels == ["keep", "RL policy", "TPE-1", "TPE-2", "LLM-TPE-1", "LLM-TPE-2"]
    steps = {row["method"]: row["optimizer_steps"] for row in result.table}
    per_run = 2 * fast_kwargs["steps_per_action"]
    assert steps == {"keep": per_run, "RL policy": per_run, "TPE-1": per_run, "TPE-2": 2 * per_run,
                     "LLM-TPE-1": per_run, "LLM-TPE-2": 2 * per_run}
    assert config.policy == "pretrained:digits-mlp"  # the agent shipped for the env, run on the same instances
    rl_rows = [r for r in result.rows if r["method"] == "rl_policy"]
    assert [r["instance_index"] for r in rl_rows] == [5, 6] and all(0 <= r["test_accuracy"] <= 1 for r in rl_rows)
    assert all(row["n_instances"] == 2 and row["test_acc_ci_low"] <= row["test_acc_mean"] <= row["test_acc_ci_high"]
               for row in result.table)
    assert any("rl_policy was trained with" in note and "'steps_per_action': 50" in note for note in result.notes)
    assert {r["instance_index"] for r in result.rows} == {5, 6} and all(r["seed"] == r["instance_index"]
                                                                         for r in result.rows)
    for name in ("table.csv", "table.json", "accuracy_vs_compute.png", "per_instance.jsonl"):
        assert (tmp_path / name).stat().st_size > 0
    assert "LLM-TPE-2" in format_table(result.table) and "LLM-TPE vs TPE" in format_table(result.table)
    assert all("delta_vs_tpe" in row for row in result.table if row["method"].startswith("LLM-TPE"))
    lines = (tmp_path / "per_instance.jsonl").read_text().splitlines()
    again = run_comparison(config, log=lambda line: None)  # resumes: nothing is re-run
    assert (tmp_path / "per_instance.jsonl").read_text().splitlines() == lines
    assert again.table == result.table
    more = run_comparison(CompareConfig(**{**config.__dict__, "methods": ("keep", "tpe", "llm_tpe"),
                                           "n_instances": 3}), log=lambda line: None)
    assert (tmp_path / "per_instance.jsonl").read_text().splitlines()[: len(lines)] == lines  # only adds
    assert {r["instance_index"] for r in more.rows} == {5, 6, 7}
    assert [r for r in more.rows if r["instance_index"] != 7] == result.rows


def test_compare_config_validation() -> None:
    with pytest.raises(ValueError, match="rl_policy needs policy"):
        CompareConfig(env_id="TrainGym/TabularMLP-v0")
    assert CompareConfig(env_id="TrainGym/TabularMLP-v0", methods=("keep", "tpe")).policy is None
    with pytest.raises(ValueError, match="budgets"):
        CompareConfig(budgets=(0,))
    with pytest.raises(ValueError, match="first_instance"):
        CompareConfig(first_instance=120, n_instances=20)
    assert CompareConfig(budgets=(20, 5, 5)).budgets == (5, 20)
    assert hpo_compare.CompareConfig(methods=("tpe", "keep")).methods == ("keep", "tpe")


def test_aggregate_without_keep_rows_has_no_delta() -> None:
    config = CompareConfig(budgets=(1,), methods=("tpe", "llm_tpe"), n_bootstrap=200)
    rows = [{"method": m, "label": f"{lab}-1", "n_trials": 1, "instance_index": i, "test_accuracy": acc,
             "val_accuracy": acc, "optimizer_steps": 1000, "optimizer_steps_run": 1000}
            for i, (m, lab, acc) in enumerate([("tpe", "TPE", 0.8), ("llm_tpe", "LLM-TPE", 0.9)] * 2)]
    for row, index in zip(rows, (0, 0, 1, 1)):
        row["instance_index"] = index
    table = hpo_compare.aggregate(rows, config)
    assert [r["method"] for r in table] == ["TPE-1", "LLM-TPE-1"]
    assert table[0]["delta_vs_keep"] is None and "n/a" in format_table(table)
    assert table[1]["delta_vs_tpe"] == 0.1
