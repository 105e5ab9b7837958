"""Paired evaluation of agents and baselines on the held-out instances.

CLI::

    python -m traingym.agents.evaluate --policies runs/ppo keep random step_decay plateau --episodes 64

Every policy runs instance ``i`` of the held-out set with ``reset(seed=i)``; the table gives, per policy, the
mean final test accuracy with a 95% bootstrap CI, the mean area under the validation-accuracy curve, the
divergence rate and the paired difference in final test accuracy to the reference policy (with a bootstrap CI
over instances). Results go to ``eval.csv``, ``eval.json``, ``episodes.jsonl`` and ``eval.png``.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from traingym.agents.baselines import BASELINES
from traingym.agents.episodes import EpisodeResult, EpisodeSettings, run_policy
from traingym.agents.policies import PolicySpec
from traingym.agents.stats import Interval, bootstrap_mean, paired_difference
from traingym.agents.tuned_defaults import TunedValues
from traingym.envs.config import TrainingEnvConfig
from traingym.envs.tasks.base import TEST_SET_SIZE
from traingym.protocol.checks import check_range
from traingym.protocol.cli import StrTuple, parse_cli, usage_error
from traingym.protocol.run_files import EPISODES_FILE, EVAL_CSV, EVAL_JSON


@dataclass(frozen=True)
class PolicySummary:
    """One row of the evaluation table."""

    policy: str
    episodes: int
    test_accuracy: Interval
    val_auc: Interval
    divergence_rate: float
    diff_vs_reference: Interval | None
    """Paired mean difference in final test accuracy, policy minus reference (None for the reference)."""
    win_rate: float | None
    """Fraction of instances where the policy's final test accuracy beats the reference's."""

    def row(self) -> dict[str, Any]:
        """A flat dict for CSV."""
        d = self.diff_vs_reference
        return {"policy": self.policy, "episodes": self.episodes,
                "test_accuracy": self.test_accuracy.mean, "test_accuracy_ci_low": self.test_accuracy.low,
                "test_accuracy_ci_high": self.test_accuracy.high, "val_auc": self.val_auc.mean,
                "val_auc_ci_low": self.val_auc.low, "val_auc_ci_high": self.val_auc.high,
                "divergence_rate": self.divergence_rate,
                "diff_vs_reference": None if d is None else d.mean,
                "diff_ci_low": None if d is None else d.low, "diff_ci_high": None if d is None else d.high,
                "win_rate": self.win_rate}


def evaluate(specs: Sequence[PolicySpec], settings: EpisodeSettings, workers: int = 1
             ) -> dict[str, list[EpisodeResult]]:
    """Run every policy on every instance of ``settings``; results per policy label, in instance order.

    With ``workers > 1`` the (policy, instance chunk) jobs run in a process pool; results are identical to a
    serial run because each episode depends only on its policy, instance and seed.
    """
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"policy labels must be distinct, got {labels}")
    indices = settings.instance_indices
    chunks = [tuple(indices[i::workers]) for i in range(workers)] if workers > 1 else [tuple(indices)]
    jobs = [(spec, chunk) for spec in specs for chunk in chunks if chunk]
    if workers > 1:
        context = multiprocessing.get_context("forkserver" if sys.platform != "win32" else "spawn")
        # One torch thread per worker process (the workers share the cores): the policies' forward passes too, not
        # only the envs' own work.
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=torch.set_num_threads,
                                 initargs=(1,)) as pool:
            outputs = list(pool.map(run_policy, [s for s, _ in jobs], [settings] * len(jobs), [c for _, c in jobs]))
    else:
        outputs = [run_policy(spec, settings, chunk) for spec, chunk in jobs]
    results: dict[str, list[EpisodeResult]] = {label: [] for label in labels}
    for (spec, _), episodes in zip(jobs, outputs):
        results[spec.label].extend(episodes)
    order = {index: k for k, index in enumerate(indices)}
    for episodes in results.values():
        episodes.sort(key=lambda e: order[e.instance_index])
    return results


def summarize(results: dict[str, list[EpisodeResult]], reference: str | None = None, seed: int = 0
              ) -> list[PolicySummary]:
    """Per-policy statistics; paired differences against ``reference`` (default: the first policy)."""
    if not results:
        return []
    reference = reference or next(iter(results))
    if reference not in results:
        raise ValueError(f"reference policy {reference!r} is not among the evaluated policies {list(results)}")
    ref = np.array([e.test_accuracy for e in results[reference]])
    summaries = []
    for label, episodes in results.items():
        test = np.array([e.test_accuracy for e in episodes])
        diff = win = None
        if label != reference:
            diff = paired_difference(test, ref, seed)
            win = float(np.mean(test > ref))
        summaries.append(PolicySummary(
            label, len(episodes), bootstrap_mean(test, seed), bootstrap_mean([e.val_auc for e in episodes], seed),
            float(np.mean([e.diverged for e in episodes])), diff, win))
    return summaries


def print_table(summaries: Sequence[PolicySummary], reference: str, title: str = "Held-out evaluation") -> None:
    """The summary table, printed with rich."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in ("policy", "n", "final test acc [95% CI]", "val-acc AUC", "diverged",
                   f"Δ test acc vs {reference} [95% CI]", "wins"):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for s in summaries:
        diff = "—" if s.diff_vs_reference is None else s.diff_vs_reference.format(signed=True)
        wins = "—" if s.win_rate is None else f"{s.win_rate:.0%}"
        table.add_row(s.policy, str(s.episodes), s.test_accuracy.format(), f"{s.val_auc.mean:.3f}",
                      f"{s.divergence_rate:.0%}", diff, wins)
    Console(width=160).print(table)


def write_outputs(out_dir: str | Path, settings: EpisodeSettings, results: dict[str, list[EpisodeResult]],
                  summaries: Sequence[PolicySummary], reference: str, plot: bool = True) -> dict[str, Path]:
    """``eval.csv`` (table), ``eval.json`` (settings, table, per-episode numbers), ``episodes.jsonl`` (per-step
    hyperparameter trajectories and moves) and, with ``plot``, ``eval.png``, ``hparam_trajectories.png`` and
    ``move_frequencies.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / EVAL_CSV, "json": out / EVAL_JSON, "episodes": out / EPISODES_FILE}
    rows = [s.row() for s in summaries]
    with open(paths["csv"], "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    settings_json = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(settings).items()}
    paths["json"].write_text(json.dumps({
        "settings": settings_json, "reference": reference, "summary": rows,
        "episodes": {label: [e.scalars() for e in eps] for label, eps in results.items()}}, indent=1) + "\n")
    with open(paths["episodes"], "w") as handle:
        for episodes in results.values():
            for e in episodes:
                handle.write(json.dumps({**e.scalars(), "lr": e.lr, "weight_decay": e.weight_decay,
                                         "aug_level": e.aug_level, "val_accuracy": e.val_accuracy,
                                         "train_loss": e.train_loss, "val_loss": e.val_loss,
                                         "train_acc": e.train_acc, "moves": e.moves}) + "\n")
    if plot:
        from traingym.agents import plots

        paths["plot"] = plots.plot_evaluation(results, summaries, out / "eval.png")
        paths["hparams"] = plots.plot_hparam_trajectories(results, out / "hparam_trajectories.png")
        paths["moves"] = plots.plot_move_frequencies(results, out / "move_frequencies.png")
    return paths


@dataclass(frozen=True)
class EvalArgs:
    """Evaluate agents and baselines on the same held-out instances (paired), with bootstrap CIs."""

    policies: StrTuple = ("keep", "random", "step_decay", "plateau")
    """Policies: baseline names (keep, random, step_decay, plateau, advisor_greedy, steer, good_defaults) and/or saved
    agents (run directory or model .zip), optionally labelled as label=target."""
    reference: str = "keep"
    """Label of the reference policy for paired differences."""
    env: str = "TrainGym/DigitsMLP-v0"
    """Gymnasium id of the TrainGym environment."""
    task: str | None = None
    """Your own task family for --env TrainGym/Custom-v0 ('package.module:ClassName', as train_agent.py --task)."""
    tune_baselines: bool = True
    """For a family without tuned defaults in the package: sweep them for steer / good_defaults (short, cached);
    False: leave those two out."""
    episodes: int = 64
    """Held-out instances 0..episodes-1 (at most the 128 of the held-out set)."""
    horizon: int = TrainingEnvConfig.horizon
    """Env steps per episode (T)."""
    steps_per_action: int = TrainingEnvConfig.steps_per_action
    """Optimizer steps per env step (K)."""
    advisor: str | None = None
    """Advisor spec for policies that use the diagnosis channel (advisor_greedy, agents trained with one)."""
    agent_model: Literal["final", "best"] = "final"
    """For run directories: evaluate the final model or the best periodic-evaluation model (final, best)."""
    seed: int = 0
    """Seed of the random baseline and of the bootstrap."""
    workers: int = 0
    """Processes; 0: min(2, os.cpu_count())."""
    out_dir: str = "runs/eval"
    """Where to write eval.csv, eval.json, episodes.jsonl and the plots."""
    export_trajectories: str | None = None
    """Also write one JSON Lines record per step (report, diagnosis, move, reward, outcome) to this path."""
    plot: bool = True
    """Write PNG plots."""

    def __post_init__(self) -> None:
        import os

        import gymnasium as gym
        import traingym.envs  # noqa: F401

        if self.env not in gym.registry:
            raise ValueError(f"--env must be a registered TrainGym id, got {self.env!r}")
        from traingym.envs.custom import check_task_option

        check_task_option(self.env, self.task)
        if not self.policies:
            raise ValueError("--policies needs at least one policy")
        for name, value, low, high in (("episodes", self.episodes, 1, TEST_SET_SIZE),
                                       ("horizon", self.horizon, 1, 10_000),
                                       ("steps-per-action", self.steps_per_action, 1, 10_000),
                                       ("workers", self.workers, 0, 64)):
            check_range(f"--{name}", value, low, high, integer=True)
        specs = self.specs()
        labels = [s.label for s in specs]
        if self.reference not in labels:
            raise ValueError(f"--reference must be one of the policy labels {labels}, got {self.reference!r}")
        for spec in specs:
            if spec.target not in BASELINES and not Path(spec.target).exists():
                raise ValueError(f"policy {spec.target!r} is neither a baseline {sorted(BASELINES)} nor a saved "
                                 "agent path")
        if self.workers == 0:
            object.__setattr__(self, "workers", min(2, os.cpu_count() or 1))

    def specs(self) -> list[PolicySpec]:
        return [PolicySpec.parse(text, self.seed) for text in self.policies]

    def settings(self, tuned: TunedValues | None = None) -> EpisodeSettings:
        return EpisodeSettings(self.env, self.horizon, self.steps_per_action, tuple(range(self.episodes)),
                               advisor=self.advisor, record_trajectories=self.export_trajectories is not None,
                               agent_model=self.agent_model, task=self.task, tuned=tuned)


def run_evaluation(specs: Sequence[PolicySpec], settings: EpisodeSettings, out_dir: str | Path, reference: str,
                   workers: int, seed: int = 0, export_trajectories: str | None = None, plot: bool = True,
                   title: str = "Held-out evaluation") -> tuple[dict[str, list[EpisodeResult]], list[PolicySummary]]:
    """Evaluate, print the table, write the outputs (and the trajectory export)."""
    results = evaluate(specs, settings, workers)
    summaries = summarize(results, reference, seed)
    print_table(summaries, reference, title)
    write_outputs(out_dir, settings, results, summaries, reference, plot)
    if export_trajectories is not None:
        from traingym.agents.trajectories import write_trajectories

        count = write_trajectories(export_trajectories, results, settings.env_id)
        print(f"wrote {count} trajectory records to {export_trajectories}")
    return results, summaries


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m traingym.agents.evaluate``."""
    from traingym.agents.tuning import prepare_baselines

    args = parse_cli(EvalArgs, argv, "python -m traingym.agents.evaluate")
    specs = args.specs()
    prepared = prepare_baselines([s.target for s in specs if s.target in BASELINES], args.env, args.task,
                                 args.horizon, args.steps_per_action, args.workers, args.tune_baselines)
    specs = [s for s in specs if s.target not in BASELINES or s.target in prepared.names]
    if args.reference not in [s.label for s in specs]:
        usage_error("python -m traingym.agents.evaluate", f"--reference {args.reference} was left out (see above)")
    run_evaluation(specs, args.settings(prepared.tuned), args.out_dir, args.reference, args.workers, args.seed,
                   args.export_trajectories, args.plot)
    from traingym.report import write_report

    print(f"results in {args.out_dir}; run report: {write_report(args.out_dir)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
