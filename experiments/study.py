"""Multi-seed studies of the main job, written to ``docs/results/`` (one command regenerates each table).

    python -m traingym.experiments.study default --seeds 0 1 2     # docs/results/agent_default.md
    python -m traingym.experiments.study ablation --seeds 0 1 2    # docs/results/ablation_digits_mlp.md

``default`` trains the agent of ``train_agent.py``'s defaults (:class:`traingym.agents.args.Args`) once per seed;
``ablation`` does the same for each observation-key subset (and for the neuron features without VecNormalize,
``-raw``). Then every agent and the baselines run the same held-out instances (paired; baselines once, they do
not depend on the agent seed except ``random``), and the page gives, per agent seed, the mean final test accuracy
and the paired differences to each baseline with 95% bootstrap CIs over instances. Runs live under
``<out-dir>/<preset>/``; a run whose ``model.zip`` exists is reused, so an interrupted study continues where it
stopped.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from traingym.agents.args import SMOKE_PRESET, Args
from traingym.agents.episodes import EpisodeResult, EpisodeSettings
from traingym.agents.evaluate import evaluate, print_table, summarize
from traingym.agents.policies import PolicySpec
from traingym.agents.stats import bootstrap_mean, paired_difference
from traingym.envs.tasks.base import TEST_SET_SIZE
from traingym.experiments.information_gap import pathologies
from traingym.protocol.checks import check_range
from traingym.protocol.cli import IntTuple, StrTuple

Preset = Literal["default", "ablation", "generalisation", "pathologies", "pathologies_ablation",
                 "pathologies_kickstart", "pathologies_kickstart_128", "default_kickstart", "patch_pathologies",
                 "patch_pathologies_ppo"]
ALL_KNOBS = ("lr", "weight_decay", "aug_level", "neuron_scale")
GENERALISATION_TRAIN_ENVS = ("TrainGym/DigitsMLP-v0", "TrainGym/DigitsCNN-v0", "TrainGym/TabularMLP-v0")
"""The families the generalisation agent trains on (together); it is evaluated on MNISTCNN, which it never saw."""
PRESET_VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "default": {"default": {}},
    "ablation": {"training_stats": {"obs_keys": ("training_stats",)},
                 "training_stats+neurons": {"obs_keys": ("training_stats", "neurons")},
                 # The same keys with the neuron features left out of VecNormalize: whether normalising sparse,
                 # bursty features (padded layer slots, rare events) is what costs the agent.
                 "training_stats+neurons-raw": {"obs_keys": ("training_stats", "neurons"),
                                                "norm_obs_keys": ("training_stats",)},
                 "training_stats+neurons+diagnosis": {"obs_keys": ("training_stats", "neurons", "diagnosis")}},
    "generalisation": {"digits_mlp+digits_cnn+tabular_mlp": {"train_envs": GENERALISATION_TRAIN_ENVS,
                                                              "vec_env": "subproc"}},
    # Where the neurons and the diagnosis should matter: the same budget and settings, all four knobs, the
    # observation differs. The diagnosis text is projected to 8 dims and only training_stats is normalised (the
    # sparse neuron and one-hot features raw): docs/results/agent_candidate.md, ablation_digits_mlp.md.
    "pathologies": {"training_stats": {"obs_keys": ("training_stats",), "knobs": ALL_KNOBS},
                    "training_stats+neurons+diagnosis": {
                        "obs_keys": ("training_stats", "neurons", "diagnosis"), "knobs": ALL_KNOBS,
                        "diagnosis_dim": 8, "norm_obs_keys": ("training_stats",)}},
}
LONG_SUFFIX = "-30k"
"""Name suffix of the pathology ablation's longer-budget variants (compared with training_stats of that budget)."""
# The observation ablation on the mixture: the pathologies preset's two variants and the two in between, with the
# same settings (the new variants train first; the shared ones are the pathologies preset's runs, see PRESET_RUNS).
PRESET_VARIANTS["pathologies_ablation"] = {
    "training_stats+neurons": {"obs_keys": ("training_stats", "neurons"), "knobs": ALL_KNOBS,
                               "norm_obs_keys": ("training_stats",)},
    "training_stats+diagnosis": {**PRESET_VARIANTS["pathologies"]["training_stats+neurons+diagnosis"],
                                 "obs_keys": ("training_stats", "diagnosis")},
    **PRESET_VARIANTS["pathologies"],
    # Is it the budget? The same two variants with three times the env steps.
    **{f"{name}{LONG_SUFFIX}": {**overrides, "total_timesteps": 30_000}
       for name, overrides in PRESET_VARIANTS["pathologies"].items()}}
KICKSTART_SUFFIX = "-kickstart"
"""Name suffix of variants that first imitate the diagnosis-aware controller (compared with training_stats kickstarted
the same way)."""
# Both agents of the pathologies preset, each first fitted to the diagnosis-aware controller's moves from what it
# observes (traingym.agents.kickstart), the demonstrations counted in the same 10k env steps.
# Candidate fine-tuning settings (chosen on TRAIN draws, --instance-set sampled): the main job's PPO settings; a
# smaller step without the entropy bonus (the imitated policy is near deterministic); no RL at all (imitation only);
# the smaller step inside a KL trust region around the policy of each rollout; imitation only, by DAgger in 4 rounds.
# Then kickstarting's decaying imitation term during RL (--demo-coef), with the smaller step, and inside the trust
# region too.
FINE_TUNING: dict[str, dict[str, Any]] = {"": {}, "-lr3e-4": {"learning_rate": 3e-4, "ent_coef": 0.0},
                                          "-only": {"total_timesteps": 960},
                                          "-kl": {"learning_rate": 3e-4, "ent_coef": 0.0, "target_kl": 0.01},
                                          "-dagger": {"total_timesteps": 960, "kickstart_rounds": 4},
                                          "-demo": {"learning_rate": 3e-4, "ent_coef": 0.0, "demo_coef": 1.0},
                                          "-demo-kl": {"learning_rate": 3e-4, "ent_coef": 0.0, "demo_coef": 1.0,
                                                       "target_kl": 0.01}}
PRESET_VARIANTS["pathologies_kickstart"] = {
    f"{name}{KICKSTART_SUFFIX}{tuning}": {**overrides, "kickstart": "diagnosis_aware", **settings}
    for tuning, settings in FINE_TUNING.items() for name, overrides in PRESET_VARIANTS["pathologies"].items()}
# The candidates that kept the imitated behaviour best on TRAIN draws (imitation only; the demonstration term, above
# both trust-region variants there; DAgger, which lifts the stats-only agent), on all 128 held-out instances (those
# of the information-gap page): the 64 of the other presets hold only 10 spurious instances, where the findings
# matter most.
WIDE_TUNING = ("-only", "-dagger", "-demo")
PRESET_VARIANTS["pathologies_kickstart_128"] = {
    name: overrides for name, overrides in PRESET_VARIANTS["pathologies_kickstart"].items()
    if any(name.endswith(f"{KICKSTART_SUFFIX}{tuning}") for tuning in WIDE_TUNING)}
# Where the agent chooses the target of the decorrelating move (TrainGym/DigitsPatchPathologies-v0, mask_grid: a
# patch shortcut in one cell, the cell the agent's fifth action entry): the same two agents, imitating the
# diagnosis-aware controller by DAgger (the candidate that kept the imitation best on the ring mixture), with its
# 48 demonstration episodes, and with 192 and 384: 48 hold about ten spurious runs, too few to show each of the 16
# cells (the agent then picks cells it saw). Between 192 and 384 the TRAIN draws choose (--instance-set sampled).
PATCH_DAGGER: dict[str, dict[str, Any]] = {
    "-dagger": FINE_TUNING["-dagger"],
    **{f"-dagger-{n}": {"total_timesteps": 20 * n, "kickstart_rounds": 4, "kickstart_episodes": n} for n in (192, 384)}}
PRESET_VARIANTS["patch_pathologies"] = {
    f"{name}{KICKSTART_SUFFIX}{tuning}": {**overrides, "kickstart": "diagnosis_aware", **settings}
    for tuning, settings in PATCH_DAGGER.items() for name, overrides in PRESET_VARIANTS["pathologies"].items()}
# ... and both by PPO alone, from reward (the pathologies preset's settings: 10k env steps, no demonstrations).
PRESET_VARIANTS["patch_pathologies_ppo"] = dict(PRESET_VARIANTS["pathologies"])
# The main job with and without imitating steer first (the same 10k env steps).
PRESET_VARIANTS["default_kickstart"] = {"default": {}, "kickstart-steer": {"kickstart": "steer"}}
"""Per preset: agent variants, each as ``Args`` overrides of the main job's defaults."""
RESULT_PAGES: dict[str, tuple[str, str]] = {
    "default": ("agent_default", "Main job (train_agent.py defaults) on held-out instances, per agent seed"),
    "default_kickstart": ("agent_default_kickstart", "Main job with and without imitating steer first, held-out "
                                                     "instances, per agent seed"),
    "ablation": ("ablation_digits_mlp", "Observation-key ablation of the main job on held-out instances"),
    "pathologies": ("agent_pathologies", "Agents on the pathology mixture: training_stats alone against "
                                         "training_stats + neurons + diagnosis, held-out instances"),
    "pathologies_ablation": ("ablation_pathologies", "Observation-key ablation on the pathology mixture, held-out "
                                                     "instances"),
    "pathologies_kickstart": ("agent_pathologies_kickstart", "Agents on the pathology mixture kickstarted from the "
                                                             "diagnosis-aware controller, held-out instances"),
    "pathologies_kickstart_128": ("agent_pathologies_kickstart_128", "Kickstarted agents that keep the imitated "
                                  "behaviour, on all 128 held-out instances of the pathology mixture"),
    "generalisation": ("agent_generalisation", "One agent trained on DigitsMLP + DigitsCNN + TabularMLP, evaluated on "
                                               "held-out MNISTCNN (a family it never saw)"),
    "patch_pathologies": ("agent_patch_pathologies", "Agents that choose the cell to decorrelate, on the patch "
                                                     "mixture: training_stats alone against the full observation"),
    "patch_pathologies_ppo": ("agent_patch_pathologies_ppo", "PPO alone on the patch mixture, choosing the cell "
                                                             "to decorrelate: training_stats against the full "
                                                             "observation"),
}
PRESET_ENV: dict[str, str] = {"generalisation": "TrainGym/MNISTCNN-v0",
                              "pathologies": "TrainGym/DigitsPathologies-v0",
                              "pathologies_ablation": "TrainGym/DigitsPathologies-v0",
                              "pathologies_kickstart": "TrainGym/DigitsPathologies-v0",
                              "pathologies_kickstart_128": "TrainGym/DigitsPathologies-v0",
                              "patch_pathologies": "TrainGym/DigitsPatchPathologies-v0",
                              "patch_pathologies_ppo": "TrainGym/DigitsPatchPathologies-v0"}
"""The evaluation env per preset (others: DigitsMLP)."""
PRESET_BASELINES: dict[str, tuple[str, ...]] = {"generalisation": ("keep", "plateau", "steer"),
                                                "pathologies": ("keep", "good_defaults", "steer", "diagnosis_aware",
                                                                "diagnosis_aware_defaults"),
}
"""The baselines per preset (others: keep, random, step_decay, plateau, steer)."""
for _preset in ("pathologies_ablation", "pathologies_kickstart", "pathologies_kickstart_128", "patch_pathologies",
                "patch_pathologies_ppo"):
    PRESET_BASELINES[_preset] = PRESET_BASELINES["pathologies"]
PRESET_RUNS: dict[str, str] = {"pathologies_ablation": "pathologies", "pathologies_kickstart": "pathologies",
                               "pathologies_kickstart_128": "pathologies", "default_kickstart": "default",
                               "patch_pathologies_ppo": "patch_pathologies"}
"""Presets whose runs and evaluated episodes live in another preset's folder: a variant with the same name and
settings is the same training run, trained once."""
COMPARED_PRESETS: tuple[str, ...] = (*PRESET_RUNS, *PRESET_RUNS.values(), "patch_pathologies")
"""Presets whose page compares each variant with its ``training_stats`` counterpart, seed by seed."""
DEFAULT_EVAL_EPISODES = 64
NO_RELEVANCE_SUFFIX = "-no-relevance"
"""Suffix of the episode cache folder of a ``--no-relevance`` evaluation (the folder without it: as trained)."""
PRESET_EVAL_EPISODES: dict[str, int] = {"pathologies_kickstart_128": TEST_SET_SIZE, "patch_pathologies": TEST_SET_SIZE,
                                        "patch_pathologies_ppo": TEST_SET_SIZE}
"""Held-out instances per preset (others: DEFAULT_EVAL_EPISODES)."""
AGENTS_PAGE = ("agent_candidate", "Agents trained elsewhere (a candidate configuration) on held-out instances")
"""The page of a study of existing runs (``--agents``): not the main job's defaults, so not agent_default."""
TUNING_PAGE = ("agent_tuning", "Candidate agents on fresh draws from the TRAIN distribution (tuning, no held-out "
                               "instance)")
"""The page of ``--agents ... --instance-set sampled``: choosing between candidates without the held-out set."""
BAR_BASELINES = ("keep", "step_decay", "plateau")
"""Every agent seed must beat these with the paired 95% CI above zero (issue 13's bar)."""
BAR_STEER_MARGIN = 0.01
"""... and the mean over seeds must be within this of ``steer`` (or above)."""


@dataclass(frozen=True)
class StudyArgs:
    """Train the main job's agent with several seeds (per preset variant) and evaluate all of them against the
    baselines on the same held-out instances; writes docs/results/<page>.md."""

    preset: Preset = "default"
    """default: train_agent.py's defaults; ablation: its observation-key subsets; generalisation: one agent trained
    on DigitsMLP + DigitsCNN + TabularMLP together, evaluated on MNISTCNN."""
    seeds: IntTuple = (0, 1, 2)
    """Agent seeds (one training run each per variant)."""
    env: str = ""
    """Gymnasium id of the TrainGym environment the agents are evaluated (and, unless the preset says otherwise,
    trained) on; empty: the preset's (generalisation: TrainGym/MNISTCNN-v0, else TrainGym/DigitsMLP-v0)."""
    baselines: StrTuple = ()
    """Baselines evaluated on the same instances; empty: the preset's (generalisation: keep, plateau, steer; else
    keep, random, step_decay, plateau, steer)."""
    eval_episodes: int | None = None
    """Held-out instances 0..n-1; None: the preset's (pathologies_kickstart_128: all 128, else 64)."""
    total_timesteps: int | None = None
    """Override of the training budget; None: the main job's."""
    workers: int = 0
    """Evaluation processes; 0: min(2, os.cpu_count())."""
    out_dir: str = "runs/study"
    """Runs and evaluation outputs go to <out-dir>/<preset>/."""
    write_page: bool = True
    """Write docs/results/<page>.md and .json."""
    smoke: bool = False
    """train_agent.py's --smoke budget for every run (seconds, for tests)."""
    n_envs: int | None = None
    """Override of the training envs per run; None: the main job's (one per core)."""
    agents: StrTuple = ()
    """Evaluate these existing run directories (trained elsewhere, e.g. with train_agent.py) instead of training,
    grouped into variants by their train_agent.py command without the seed; seed and training time are read
    from the run."""
    instance_set: Literal["test", "sampled"] = "test"
    """test: the held-out instances (reported results); sampled: fresh draws from the TRAIN distribution, to tune
    (choose between candidates) without touching the held-out instances."""
    relevance: bool = True
    """Input / token relevance in the evaluation envs: what flags input features for the augmentation move, the
    neurons block and the diagnosis. ``--no-relevance``: an ablation, every policy (the agents trained with it
    included) is evaluated without it; the page name gets ``_no_relevance``."""
    page: str = ""
    """Page name under docs/results/ (letters, digits, underscores); empty: the preset's (agent_candidate for
    --agents, agent_tuning for --agents on sampled draws)."""

    def __post_init__(self) -> None:
        import os

        if not self.env:
            object.__setattr__(self, "env", PRESET_ENV.get(self.preset, "TrainGym/DigitsMLP-v0"))
        if not self.baselines:
            object.__setattr__(self, "baselines", PRESET_BASELINES.get(
                self.preset, ("keep", "random", "step_decay", "plateau", "steer")))
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"--seeds must be distinct and non-empty, got {list(self.seeds)}")
        if self.eval_episodes is None:
            object.__setattr__(self, "eval_episodes", PRESET_EVAL_EPISODES.get(self.preset, DEFAULT_EVAL_EPISODES))
        check_range("--eval-episodes", self.eval_episodes, 1, TEST_SET_SIZE, integer=True)
        if self.total_timesteps is not None and self.total_timesteps < 1:
            raise ValueError(f"--total-timesteps must be >= 1, got {self.total_timesteps}")
        if "keep" not in self.baselines:
            raise ValueError("--baselines must include keep (the reference of the printed table)")
        if self.workers == 0:
            object.__setattr__(self, "workers", min(2, os.cpu_count() or 1))
        if self.page:
            from traingym.experiments.results import check_page_name

            check_page_name("--page", self.page)

    def ablation(self) -> tuple[tuple[str, Any], ...]:
        """Env kwargs every evaluated policy gets (:attr:`EpisodeSettings.ablation`)."""
        return () if self.relevance else (("relevance", False),)

    def page_name(self) -> tuple[str, str]:
        """The page's file stem and title."""
        name, title = (RESULT_PAGES[self.preset] if not self.agents else
                       AGENTS_PAGE if self.instance_set == "test" else TUNING_PAGE)
        if self.instance_set != "test" and not self.agents:  # a preset's tuning page beside its held-out one
            name, title = f"{name}_train_draws", f"{title.replace('held-out instances', 'fresh TRAIN draws')} (tuning)"
        if not self.relevance:
            name, title = f"{name}_no_relevance", f"{title}, evaluated without relevance (ablation)"
        return self.page or name, title

    def agent_args(self, variant: str, seed: int) -> Args:
        """The main job's arguments for one training run (no periodic evaluation: the final model is judged)."""
        overrides = {**(SMOKE_PRESET if self.smoke else {}), **PRESET_VARIANTS[self.preset][variant]}
        for key in ("eval_freq", "eval_freq_episodes", "eval_episodes", "eval_workers"):
            overrides.pop(key, None)
        if self.total_timesteps is not None:
            overrides["total_timesteps"] = self.total_timesteps
        if self.n_envs is not None:
            overrides["n_envs"] = self.n_envs
        run_dir = Path(self.out_dir) / PRESET_RUNS.get(self.preset, self.preset) / "runs" / f"{variant}-seed{seed}"
        return Args(env=self.env, seed=seed, run_dir=str(run_dir), eval_freq=0, baselines=(), progress_bar=False,
                    **overrides)


def train_run(args: Args) -> float:
    """Train one agent unless its run already has a final model; returns the training seconds."""
    from traingym.agents.train import train

    run_dir = Path(args.run_dir or "")
    timing = run_dir / "study_timing.json"
    if (run_dir / "model.zip").exists() and timing.exists():
        print(f"reusing {run_dir}")
        return float(json.loads(timing.read_text())["train_seconds"])
    start = time.perf_counter()
    train(args)
    seconds = time.perf_counter() - start
    timing.write_text(json.dumps({"train_seconds": seconds}) + "\n")
    return seconds


def agent_rows(agents: dict[str, tuple[str, int, float]], results: dict[str, list[EpisodeResult]],
               baselines: Sequence[str]) -> list[dict[str, Any]]:
    """Per agent: mean test accuracy (CI), divergence rate, paired differences to each baseline (CI)."""
    rows = []
    for label, (variant, seed, seconds) in agents.items():
        test = np.array([e.test_accuracy for e in results[label]])
        diffs = {b: paired_difference(test, [e.test_accuracy for e in results[b]], seed) for b in baselines}
        rows.append({"variant": variant, "seed": seed, "label": label, "train_seconds": seconds,
                     "test_accuracy": bootstrap_mean(test, seed).__dict__,
                     "divergence_rate": float(np.mean([e.diverged for e in results[label]])),
                     "diff": {b: d.__dict__ for b, d in diffs.items()}})
    return rows


def _fmt(interval: dict[str, float], signed: bool = True) -> str:
    sign = "+" if signed else ""
    return f"{interval['mean']:{sign}.3f} [{interval['low']:{sign}.3f}, {interval['high']:{sign}.3f}]"


def markdown(study: StudyArgs, rows: list[dict[str, Any]], baseline_means: dict[str, dict[str, float]],
             baseline_divergence: dict[str, float], episodes: dict[str, list[float]] | None = None,
             labels: list[str] | None = None) -> tuple[str, dict[str, Any]]:
    """The page body (per-seed table, baselines, mean per variant, the bar, per planted pathology when
    ``labels`` name them) and its JSON summary."""
    others = [b for b in study.baselines if b != "random"]
    lines = ["| agent | seed | agent test acc [95% CI] | diverged | "
             + " | ".join(f"Δ vs {b} [95% CI]" for b in others) + " | train s |",
             "|---" * (5 + len(others)) + "|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['seed']} | {_fmt(r['test_accuracy'], False)} | "
                     f"{r['divergence_rate']:.0%} | " + " | ".join(_fmt(r['diff'][b]) for b in others)
                     + f" | {r['train_seconds']:.0f} |")
    lines += ["", "| baseline | test acc [95% CI] | diverged |", "|---|---|---|"]
    lines += [f"| {b} | {_fmt(baseline_means[b], False)} | {baseline_divergence[b]:.0%} |" for b in study.baselines]
    summary: dict[str, Any] = {}
    lines += ["", "| variant | mean over seeds | " + " | ".join(f"mean Δ vs {b}" for b in others)
              + " | issue-13 bar |", "|---" * (3 + len(others)) + "|"]
    for variant in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == variant]
        mean = float(np.mean([r["test_accuracy"]["mean"] for r in mine]))
        deltas = {b: float(np.mean([r["diff"][b]["mean"] for r in mine])) for b in others}
        beats = all(r["diff"][b]["low"] > 0 for r in mine for b in BAR_BASELINES if b in r["diff"])
        near_steer = "steer" not in deltas or deltas["steer"] >= -BAR_STEER_MARGIN
        passed = beats and near_steer
        summary[variant] = {"mean": mean, "mean_diff": deltas, "bar_passed": passed}
        lines.append(f"| {variant} | {mean:.3f} | " + " | ".join(f"{deltas[b]:+.3f}" for b in others)
                     + f" | {'passed' if passed else 'not passed'} |")
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    if labels is not None and episodes is not None and set(labels) != {"clean"}:
        lines += ["", *pathology_table(rows, study.baselines, episodes, labels, summary)]
    if study.preset in COMPARED_PRESETS:
        for variant in variants:
            suffix = next((variant[variant.index(s):] for s in (LONG_SUFFIX, KICKSTART_SUFFIX) if s in variant), "")
            reference = f"training_stats{suffix}" if f"training_stats{suffix}" in variants else variants[0]
            if variant != reference:
                lines += ["", *variant_comparison(rows, episodes, summary, reference, variant)]
    where = (f"Held-out instances 0..{study.eval_episodes - 1}" if study.instance_set == "test" else
             f"{study.eval_episodes} fresh draws (seeds 0..{study.eval_episodes - 1}) from the TRAIN distribution")
    lines += ["", f"{where} of {study.env}; the agent's final model; paired "
              "differences in final test accuracy with percentile-bootstrap CIs over instances. Bar (issue 13): "
              f"every seed beats {', '.join(BAR_BASELINES)} with the CI above zero and the mean over seeds is "
              f"within {BAR_STEER_MARGIN} of steer or better."]
    return "\n".join(lines), summary


def pathology_table(rows: list[dict[str, Any]], baselines: Sequence[str], episodes: dict[str, list[float]],
                    labels: list[str], summary: dict[str, Any]) -> list[str]:
    """Mean test accuracy per planted pathology (ground truth no policy sees): each variant's mean over seeds and
    each baseline's, so a difference between variants can be traced to the instances that carry it."""
    groups = sorted(set(labels))
    members = {g: [i for i, label in enumerate(labels) if label == g] for g in groups}
    lines = ["| policy | " + " | ".join(f"{g} (n={len(members[g])})" for g in groups) + " |",
             "|---" * (1 + len(groups)) + "|"]
    per_pathology = {}
    for name, labels_of in policy_groups(rows, baselines).items():
        per_pathology[name] = {g: float(np.mean([np.mean([episodes[label][i] for i in members[g]])
                                                 for label in labels_of])) for g in groups}
        lines.append(f"| {name} | " + " | ".join(f"{per_pathology[name][g]:.3f}" for g in groups) + " |")
    summary["per_pathology"] = per_pathology
    return ["Mean test accuracy per planted pathology (variants: mean over seeds):", "", *lines]


def policy_groups(rows: list[dict[str, Any]], baselines: Sequence[str]) -> dict[str, list[str]]:
    """The page's policies: each variant with the labels of its seeds' runs, then each baseline alone."""
    policies = {variant: [r["label"] for r in rows if r["variant"] == variant]
                for variant in dict.fromkeys(r["variant"] for r in rows)}
    policies.update({b: [b] for b in baselines})
    return policies


def ablation_gain_table(rows: list[dict[str, Any]], baselines: Sequence[str], with_it: dict[str, list[float]],
                        without: dict[str, list[float]], labels: list[str], ablation: str
                        ) -> tuple[list[str], dict[str, Any]]:
    """What the ablated feature is worth to each policy: test accuracy with it minus without it on the same
    instances (variants: the per-instance mean over seeds), overall with a bootstrap CI and per planted pathology."""
    groups = sorted(set(labels))
    members = {g: [i for i, label in enumerate(labels) if label == g] for g in groups}
    lines = [f"What the ablated feature is worth: test accuracy evaluated as trained minus with `{ablation}`, "
             "same instances (variants: mean over seeds).", "",
             "| policy | with | without | with − without [95% CI] | " + " | ".join(groups) + " |",
             "|---" * (4 + len(groups)) + "|"]
    data: dict[str, Any] = {}
    for name, labels_of in policy_groups(rows, baselines).items():
        a = np.mean([with_it[label] for label in labels_of], axis=0)
        b = np.mean([without[label] for label in labels_of], axis=0)
        diff = paired_difference(a, b)
        per_group = {g: float(np.mean(a[members[g]] - b[members[g]])) for g in groups}
        data[name] = {"with": float(a.mean()), "without": float(b.mean()), "diff": diff.__dict__,
                      "per_pathology": per_group}
        lines.append(f"| {name} | {a.mean():.3f} | {b.mean():.3f} | {diff.format(signed=True)} | "
                     + " | ".join(f"{per_group[g]:+.3f}" for g in groups) + " |")
    return lines, data


def variant_comparison(rows: list[dict[str, Any]], episodes: dict[str, list[float]] | None,
                       summary: dict[str, Any], first: str, second: str) -> list[str]:
    """Variant ``second`` against ``first``, seed by seed (paired over instances), and its mean against the
    diagnosis-aware controller's: issue 24's goal (every seed above with the CI above 0; mean within 0.01 of the
    controller or above)."""
    assert episodes is not None
    lines = [f"| seed | {second} − {first} [95% CI] |", "|---|---|"]
    every = True
    for seed in sorted({r["seed"] for r in rows}):
        a = next(r["label"] for r in rows if r["variant"] == second and r["seed"] == seed)
        b = next(r["label"] for r in rows if r["variant"] == first and r["seed"] == seed)
        diff = paired_difference(episodes[a], episodes[b], seed)
        every &= diff.low > 0
        lines.append(f"| {seed} | {diff.format(signed=True)} |")
    mean = summary[second]["mean"]
    controllers = {label: float(np.mean(episodes[label])) for label in CONTROLLERS if label in episodes}
    near = {label: mean >= value - 0.01 for label, value in controllers.items()}
    summary.setdefault("comparison", {})[second] = {
        "against": first, "every_seed_above": bool(every), "mean": mean, "controllers": controllers,
        "within_0.01_of_controller": near}
    verdict = f"Every seed of {second} above {first} with the CI above 0: {'yes' if every else 'no'}."
    if controllers:
        verdict += (f" Mean {mean:.3f} against "
                    + "; against ".join(f"{label}'s {value:.3f} ({CONTROLLERS[label]}): "
                                        f"{'within 0.01 or above' if near[label] else 'more than 0.01 below'}"
                                        for label, value in controllers.items()) + ".")
    return [*lines, "", verdict]


CONTROLLERS = {"diagnosis_aware": "moves only through the agent's actions",
               "diagnosis_aware_defaults": "also starts every instance at the tuned settings, which no action can"}
"""The diagnosis-aware hand controllers an agent with the diagnosis is measured against (issue 24, item 5)."""


NOT_TRAINING_FIELDS = ("seed", "eval_freq", "eval_freq_episodes", "eval_episodes", "eval_model", "checkpoint_freq",
                       "export_trajectories", "watch")
"""Fields that do not change what an agent learns: runs that differ only in these form one variant."""


def train_command(args: Args, also_skip: Sequence[str] = ()) -> str:
    """The ``train_agent.py`` command line that trains ``args`` (flags for the fields that differ from the
    defaults; run directory, output-only fields and ``also_skip`` left out)."""
    from dataclasses import fields

    skip = {"run_dir", "resume", "progress_bar", "tensorboard", "verbose", "eval_workers", "baselines", *also_skip}
    flags = []
    for f in fields(Args):
        value = getattr(args, f.name)
        if f.name in skip or value == f.default or _resolved_default(args, f.name, f.default):
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + f.name.replace("_", "-"))
        elif isinstance(value, tuple):
            flags.append(shlex.join([flag, *map(str, value)]))
        else:
            flags.append(f"{flag} {value}")
    return " ".join(["python train_agent.py", *flags])


def _resolved_default(args: Args, name: str, default: Any) -> bool:
    """Whether the field's default resolves to ``args``'s value given the other fields (a saved config stores
    ``vec_env="auto"`` as what it resolved to)."""
    try:
        return getattr(replace(args, **{name: default}), name) == getattr(args, name)
    except ValueError:
        return False


def existing_agent(run_dir: str) -> tuple[Args, float]:
    """The arguments and training seconds (NaN when unknown) of a run trained elsewhere."""
    from traingym.agents.train import load_run_args

    path = Path(run_dir)
    args = Args.from_json({**load_run_args(path), "run_dir": str(path)})
    timing = next((p for p in (path / "study_timing.json", path / "timing.json") if p.exists()), None)
    seconds = float(json.loads(timing.read_text())["train_seconds"]) if timing else float("nan")
    return args, seconds


def evaluate_cached(specs: Sequence[PolicySpec], settings: EpisodeSettings, workers: int, cache_dir: Path
                    ) -> dict[str, list[EpisodeResult]]:
    """:func:`evaluate` one policy at a time, keeping each policy's episodes in ``cache_dir`` (keyed by the
    settings and the policy spec), so an interrupted or extended study re-runs only what is missing."""
    from dataclasses import asdict

    cache_dir.mkdir(parents=True, exist_ok=True)
    fields = asdict(settings)
    if not settings.ablation:  # left out when empty: episodes cached before the field existed stay valid
        del fields["ablation"]
    key = json.dumps(fields, sort_keys=True, default=list)
    results: dict[str, list[EpisodeResult]] = {}
    for spec in specs:
        path = cache_dir / f"{spec.label}.json"
        if path.exists():
            cached = json.loads(path.read_text())
            if cached["settings"] == key and cached["spec"] == asdict(spec):
                results[spec.label] = [EpisodeResult(**e) for e in cached["episodes"]]
                print(f"reusing the episodes of {spec.label} ({path})")
                continue
        results.update(evaluate([spec], settings, workers))
        path.write_text(json.dumps({"settings": key, "spec": asdict(spec),
                                    "episodes": [asdict(e) for e in results[spec.label]]}) + "\n")
    return results


def run_study(study: StudyArgs, command: str | None = None) -> dict[str, Any]:
    """Train (or reuse) every run, evaluate all policies on the same held-out instances, write the page."""
    agents: dict[str, tuple[str, int, float]] = {}
    specs: list[PolicySpec] = []
    first: Args | None = None
    run_args: dict[str, Args] = {}
    for run_dir in study.agents:
        args, seconds = existing_agent(run_dir)
        run_args[Path(run_dir).name] = args
        first = first or args
        label = Path(run_dir).name
        variant = train_command(args, NOT_TRAINING_FIELDS).removeprefix("python train_agent.py").strip()
        agents[label] = (variant or "defaults", args.seed, seconds)
        specs.append(PolicySpec(label, run_dir, args.seed))
    for variant in PRESET_VARIANTS[study.preset] if not study.agents else ():
        for seed in study.seeds:
            args = study.agent_args(variant, seed)
            first = first or args
            seconds = train_run(args)
            label = f"{variant}-seed{seed}"
            agents[label] = (variant, seed, seconds)
            specs.append(PolicySpec(label, str(args.run_dir), seed))
    assert first is not None
    specs += [PolicySpec(b, b, 0) for b in study.baselines]
    settings = EpisodeSettings(study.env, first.horizon, first.steps_per_action, tuple(range(study.eval_episodes)),
                               instance_set=study.instance_set, advisor=first.resolved_advisor(),
                               ablation=study.ablation())
    out = Path(study.out_dir) / study.preset
    out.mkdir(parents=True, exist_ok=True)  # the episodes may live in another preset's folder (PRESET_RUNS)
    shared = Path(study.out_dir) / PRESET_RUNS.get(study.preset, study.preset)
    # One cache folder per instance list: a longer list is other episodes, not an extension of the cached ones.
    episodes_dir = ("episodes" + ("" if study.instance_set == "test" else f"-{study.instance_set}")
                    + ("" if study.eval_episodes == DEFAULT_EVAL_EPISODES else f"-{study.eval_episodes}")
                    + ("" if study.relevance else NO_RELEVANCE_SUFFIX))
    results = evaluate_cached(specs, settings, study.workers, shared / episodes_dir)
    summaries = summarize(results, "keep")
    print_table(summaries, "keep", title=f"study {study.preset}: held-out {study.env}")
    rows = agent_rows(agents, results, study.baselines)
    baseline_means = {s.policy: s.test_accuracy.__dict__ for s in summaries if s.policy in study.baselines}
    baseline_divergence = {s.policy: s.divergence_rate for s in summaries if s.policy in study.baselines}
    episodes = {label: [e.test_accuracy for e in eps] for label, eps in results.items()}
    labels = pathologies(study.env, study.instance_set, list(range(study.eval_episodes)))
    body, summary = markdown(study, rows, baseline_means, baseline_divergence, episodes, labels)
    if study.ablation():  # the same policies as trained (their cached episodes, else evaluated now), paired
        as_trained = evaluate_cached(specs, replace(settings, ablation=()), study.workers,
                                     shared / episodes_dir.removesuffix(NO_RELEVANCE_SUFFIX))
        gain, summary["ablation_gain"] = ablation_gain_table(
            rows, study.baselines, {label: [e.test_accuracy for e in eps] for label, eps in as_trained.items()},
            episodes, labels, ", ".join(f"{k}={v}" for k, v in study.ablation()))
        body += "\n\n" + "\n".join(gain)
    print(body)
    data = {"study": {k: list(v) if isinstance(v, tuple) else v for k, v in study.__dict__.items()},
            "main_job": first.to_json(), "algo_kwargs": first.algo_kwargs(), "rows": rows,
            "baselines": baseline_means, "summary": summary,
            "episodes": episodes}
    (out / "study.json").write_text(json.dumps(data, indent=1, default=str) + "\n")
    if study.write_page:
        from traingym.experiments.results import write_result

        name, title = study.page_name()
        trained = "".join(f"- `{label}`: `{train_command(a)}`\n" for label, a in run_args.items())
        config = f"Runs (each run's config.json as a train_agent.py command):\n\n{trained}\n" if study.agents else ""
        if study.ablation():
            config += (f"**Ablation:** every policy is evaluated in envs with `{dict(study.ablation())}` (the agents "
                       "were trained without it).\n\n")
        config += (f"Agent: `{first.algo}`, {first.total_timesteps} env steps, obs keys "
                   f"{'+'.join(first.resolved_obs_keys())}, {first.n_envs} envs, algorithm kwargs "
                   f"`{json.dumps(first.algo_kwargs(), default=str)}`.\n\n")
        if not study.agents and len(PRESET_VARIANTS[study.preset]) > 1:
            config += "Variants (`train_agent.py` arguments that differ from the main job's):\n\n" + "".join(
                f"- `{name}`: `{json.dumps(overrides, default=str)}`\n"
                for name, overrides in PRESET_VARIANTS[study.preset].items()) + "\n"
        write_result(name, title, config + body, data, command)
    return data


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m traingym.experiments.study PRESET [--seeds ...]``."""
    import sys

    from traingym.protocol.cli import parse_cli

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-"):  # the preset as a positional argument
        argv = ["--preset", argv[0], *argv[1:]]
    study = parse_cli(StudyArgs, argv, "python -m traingym.experiments.study")
    run_study(study, command=shlex.join(["python", "-m", "traingym.experiments.study", *argv]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
