"""Compute-matched comparison of static HPO (TPE, LLM-TPE) with the RL policy and simple baselines.

For the same held-out instances (``instance_set="test"``, instance ``i`` trained with ``reset(seed=i)``) every
method reports the final **test** accuracy it reaches and the target-network optimizer steps it spends:

| method | runs per instance | optimizer steps per instance |
|---|---|---|
| ``keep`` | 1 (the instance's own starting hyperparameters, no moves) | T x K |
| ``good_defaults`` | 1 (train-set-tuned starting hyperparameters, no moves; if the baselines module has them) | T x K |
| ``rl_policy`` | 1 (a trained SB3 agent steering the run: ``--policy``, default the shipped agent of the env) | T x K |
| ``TPE-N`` / ``LLM-TPE-N`` | N (best of N by validation accuracy) | N x T x K |

The N-trial results are the first N trials of one max(N)-trial study per instance and sampler: the samplers are
sequential and seeded, so these are exactly the trials an N-trial study runs. Intervals are 95% percentile
bootstrap CIs of the mean over instances (:func:`traingym.agents.stats.bootstrap_mean`). Advisor (LLM) compute is
not counted in optimizer steps; LLM-TPE's calls and tokens are reported in their own columns.

Results are appended per instance to ``per_instance.jsonl`` in the output directory, so an interrupted run
resumes where it stopped, and a later run with the same result settings (:data:`RESULT_FIELDS`) only adds what is
missing (e.g. ``--methods rl_policy --policy runs/ppo`` once an agent is trained); ``table.csv``, ``table.json``
and ``accuracy_vs_compute.png`` are written at the end.

Example (in the background: it trains ~43 networks per instance)::

    nohup python -m traingym.hpo compare --n-instances 20 --out-dir runs/hpo_compare > compare.log 2>&1 &
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from traingym.agents.episodes import EpisodeSettings, run_policy
from traingym.agents.policies import PolicySpec, find_run_config
from traingym.agents.stats import Interval, bootstrap_mean
from traingym.envs.config import OPTIMIZERS, TrainingEnvConfig
from traingym.envs.tasks.base import TEST_SET_SIZE
from traingym.hpo.study import HPOConfig, keep_run, run_study
from traingym.protocol.checks import check_range
from traingym.protocol.cli import IntTuple, StrTuple

METHODS = ("keep", "good_defaults", "rl_policy", "tpe", "llm_tpe")
"""Methods the comparison can run."""
LABELS = {"keep": "keep", "good_defaults": "good defaults", "rl_policy": "RL policy", "tpe": "TPE",
          "llm_tpe": "LLM-TPE"}


@dataclass(frozen=True)
class CompareConfig:
    """A compute-matched comparison on held-out instances."""

    env_id: str = "TrainGym/DigitsMLP-v0"
    """Registered TrainGym environment id."""
    n_instances: int = 20
    """Held-out instances compared (indices ``first_instance ..``), 1..128 (the held-out set)."""
    first_instance: int = 0
    """First test-instance index."""
    budgets: IntTuple = (5, 10, 20)
    """Trial budgets N of the static HPO methods (each 1..1000)."""
    horizon: int = TrainingEnvConfig.horizon
    """Env steps per training run, 1..10000."""
    steps_per_action: int = TrainingEnvConfig.steps_per_action
    """Optimizer steps per env step (K), 1..10000."""
    optimizer: str = "sgd"
    """Target-network optimizer: sgd or adam."""
    val_size: int = TrainingEnvConfig.val_size
    """Validation buffer size, 16..100000."""
    advisor: str = "heuristic"
    """LLM-TPE advisor: heuristic, smollm, gemma, hf:<path>, openai:<model>."""
    p_llm: float = 0.5
    """LLM-TPE coin probability, in [0, 1]."""
    sampler_seed: int = 0
    """Instance ``i``'s TPE and LLM-TPE studies both use sampler seed ``sampler_seed + i`` (paired, and the
    LLM-TPE coin pattern differs between instances)."""
    policy: str | None = None
    """Saved SB3 agent (run directory, model .zip or pretrained:<name>) for the rl_policy row; None: the agent
    shipped for --env-id (pretrained:digits-mlp on TrainGym/DigitsMLP-v0); without one, rl_policy needs it."""
    methods: StrTuple = METHODS
    """Subset of ``keep``, ``good_defaults``, ``rl_policy``, ``tpe``, ``llm_tpe``."""
    out_dir: str = "runs/hpo_compare"
    """Directory of ``per_instance.jsonl``, ``table.csv``, ``table.json`` and the plot."""
    n_bootstrap: int = 10_000
    """Bootstrap resamples of the CI, 100..1000000."""

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"methods must be a non-empty subset of {METHODS}, got {unknown}")
        object.__setattr__(self, "budgets", tuple(sorted(set(int(b) for b in self.budgets))))
        object.__setattr__(self, "methods", tuple(m for m in METHODS if m in self.methods))
        if not self.budgets or not all(1 <= b <= 1000 for b in self.budgets):
            raise ValueError(f"budgets must be a non-empty set of ints in [1, 1000], got {self.budgets!r}")
        if not self.methods:
            raise ValueError(f"methods must be a non-empty subset of {METHODS}")
        for name, low, high in (("n_instances", 1, TEST_SET_SIZE), ("first_instance", 0, TEST_SET_SIZE - 1),
                                ("horizon", 1, 10_000), ("steps_per_action", 1, 10_000), ("val_size", 16, 100_000),
                                ("n_bootstrap", 100, 1_000_000)):
            check_range(name, getattr(self, name), low, high, integer=True)
        if self.first_instance + self.n_instances > TEST_SET_SIZE:
            raise ValueError(f"first_instance + n_instances must be <= {TEST_SET_SIZE} (test instances), got "
                             f"{self.first_instance + self.n_instances}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if not 0.0 <= self.p_llm <= 1.0:
            raise ValueError(f"p_llm must be in [0, 1], got {self.p_llm!r}")
        if "rl_policy" in self.methods and self.policy is None:
            from traingym.agents.pretrained import shipped_agent_for

            shipped = shipped_agent_for(self.env_id)
            if shipped is None:
                raise ValueError(f"methods rl_policy needs policy (a saved agent of {self.env_id}: run directory or "
                                 "model .zip); no agent is shipped for it. Or leave rl_policy out of methods")
            object.__setattr__(self, "policy", shipped)

    @property
    def indices(self) -> tuple[int, ...]:
        return tuple(range(self.first_instance, self.first_instance + self.n_instances))

    @property
    def steps_per_run(self) -> int:
        return self.horizon * self.steps_per_action

    def hpo_config(self, sampler: str, index: int) -> HPOConfig:
        return HPOConfig(env_id=self.env_id, instance_set="test", instance_index=index, seed=index,
                         n_trials=max(self.budgets), horizon=self.horizon, steps_per_action=self.steps_per_action,
                         optimizer=self.optimizer, val_size=self.val_size, sampler=sampler, advisor=self.advisor,
                         p_llm=self.p_llm, sampler_seed=self.sampler_seed + index)


@dataclass
class Comparison:
    """Per-instance rows, the aggregated table and the notes on skipped methods."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    table: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------ running
def run_comparison(config: CompareConfig, log: Any = print) -> Comparison:
    """Run (or resume) every method on every instance, then aggregate, plot and write the outputs."""
    import torch

    torch.set_num_threads(1)
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows_path = out / "per_instance.jsonl"
    result = Comparison(rows=_resume(out, config))
    done = {(r["method"], r["instance_index"]) for r in result.rows}
    (out / "config.json").write_text(json.dumps(asdict(config), indent=1))

    def keep_rows(new: list[dict[str, Any]]) -> None:
        with rows_path.open("a") as handle:
            for row in new:
                handle.write(json.dumps(row) + "\n")
        result.rows.extend(new)

    static = [m for m in ("keep", "tpe", "llm_tpe") if m in config.methods]
    if static:
        env = config.hpo_config("tpe", config.first_instance).make_env()
        try:
            for index in config.indices:
                for method in static:
                    if (method, index) in done:
                        continue
                    started = time.perf_counter()
                    new = _static_rows(config, method, index, env)
                    keep_rows(new)
                    log(f"[hpo-compare] instance {index} {method}: "
                        + ", ".join(f"{r['label']} test={r['test_accuracy']:.3f}" for r in new)
                        + f" ({time.perf_counter() - started:.0f}s)")
        finally:
            env.close()
    for method in ("good_defaults", "rl_policy"):
        if method not in config.methods:
            continue
        todo = tuple(i for i in config.indices if (method, i) not in done)
        if not todo:
            continue
        new, note = _policy_rows(config, method, todo)
        if note:
            result.notes.append(note)
            log(f"[hpo-compare] {note}")
        keep_rows(new)
    result.table = aggregate(result.rows, config)
    write_outputs(result, config)
    return result


RESULT_FIELDS = ("env_id", "budgets", "horizon", "steps_per_action", "optimizer", "val_size", "advisor", "p_llm",
                 "sampler_seed")
"""Settings that change per-instance results; ``methods``, ``policy`` (rl_policy rows only), the instance range,
``out_dir`` and ``n_bootstrap`` may change between resumed runs."""


def _resume(out: Path, config: CompareConfig) -> list[dict[str, Any]]:
    """Rows of an earlier run with the same result-defining settings (else start afresh).

    Rows of instances outside the current range are kept in the file but not used; rl_policy rows are dropped
    when the agent changed.
    """
    rows_path, config_path = out / "per_instance.jsonl", out / "config.json"
    if not rows_path.exists():
        return []
    before = json.loads(config_path.read_text()) if config_path.exists() else {}
    now = json.loads(json.dumps(asdict(config)))
    if any(before.get(k) != now[k] for k in RESULT_FIELDS):
        rows_path.unlink()
        return []
    rows = [json.loads(line) for line in rows_path.read_text().splitlines() if line.strip()]
    if before.get("policy") != config.policy:
        rows = [r for r in rows if r["method"] != "rl_policy"]
        rows_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    wanted = set(config.indices)
    return [row for row in rows if row["instance_index"] in wanted]


def _static_rows(config: CompareConfig, method: str, index: int, env: Any) -> list[dict[str, Any]]:
    base = {"method": method, "instance_index": index, "seed": index}
    if method == "keep":
        run = keep_run(config.hpo_config("tpe", index), env)
        return [{**base, "label": "keep", "n_trials": 1, "test_accuracy": run.test_accuracy,
                 "val_accuracy": run.val_accuracy, "optimizer_steps": config.steps_per_run,
                 "optimizer_steps_run": run.optimizer_steps_run, "diverged": run.diverged}]
    study = run_study(config.hpo_config(method, index), env=env)
    rows = []
    for n in config.budgets:
        best = study.best_at(n)
        head = study.trials[:n]
        row = {**base, "label": f"{LABELS[method]}-{n}", "n_trials": n, "test_accuracy": best.best_test_accuracy,
               "val_accuracy": best.best_val_accuracy, "optimizer_steps": best.optimizer_steps,
               "optimizer_steps_run": best.optimizer_steps_run, "best_params": best.best_params,
               "diverged_trials": sum(t.diverged for t in head)}
        if method == "llm_tpe":
            row["llm_trials"] = sum(t.proposer == "llm" for t in head)
            row["fallbacks"] = sum(t.proposer == "tpe_fallback" for t in head)
        rows.append(row)
    if study.sampler_stats is not None:
        rows[-1]["sampler_stats"] = study.sampler_stats  # counters of the whole (max-budget) study
    return rows


def _policy_rows(config: CompareConfig, method: str, indices: tuple[int, ...]
                 ) -> tuple[list[dict[str, Any]], str | None]:
    """Run the RL agent or the good-defaults baseline through the evaluation module's episode loop."""
    target = config.policy if method == "rl_policy" else "good_defaults"
    spec = PolicySpec(LABELS[method], str(target), seed=0)
    settings = EpisodeSettings(env_id=config.env_id, horizon=config.horizon,
                               steps_per_action=config.steps_per_action, instance_indices=indices,
                               instance_set="test")
    try:
        episodes = run_policy(spec, settings)
    except Exception as error:  # noqa: BLE001 - a missing agent or tuned defaults must not lose the other rows
        return [], f"{method} skipped: {type(error).__name__}: {str(error)[:200]}"
    note = None
    if method == "rl_policy":
        note = _training_mismatch(config)
    rows = [{"method": method, "instance_index": e.instance_index, "seed": e.seed, "label": LABELS[method],
             "n_trials": 1, "test_accuracy": e.test_accuracy, "val_accuracy": e.val_accuracy[-1],
             "optimizer_steps": config.steps_per_run, "optimizer_steps_run": e.steps * config.steps_per_action,
             "diverged": e.diverged} for e in episodes]
    return rows, note


def _training_mismatch(config: CompareConfig) -> str | None:
    """A note when the agent was trained on another env, horizon or K than it is compared on."""
    from traingym.agents.pretrained import resolve_agent_path

    try:
        trained = find_run_config(resolve_agent_path(str(config.policy)))["args"]
    except (FileNotFoundError, KeyError, ValueError):
        return None
    here = {"env": config.env_id, "horizon": config.horizon, "steps_per_action": config.steps_per_action}
    differs = {k: trained.get(k) for k, v in here.items() if trained.get(k) is not None and trained.get(k) != v}
    if not differs:
        return None
    return f"rl_policy was trained with {differs} but is compared with { {k: here[k] for k in differs} }"


# ------------------------------------------------------------------------------------------------ aggregating
def aggregate(rows: Sequence[dict[str, Any]], config: CompareConfig) -> list[dict[str, Any]]:
    """One table row per method label: mean test accuracy with its 95% CI, compute, and the paired mean
    difference to ``keep`` on the instances both ran."""
    order = [(m, n) for m in config.methods for n in ((1,) if m not in ("tpe", "llm_tpe") else config.budgets)]
    keep = {r["instance_index"]: r["test_accuracy"] for r in rows if r["method"] == "keep"}
    table = []
    for method, n in order:
        group = sorted((r for r in rows if r["method"] == method and r["n_trials"] == n),
                       key=lambda r: r["instance_index"])
        if not group:
            continue
        acc = [r["test_accuracy"] for r in group]
        mean, low, high = _interval(acc, config.n_bootstrap)
        paired = [r["test_accuracy"] - keep[r["instance_index"]] for r in group if r["instance_index"] in keep]
        d_mean: float | None
        d_low: float | None
        d_high: float | None
        if method == "keep":
            d_mean, d_low, d_high = 0.0, 0.0, 0.0
        elif paired:
            d_mean, d_low, d_high = _interval(paired, config.n_bootstrap)
        else:  # keep was not run
            d_mean = d_low = d_high = None
        entry = {"method": group[0]["label"], "n_trials": n, "n_instances": len(group),
                 "test_acc_mean": round(mean, 4), "test_acc_ci_low": round(low, 4),
                 "test_acc_ci_high": round(high, 4),
                 "val_acc_mean": round(float(np.mean([r["val_accuracy"] for r in group])), 4),
                 "optimizer_steps": int(round(float(np.mean([r["optimizer_steps"] for r in group])))),
                 "optimizer_steps_run": int(round(float(np.mean([r["optimizer_steps_run"] for r in group])))),
                 "delta_vs_keep": _round(d_mean), "delta_ci_low": _round(d_low), "delta_ci_high": _round(d_high)}
        if method == "llm_tpe":
            entry["llm_trials"] = int(sum(r.get("llm_trials", 0) for r in group))
            entry["fallbacks"] = int(sum(r.get("fallbacks", 0) for r in group))
            tpe = {r["instance_index"]: r["test_accuracy"] for r in rows if r["method"] == "tpe" and r["n_trials"] == n}
            paired = [r["test_accuracy"] - tpe[r["instance_index"]] for r in group if r["instance_index"] in tpe]
            if paired:
                delta = _interval(paired, config.n_bootstrap)
                entry.update(delta_vs_tpe=round(delta[0], 4), delta_vs_tpe_ci_low=round(delta[1], 4),
                             delta_vs_tpe_ci_high=round(delta[2], 4))
        table.append(entry)
    return table


def _interval(values: list[float], n_boot: int) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean and its 95% percentile-bootstrap CI (seed 0)."""
    ci: Interval = bootstrap_mean(values, seed=0, n_boot=n_boot)
    return ci.mean, ci.low, ci.high


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def write_outputs(result: Comparison, config: CompareConfig) -> None:
    """``table.csv``, ``table.json`` (with the notes and totals of the advisor counters) and the plot."""
    import pandas as pd

    out = Path(config.out_dir)
    frame = pd.DataFrame(result.table)
    frame.to_csv(out / "table.csv", index=False)
    totals: dict[str, Any] = {}
    for row in result.rows:
        for key, value in (row.get("sampler_stats") or {}).items():
            if isinstance(value, dict):
                bucket = totals.setdefault(key, {})
                for k, v in value.items():
                    bucket[k] = bucket.get(k, 0) + v
            else:
                totals[key] = totals.get(key, 0) + value
    (out / "table.json").write_text(json.dumps({"config": asdict(config), "table": result.table,
                                                "llm_tpe_totals": totals, "notes": result.notes}, indent=1))
    plot_accuracy_vs_compute(result.table, out / "accuracy_vs_compute.png", config)


def plot_accuracy_vs_compute(table: Sequence[dict[str, Any]], path: Path, config: CompareConfig) -> None:
    """Mean test accuracy vs optimizer steps per instance (log x), 95% bootstrap CI error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    styles = {"TPE": ("tab:blue", "o", 0.96), "LLM-TPE": ("tab:orange", "s", 1.04)}
    for family, (color, marker, shift) in styles.items():
        rows = [r for r in table if r["method"].rsplit("-", 1)[0] == family and r["method"] != "keep"]
        if not rows:
            continue
        x = np.array([r["optimizer_steps"] for r in rows], dtype=float) * shift  # shift: keep bars apart
        y = np.array([r["test_acc_mean"] for r in rows])
        err = np.array([[r["test_acc_mean"] - r["test_acc_ci_low"] for r in rows],
                        [r["test_acc_ci_high"] - r["test_acc_mean"] for r in rows]])
        ax.errorbar(x, y, yerr=err, color=color, marker=marker, capsize=3, label=f"{family}-N (N={config.budgets})")
    singles = {"keep": ("gray", "x"), "good defaults": ("tab:green", "^"), "RL policy": ("tab:red", "*")}
    for label, (color, marker) in singles.items():
        for r in (r for r in table if r["method"] == label):
            ax.errorbar([r["optimizer_steps"]], [r["test_acc_mean"]], capsize=3, color=color, marker=marker,
                        markersize=9, linestyle="none", label=label,
                        yerr=[[r["test_acc_mean"] - r["test_acc_ci_low"]],
                              [r["test_acc_ci_high"] - r["test_acc_mean"]]])
    ax.set_xscale("log")
    ax.set_xlabel("target-network optimizer steps per instance (log)")
    ax.set_ylabel("final test accuracy (mean, 95% bootstrap CI)")
    n = max((r["n_instances"] for r in table), default=0)
    ax.set_title(f"{config.env_id}: {n} held-out instances, T={config.horizon}, K={config.steps_per_action}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def format_table(table: Sequence[dict[str, Any]]) -> str:
    """The table as printed text."""
    import pandas as pd

    frame = pd.DataFrame(table)
    if frame.empty:
        return "(no results)"
    frame["test acc [95% CI]"] = [f"{r['test_acc_mean']:.3f} [{r['test_acc_ci_low']:.3f}, "
                                  f"{r['test_acc_ci_high']:.3f}]" for r in table]
    frame["vs keep [95% CI]"] = [
        f"{r['delta_vs_keep']:+.3f} [{r['delta_ci_low']:+.3f}, {r['delta_ci_high']:+.3f}]"
        if r.get("delta_vs_keep") is not None else "n/a (keep not run)" for r in table]
    columns = ["method", "n_instances", "test acc [95% CI]", "vs keep [95% CI]", "val_acc_mean", "optimizer_steps",
               "optimizer_steps_run"]
    if "delta_vs_tpe" in frame:
        frame["LLM-TPE vs TPE [95% CI]"] = [
            f"{r['delta_vs_tpe']:+.3f} [{r['delta_vs_tpe_ci_low']:+.3f}, {r['delta_vs_tpe_ci_high']:+.3f}]"
            if "delta_vs_tpe" in r else "" for r in table]
        columns.append("LLM-TPE vs TPE [95% CI]")
    columns += [c for c in ("llm_trials", "fallbacks") if c in frame]
    return frame[columns].to_string(index=False)
