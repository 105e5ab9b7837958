"""How often input relevance flags the planted shortcut, and how often it flags anything elsewhere.

Runs the keep policy on instances of a pathology mixture (the instance's own initial hyperparameters, nothing
moved) and records, per planted pathology, the episodes in which a feature was flagged, those whose first flag is
a planted shortcut pixel, and how many of the 20 planted pixels end up flagged::

    python -m traingym.experiments.shortcut_detection --instance-set train --episodes 128 --write
    python -m traingym.experiments.shortcut_detection --instance-set test --episodes 128 --write

The flagging rule (:mod:`traingym.envs.monitoring.input_relevance`) was chosen on the train rows; the test rows are
held out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import gymnasium as gym
import numpy as np
from traingym.envs.tasks.pathologies import PATHOLOGIES
from traingym.experiments.mixture_args import check_mixture_args
from traingym.experiments.results import stored_data, write_result
from traingym.protocol.cli import parse_cli
from traingym.protocol.moves import keep_action


def detection_rates(env_id: str, instance_set: str, indices: Sequence[int]) -> dict[str, dict[str, float]]:
    """Per pathology: episodes, share with any flag, share whose first flag is planted, planted pixels flagged."""
    env = gym.make(env_id, instance_set=instance_set, obs_keys=["training_stats", "neurons"])
    keep = keep_action(env.action_space)
    rows: dict[str, list[tuple[bool, bool, int]]] = {p: [] for p in PATHOLOGIES}
    try:
        for i in indices:
            _, info = env.reset(seed=i, options={"instance_index": i})
            instance = info["instance"]
            task = env.unwrapped.task  # type: ignore[attr-defined]  # the family's own carrier (ring or patch)
            planted = set(task.shortcut(instance["split_seed"], 10)[0].reshape(-1).tolist()) if (
                instance["pathology"] == "spurious") else set()
            first = None
            done = False
            while not done:
                _, _, terminated, truncated, _ = env.step(keep)
                done = terminated or truncated
                flagged = env.unwrapped._monitor.inputs.flagged_ids  # type: ignore[attr-defined]
                first = flagged[0] if first is None and flagged else first
            rows[instance["pathology"]].append((first is not None, first in planted,
                                                len(planted & set(flagged))))
    finally:
        env.close()
    return {p: {"episodes": len(r), "any_flag": float(np.mean([a for a, _, _ in r])) if r else 0.0,
                "first_planted": float(np.mean([b for _, b, _ in r])) if r else 0.0,
                "planted_flagged": float(np.mean([c for _, _, c in r])) if r else 0.0}
            for p, r in rows.items()}


def rates_table(rates: dict[str, dict[str, float]]) -> str:
    lines = ["| pathology | episodes | a feature flagged | first flag is a planted pixel | planted pixels flagged "
             "(of 20) |", "|---|---|---|---|---|"]
    for p, r in rates.items():
        lines.append(f"| {p} | {r['episodes']} | {r['any_flag']:.0%} | {r['first_planted']:.0%} | "
                     f"{r['planted_flagged']:.1f} |")
    return "\n".join(lines)


@dataclass(frozen=True)
class DetectionArgs:
    """Rates at which input relevance flags the planted shortcut (and anything else), per pathology."""

    env: str = "TrainGym/DigitsPathologies-v0"
    """A pathology mixture id."""
    instance_set: Literal["train", "test"] = "test"
    """``train`` (where the rule was chosen) or held-out ``test``."""
    episodes: int = 128
    """Instances (instance i with seed i)."""
    write: bool = False
    """Write the rows of this instance set into docs/results/input_relevance.md (the other set's are kept)."""

    def __post_init__(self) -> None:
        check_mixture_args(self.env, self.episodes)


def main(argv: Sequence[str] | None = None) -> int:

    args = parse_cli(DetectionArgs, argv, "python -m traingym.experiments.shortcut_detection")
    rates = detection_rates(args.env, args.instance_set, range(args.episodes))
    print(rates_table(rates))
    if args.write:
        sets = stored_data("input_relevance").get("instance_sets", {})
        sets[args.instance_set] = {"env": args.env, "episodes": args.episodes, "rates": rates}
        body = ("Keep policy on the mixture's instances; input relevance as in "
                "`traingym.envs.monitoring.input_relevance`. A clean run should flag nothing; a spurious run should "
                "flag a planted pixel first.\n\n")
        body += "\n\n".join(f"## {name} instances\n\n`python -m traingym.experiments.shortcut_detection --instance-set "
                            f"{name} --episodes {v['episodes']} --write`\n\n{rates_table(v['rates'])}"
                            for name, v in sorted(sets.items(), reverse=True))
        write_result("input_relevance", "Input relevance: flagging the planted shortcut", body,
                     {"instance_sets": sets})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
