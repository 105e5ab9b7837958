"""Latency per diagnosis of the local LLM advisors (``smollm``, ``gemma``), side by side in one process.

Real reports first: one env (``--env``, heuristic advisor, MiniLM off) plays ``--episodes`` episodes with a seeded
random policy and keeps ``env.unwrapped.report()`` after every step. Then each advisor is built from its cached
converted copy (``make_advisor``, timed; the conversion itself is not: run each advisor once before), diagnoses
one report untimed-as-steady (its first call also prefills the constant prompt prefix and the calibration
prompt: reported as ``first_call_s``), and then every report ``--reps`` times, the advisors interleaved report by
report in alternating order so that the machine's load hits both alike. Reported per advisor: median and
quartiles of the seconds per diagnosis, prompt / completion tokens, the findings it chose; and the ratio of the
medians (a ratio: absolute times on a shared machine are noise). Torch threads per advisor: ``LLMOptions``'s
default (1), as in the env processes.

Run::

    .venv/bin/python -m benchmarks.advisor_latency                    # prints JSON
    .venv/bin/python -m benchmarks.advisor_latency --reps 1 --episodes 1 --max-reports 2
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from collections import Counter
from typing import Any

import numpy as np
from traingym.advisors import make_advisor
from traingym.advisors.factory import WHEEL_MODELS
from traingym.agents.cli_args import StrTuple, parse_cli

from benchmarks.timing import machine_info, median, quartiles, rounded


@dataclasses.dataclass(frozen=True)
class Args:
    """Seconds per diagnosis of local LLM advisors on real training reports, side by side."""

    advisors: StrTuple = ("smollm", "gemma")
    """Advisor specs to compare (the first is the baseline of the ratios)."""
    env: str = "TrainGym/DigitsMLP-v0"
    """Env whose reports are diagnosed."""
    episodes: int = 2
    """Episodes played to collect reports."""
    max_reports: int = 8
    """At most this many reports (evenly spaced over the collected ones)."""
    reps: int = 2
    """Timed diagnoses of each report per advisor."""
    seed: int = 0
    """Seed of the env and of the random policy."""

    def __post_init__(self) -> None:
        if len(self.advisors) < 1 or len(set(self.advisors)) != len(self.advisors):
            raise ValueError(f"advisors must be distinct specs, got {self.advisors!r}")
        for name, value, low in (("episodes", self.episodes, 1), ("max_reports", self.max_reports, 1),
                                 ("reps", self.reps, 1)):
            if value < low:
                raise ValueError(f"{name} must be >= {low}, got {value}")


def collect_reports(env_id: str, episodes: int, max_reports: int, seed: int) -> list[dict[str, Any]]:
    """Reports of a seeded random-policy run (heuristic advisor, hashing encoder: no language model loads)."""
    import gymnasium as gym
    import traingym.envs  # noqa: F401  (registers the envs)

    env = gym.make(env_id, encoder="hashing", advisor="heuristic")
    rng = np.random.default_rng(seed)
    reports: list[dict[str, Any]] = []
    try:
        for episode in range(episodes):
            env.reset(seed=seed + episode)
            done = False
            while not done:
                _, _, terminated, truncated, _ = env.step(rng.integers(0, 3, size=4))
                reports.append(env.unwrapped.report())
                done = terminated or truncated
    finally:
        env.close()
    picks = np.linspace(0, len(reports) - 1, num=min(max_reports, len(reports))).round().astype(int)
    return [reports[i] for i in picks]


def measure(args: Args) -> dict[str, Any]:
    reports = collect_reports(args.env, args.episodes, args.max_reports, args.seed)
    advisors, build_s, first_call_s = {}, {}, {}
    for spec in args.advisors:
        if spec in WHEEL_MODELS and not WHEEL_MODELS[spec].is_converted():
            raise SystemExit(f"{spec}: no converted copy in {WHEEL_MODELS[spec].cache_dir()}; run it once first "
                             f"(python -c \"from traingym.advisors import make_advisor; make_advisor('{spec}')\")")
        started = time.perf_counter()
        advisors[spec] = make_advisor(spec)
        build_s[spec] = time.perf_counter() - started
        started = time.perf_counter()
        advisors[spec].diagnose(reports[0])
        first_call_s[spec] = time.perf_counter() - started
    seconds: dict[str, list[float]] = {spec: [] for spec in args.advisors}
    tokens: dict[str, list[tuple[int, int]]] = {spec: [] for spec in args.advisors}
    findings: dict[str, Counter[str]] = {spec: Counter() for spec in args.advisors}
    for rep in range(args.reps):
        for i, report in enumerate(reports):
            order = args.advisors if (rep + i) % 2 == 0 else tuple(reversed(args.advisors))
            for spec in order:
                started = time.perf_counter()
                diagnosis = advisors[spec].diagnose(report)
                seconds[spec].append(time.perf_counter() - started)
                completion = advisors[spec].last_completion
                tokens[spec].append((completion.prompt_tokens, completion.completion_tokens))
                if rep == 0:
                    findings[spec].update(f.value for f in diagnosis.findings)
    base = args.advisors[0]
    per_advisor = {}
    for spec in args.advisors:
        low, high = quartiles(seconds[spec])
        per_advisor[spec] = {
            "median_s": rounded(median(seconds[spec])),
            "q25_s": rounded(low),
            "q75_s": rounded(high),
            "ratio_to_" + base: rounded(median(seconds[spec]) / median(seconds[base]), 3),
            "build_s": rounded(build_s[spec], 2),
            "first_call_s": rounded(first_call_s[spec], 2),
            "prompt_tokens_mean": rounded(statistics.mean(p for p, _ in tokens[spec]), 1),
            "completion_tokens_mean": rounded(statistics.mean(c for _, c in tokens[spec]), 1),
            "findings": dict(findings[spec]),
        }
    return {"figure": "advisor_latency_per_diagnosis", "env": args.env, "reports": len(reports),
            "reps": args.reps, "advisors": per_advisor, "machine": machine_info()}


def main(argv: list[str] | None = None) -> int:
    print(json.dumps(measure(parse_cli(Args, argv, "python -m benchmarks.advisor_latency")), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
