"""How often an advisor names the planted pathology: precision / recall per finding and macro-F1 on a mixture.

Every advisor diagnoses the same held-out instances of a pathology mixture, run with the keep policy (so what the
advisor sees does not depend on its own advice), and is scored against the planted ground truth
(``info["instance"]["pathology"]``, read only here)::

    python -m traingym.experiments.diagnosis_accuracy --advisors heuristic smollm --episodes 50 --write

**Episode diagnosis.** The findings an advisor reports on at least half of the steps of the episode's second half
(steps 11-20): the settled diagnosis, not the first guess on a barely trained network. A pathology counts as
named when its finding (:data:`EXPECTED_FINDING`) is in the episode diagnosis; ``clean`` is named when none of the
pathology findings is. Precision and recall per pathology over episodes, then the unweighted mean F1 (macro-F1).
An LLM advisor whose answer fails (error, timeout, malformed) falls back to the heuristic for that step; the table
gives each advisor's fallback rate, since fallback answers are the heuristic's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from traingym.envs.tasks.pathologies import PATHOLOGIES
from traingym.experiments.mixture_args import check_mixture_args
from traingym.experiments.results import stored_data, write_result
from traingym.protocol.cli import StrTuple, parse_cli
from traingym.protocol.moves import keep_action

EXPECTED_FINDING: dict[str, str | None] = {
    "clean": None,
    "spurious": "shortcut_features",
    "label_noise": "noisy_labels",
    "small_data": "overfitting",
    "dying_relu": "dead_units",
}
"""The finding that names each planted pathology (``clean``: none of the others)."""
SETTLED_FROM = 10
"""Steps after which the diagnosis counts (the second half of a 20-step episode)."""


def episode_diagnosis(findings_per_step: Sequence[Sequence[str]]) -> set[str]:
    """Findings reported on at least half of the steps after :data:`SETTLED_FROM`."""
    settled = findings_per_step[SETTLED_FROM:] or findings_per_step[-1:]
    counts = Counter(f for step in settled for f in set(step))
    return {f for f, n in counts.items() if n * 2 >= len(settled)}


def named_pathology(diagnosis: set[str]) -> set[str]:
    """The pathologies an episode diagnosis names (possibly several, ``clean`` when none)."""
    named = {p for p, f in EXPECTED_FINDING.items() if f is not None and f in diagnosis}
    return named or {"clean"}


def score(truth: Sequence[str], named: Sequence[set[str]]) -> dict[str, Any]:
    """Precision, recall and F1 per pathology, and their macro-F1."""
    rows = {}
    for p in PATHOLOGIES:
        tp = sum(t == p and p in n for t, n in zip(truth, named))
        fp = sum(t != p and p in n for t, n in zip(truth, named))
        fn = sum(t == p and p not in n for t, n in zip(truth, named))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows[p] = {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}
    return {"per_pathology": rows, "macro_f1": float(np.mean([r["f1"] for r in rows.values()]))}


def diagnose_episodes(env_id: str, advisor: str, indices: Sequence[int], instance_set: str = "test",
                      **env_kwargs: Any) -> tuple[list[str], list[set[str]], float]:
    """Run the keep policy on ``indices`` with ``advisor``; returns the true pathologies, the named ones and the
    fraction of advisor calls that fell back to the heuristic."""
    env = gym.make(env_id, instance_set=instance_set, obs_keys=["training_stats", "diagnosis"], encoder="hashing",
                   advisor=advisor, **env_kwargs)
    keep = keep_action(env.action_space)
    truth, named, calls, fallbacks = [], [], 0, 0
    try:
        for i in indices:
            _, info = env.reset(seed=i, options={"instance_index": i})
            truth.append(str(info["instance"].get("pathology", "clean")))
            steps: list[list[str]] = []
            done = False
            while not done:
                _, _, terminated, truncated, info = env.step(keep)
                done = terminated or truncated
                steps.append(list(info["advisor"]["findings"]))
                calls += bool(info["advisor"]["called"])
                fallbacks += info["advisor"]["fallback_reason"] is not None
            named.append(named_pathology(episode_diagnosis(steps)))
    finally:
        env.close()
    return truth, named, fallbacks / max(calls, 1)


def accuracy_table(results: dict[str, dict[str, Any]]) -> str:
    header = "| advisor | episodes | fallback rate | " + " | ".join(
        f"{p} P / R" for p in PATHOLOGIES) + " | macro-F1 |"
    lines = [header, "|" + "---|" * (len(PATHOLOGIES) + 4)]
    for advisor, r in results.items():
        cells = " | ".join(f"{r['per_pathology'][p]['precision']:.2f} / {r['per_pathology'][p]['recall']:.2f}"
                           for p in PATHOLOGIES)
        lines.append(f"| `{advisor}` | {r['episodes']} | {r['fallback_rate']:.0%} | {cells} | "
                     f"**{r['macro_f1']:.3f}** |")
    return "\n".join(lines)


@dataclass(frozen=True)
class AccuracyArgs:
    """Score advisors' diagnoses against the planted pathologies of a mixture's held-out instances."""

    advisors: StrTuple = ("heuristic",)
    """Advisor specs (heuristic, smollm, gemma, hf:<path>, openai:<model>, module:Class)."""
    env: str = "TrainGym/DigitsPathologies-v0"
    """A pathology mixture id."""
    episodes: int = 50
    """Held-out instances (instance i with seed i)."""
    advisor_base_url: str | None = None
    """Base URL of an OpenAI-compatible server for openai: advisors."""
    write: bool = False
    """Write docs/results/diagnosis_accuracy.md (advisors already on the page and not re-run are kept)."""

    def __post_init__(self) -> None:
        check_mixture_args(self.env, self.episodes)
        if not self.advisors:
            raise ValueError("--advisors must name at least one advisor")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_cli(AccuracyArgs, argv, "python -m traingym.experiments.diagnosis_accuracy")
    extra = {"advisor_base_url": args.advisor_base_url} if args.advisor_base_url else {}
    results: dict[str, dict[str, Any]] = stored_data("diagnosis_accuracy").get("advisors", {}) if args.write else {}
    for advisor in args.advisors:
        truth, named, fallback_rate = diagnose_episodes(args.env, advisor, range(args.episodes), **extra)
        results[advisor] = {**score(truth, named), "episodes": len(truth), "fallback_rate": fallback_rate,
                            "env": args.env}
        print(f"{advisor}: macro-F1 {results[advisor]['macro_f1']:.3f}, fallback rate {fallback_rate:.0%}")
    table = accuracy_table(results)
    print(table)
    if args.write:
        body = (f"Held-out instances of `{args.env}`, keep policy, each advisor on the same instances. "
                "P / R: precision / recall of naming each planted pathology (module docstring of "
                "`traingym.experiments.diagnosis_accuracy` for the episode-level rule).\n\n" + table + "\n")
        write_result("diagnosis_accuracy", "Diagnosis accuracy against planted pathologies", body,
                     {"advisors": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
