"""The information gap: what knowing *what is wrong* is worth on a pathology mixture, before any agent learns it.

Runs the diagnosis-aware hand controller (:class:`~traingym.agents.baselines.DiagnosisAwarePolicy`, steer
whose targets the advisor's findings move) against the blind controllers (steer, tuned static defaults, keep) on
the same held-out instances, paired, and breaks the result down by planted pathology (``info["instance"]``'s
ground truth, read only here, after the episodes)::

    python -m traingym.experiments.information_gap --episodes 100 --write

``--instance-set train --variants --write`` scores the controller at several base learning rates on TRAIN instances
instead and stores the best (by final validation accuracy) as its base targets; the page keeps both tables.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from traingym.agents.baselines import (
    Baseline,
    DiagnosisAwareDefaultsPolicy,
    DiagnosisAwarePolicy,
    GoodDefaultsPolicy,
    KeepPolicy,
    SteerPolicy,
    controller_targets,
    store_controller_targets,
)
from traingym.agents.episodes import EpisodeResult, EpisodeSettings, episode_instance, run_policy_object
from traingym.agents.stats import bootstrap_mean, paired_difference
from traingym.agents.tuned_defaults import tuned_defaults
from traingym.experiments.mixture_args import check_mixture_args
from traingym.experiments.results import family_page_name, stored_data, write_result
from traingym.protocol.checks import check_range
from traingym.protocol.cli import parse_cli

GOAL_MARGIN = 0.03
"""The diagnosis-aware controller should beat the best blind controller by this much (issue 24)."""


BASE_LRS = (0.01, 0.03, 0.1)
"""Base learning-rate targets tried for the diagnosis-aware controller on TRAIN instances (steer's weight decay and
augmentation targets); the best by final validation accuracy is stored."""


def blind_and_aware(env_id: str) -> dict[str, Baseline]:
    """The compared controllers, by label: keep, good_defaults, steer (blind); diagnosis_aware (from the instance's
    start, as steer) and diagnosis_aware_defaults (from its base targets, as good_defaults)."""
    targets, own = tuned_defaults(env_id), controller_targets(env_id)
    return {"keep": KeepPolicy(), "good_defaults": GoodDefaultsPolicy(**targets), "steer": SteerPolicy(**targets),
            "diagnosis_aware": DiagnosisAwarePolicy(**own),
            "diagnosis_aware_defaults": DiagnosisAwareDefaultsPolicy(**own)}


def base_target_variants(env_id: str) -> dict[str, Baseline]:
    """Steer and the diagnosis-aware controller at each base LR of :data:`BASE_LRS`."""
    targets = tuned_defaults(env_id)
    variants: dict[str, Baseline] = {"steer": SteerPolicy(**targets)}
    for lr in BASE_LRS:
        variants[f"diagnosis_aware lr {lr:g}"] = DiagnosisAwarePolicy(**{**targets, "lr": lr})
    return variants


def _run(policy: Baseline, label: str, settings: EpisodeSettings, indices: tuple[int, ...]) -> list[EpisodeResult]:
    return run_policy_object(policy, label, settings, indices)


def run_policies(policies: dict[str, Baseline], settings: EpisodeSettings, workers: int
                 ) -> dict[str, list[EpisodeResult]]:
    """Every policy on every instance of ``settings`` (instance ``i`` with seed ``i``), results in instance order."""
    chunks = [settings.instance_indices[i::workers] for i in range(workers)]
    jobs = [(label, chunk) for label in policies for chunk in chunks if chunk]
    args = ([policies[label] for label, _ in jobs], [label for label, _ in jobs], [settings] * len(jobs),
            [chunk for _, chunk in jobs])
    if workers > 1:
        context = multiprocessing.get_context("forkserver" if sys.platform != "win32" else "spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            outputs = list(pool.map(_run, *args))
    else:
        outputs = [_run(*a) for a in zip(*args)]
    results: dict[str, list[EpisodeResult]] = {label: [] for label in policies}
    for (label, _), episodes in zip(jobs, outputs):
        results[label].extend(episodes)
    for episodes in results.values():
        episodes.sort(key=lambda e: e.instance_index)
    return results


def pathologies(env_id: str, instance_set: str, indices: Sequence[int]) -> list[str]:
    """The planted pathology of each instance (ground truth, never shown to a policy); for ``sampled``, of the
    draw that ``reset(seed=i)`` makes, as in an evaluation episode."""
    env = gym.make(env_id, instance_set=instance_set, obs_keys=["training_stats"])
    try:
        if "pathology" not in env.unwrapped.task.instance_fields():  # type: ignore[attr-defined]
            return ["clean"] * len(indices)  # a family without planted problems: no draw to reproduce
        return [str(episode_instance(env, i, i).get("pathology", "clean")) for i in indices]
    finally:
        env.close()


def gap_table(results: dict[str, list[EpisodeResult]], reference: str, labels: list[str]) -> tuple[str, dict]:
    """Markdown table (overall and per pathology) of mean test accuracy and paired differences to ``reference``."""
    ref = np.array([e.test_accuracy for e in results[reference]])
    groups = sorted(set(labels))
    header = (f"| policy | n | test acc [95% CI] | Δ vs {reference} [95% CI] | "
              + " | ".join(groups) + " |")
    lines = [header, "|" + "---|" * (4 + len(groups))]
    data: dict[str, Any] = {}
    for label, episodes in results.items():
        test = np.array([e.test_accuracy for e in episodes])
        overall = bootstrap_mean(test)
        diff = paired_difference(test, ref) if label != reference else None
        per_group = {g: float(test[[k for k, x in enumerate(labels) if x == g]].mean()) for g in groups}
        data[label] = {"test_accuracy": overall.__dict__, "diff": None if diff is None else diff.__dict__,
                       "per_pathology": per_group, "per_episode": test.tolist()}
        lines.append(f"| {label} | {len(test)} | {overall.format()} | "
                     f"{'—' if diff is None else diff.format(signed=True)} | "
                     + " | ".join(f"{per_group[g]:.3f}" for g in groups) + " |")
    counts = ", ".join(f"{g}: {labels.count(g)}" for g in groups)
    return "\n".join(lines) + f"\n\nInstances per pathology: {counts}.\n", data


@dataclass(frozen=True)
class GapArgs:
    """The information gap: the diagnosis-aware hand controller against blind controllers on a pathology mixture."""

    env: str = "TrainGym/DigitsPathologies-v0"
    """Gymnasium id of a pathology mixture (its instances name their planted pathology)."""
    episodes: int = 100
    """Instances (instance i with seed i)."""
    instance_set: Literal["test", "train"] = "test"
    """Held-out ``test`` instances for the figures; ``train`` for tuning the responses."""
    variants: bool = False
    """Score the controller's candidate base targets instead of the four controllers (--instance-set train only);
    with --write, store the best."""
    advisor: str = "heuristic"
    """Advisor whose findings the controller reads."""
    workers: int = 2
    """Processes."""
    write: bool = False
    """Write docs/results/information_gap.md (the held-out table; with --variants, the tuning table)."""

    def __post_init__(self) -> None:
        check_mixture_args(self.env, self.episodes)
        check_range("--workers", self.workers, 1, 64, integer=True)
        if self.variants and self.instance_set != "train":
            raise ValueError("--variants tunes the controller: it needs --instance-set train")


def _verdict(data: dict[str, Any], n: int) -> tuple[str, dict[str, Any]]:
    """Same-start pairings (the diagnosis's own value) and the best diagnosis-aware against the best blind."""
    def mean(label: str) -> float:
        return data[label]["test_accuracy"]["mean"]

    def diff(a: str, b: str) -> Any:
        return paired_difference(np.array(data[a]["per_episode"]), np.array(data[b]["per_episode"]))

    blind = max(("keep", "good_defaults", "steer"), key=mean)
    aware = max(("diagnosis_aware", "diagnosis_aware_defaults"), key=mean)
    pairs = {"diagnosis_aware - steer (both from the instance's start)": diff("diagnosis_aware", "steer"),
             "diagnosis_aware_defaults - good_defaults (both from tuned values)":
                 diff("diagnosis_aware_defaults", "good_defaults"),
             f"best aware ({aware}) - best blind ({blind})": diff(aware, blind)}
    best = pairs[f"best aware ({aware}) - best blind ({blind})"]
    met = best.mean >= GOAL_MARGIN and best.low > 0
    lines = [f"- {name}, paired over {n} instances: {d.format(signed=True)}" for name, d in pairs.items()]
    text = ("\n".join(lines) + f"\n\nGoal (best aware >= best blind + {GOAL_MARGIN}, CI above 0): "
            f"{'met' if met else 'not met'}.\n")
    return text, {"pairs": {k: v.__dict__ for k, v in pairs.items()}, "goal_met": bool(met)}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_cli(GapArgs, argv, "python -m traingym.experiments.information_gap")
    indices = tuple(range(args.episodes))
    settings = EpisodeSettings(args.env, 20, 50, indices, instance_set=args.instance_set, advisor=args.advisor)
    policies = base_target_variants(args.env) if args.variants else blind_and_aware(args.env)
    results = run_policies(policies, settings, args.workers)
    labels = pathologies(args.env, args.instance_set, indices)
    reference = "steer"
    table, data = gap_table(results, reference, labels)
    print(table)
    verdict = ""
    if not args.variants:
        verdict, data["verdict"] = _verdict(data, len(indices))
        print(verdict)
    if args.variants:
        scores = {label: float(np.mean([e.val_accuracy[-1] for e in eps])) for label, eps in results.items()
                  if label != "steer"}
        best = max(scores, key=lambda label: scores[label])
        chosen = policies[best].base_target  # type: ignore[attr-defined]
        verdict = ("Final validation accuracy per base LR: "
                   + ", ".join(f"{k.split()[-1]}: {v:.3f}" for k, v in scores.items())
                   + f". Chosen: lr {chosen['lr']:g}.\n")
        print(verdict)
        if args.write:
            store_controller_targets(args.env, chosen, {"chosen_on": f"TRAIN instances 0..{args.episodes - 1}",
                                                        "val_accuracy": round(scores[best], 4)})
    if args.write:
        section = "tuning" if args.variants else "held_out"
        _write(args, section, table + "\n" + verdict, data)
    return 0


def _write(args: GapArgs, section: str, body: str, data: dict) -> None:
    """Keep the other section of the page (held-out figures and the tuning table are written by separate runs)."""

    name = page_name(args.env)
    sections = stored_data(name).get("sections", {})
    sections[section] = {"args": args.__dict__, "body": body, "data": data}
    titles = {"held_out": "Held-out instances", "tuning": "Choosing the controller's base targets (TRAIN instances)"}
    intro = ("The diagnosis-aware controller is steer whose targets the advisor's findings move "
             "(`traingym.agents.baselines`); the blind controllers see the same env without reading the "
             "findings. Test accuracy after 20 steps of K=50; paired bootstrap CIs over instances. Per-pathology "
             "columns use the planted ground truth, which no controller sees.\n\n")
    page = intro + "\n".join(f"## {titles[k]}\n\n`python -m traingym.experiments.information_gap "
                             f"{_flags(v['args'])}`\n\n{v['body']}" for k, v in sorted(sections.items()))
    write_result(name, f"The information gap on a pathology mixture ({args.env})", page, {"sections": sections})


def page_name(env_id: str) -> str:
    """``information_gap`` for the first pathology mixture (``TrainGym/DigitsPathologies-v0``), else
    ``information_gap_<family>``."""
    name = family_page_name("information_gap", env_id)
    return "information_gap" if name == "information_gap_digits_pathologies" else name


def _flags(args: dict[str, Any]) -> str:
    defaults = GapArgs.__dataclass_fields__
    parts = [f"--{k.replace('_', '-')} {v}" if not isinstance(v, bool) else f"--{k.replace('_', '-')}"
             for k, v in args.items() if v != defaults[k].default and k != "write" and (v or not isinstance(v, bool))]
    return " ".join(parts)


if __name__ == "__main__":
    raise SystemExit(main())
