"""Figure ``report``: size and build time of the HTML run report for a run directory shaped like the default run.

The default run (``make run``) evaluates the agent and 5 baselines on 64 held-out instances of T=20 steps and
(now) exports every step to ``trajectories.jsonl``. The report's size depends on that shape (episodes, policies,
steps, layers, per-step diagnoses), not on K or on how good the policies are, so the benchmark builds such a
directory with a real evaluation at K=5 (seconds instead of minutes): the default baselines plus
``advisor_greedy`` as the focus policy (its env has the diagnosis key, so every step carries a diagnosis: more
data per step than the default agent, whose observation has no diagnosis). ``--run-dir`` measures an existing
run directory instead (copied first; the source is only read).

Build time of :func:`traingym.report.write_report` (read the files, render, write): the first build in this
process (it also gzips plotly.js, cached afterwards: what ``train_agent.py`` pays) and the median of ``--repeats``
later builds.

Run: ``.venv/bin/python -m benchmarks.report_size`` (``--smoke`` for a seconds-long check). Prints JSON and
writes ``docs/results/report.md``.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from traingym.experiments.results import write_result
from traingym.protocol.cli import StrTuple, parse_cli

TARGET_MB = 5.0
"""Target: the report of the default run is under 5 MB (10**6 bytes)."""
TARGET_SECONDS = 10.0
"""Target: it builds in under 10 s."""
RUN_FILES = ("eval.json", "eval.csv", "episodes.jsonl", "trajectories.jsonl", "config.json", "learning_curve.csv",
             "learning_curve_baselines.json")


@dataclasses.dataclass(frozen=True)
class Args:
    """Size and build time of the run report."""

    run_dir: str | None = None
    """Measure this existing run directory (copied to a temporary folder first); None: build a default-shaped
    one."""
    env_id: str = "TrainGym/DigitsMLP-v0"
    """Env of the generated run directory (the default run's)."""
    policies: StrTuple = ("advisor_greedy", "keep", "random", "step_decay", "plateau", "steer")
    """Policies of the generated run directory (the first is the focus policy)."""
    episodes: int = 64
    """Held-out episodes of the generated run directory (the default run's 64)."""
    horizon: int = 20
    """Steps per episode (the default T)."""
    steps_per_action: int = 5
    """K of the generated run (does not change the report's size; the default's 50 only costs time)."""
    workers: int = 2
    """Evaluation processes."""
    repeats: int = 3
    """Timed builds (median)."""
    smoke: bool = False
    """Seconds-long check: 2 episodes of 4 steps, nothing written to docs/results."""
    write: bool = True
    """Write docs/results/report.md (not with --smoke)."""


def default_shaped_run(args: Args, out: Path) -> Path:
    """A real evaluation with the default run's shape into ``out`` (eval.json, episodes.jsonl, trajectories)."""
    from traingym.agents.episodes import EpisodeSettings
    from traingym.agents.evaluate import run_evaluation
    from traingym.agents.policies import PolicySpec
    from traingym.protocol.run_files import TRAJECTORIES_FILE

    episodes, horizon = (2, 4) if args.smoke else (args.episodes, args.horizon)
    settings = EpisodeSettings(args.env_id, horizon, args.steps_per_action, tuple(range(episodes)),
                               advisor="heuristic", record_trajectories=True)
    specs = [PolicySpec(p, p, 0) for p in args.policies]
    run_evaluation(specs, settings, out, "keep", args.workers, 0, str(out / TRAJECTORIES_FILE), plot=False)
    return out


def run(args: Args) -> dict[str, Any]:
    from traingym.report import load_run_data, write_report
    from traingym.report.html import packed_plotly_js

    with tempfile.TemporaryDirectory(prefix="traingym-report-bench-") as tmp:
        run_dir = Path(tmp) / "run"
        run_dir.mkdir()
        generate_seconds = 0.0
        if args.run_dir is not None:
            for name in RUN_FILES:
                if (Path(args.run_dir) / name).exists():
                    shutil.copy(Path(args.run_dir) / name, run_dir / name)
        else:
            start = time.perf_counter()
            default_shaped_run(args, run_dir)
            generate_seconds = time.perf_counter() - start
        start = time.perf_counter()
        write_report(run_dir)  # the first build in this process also compresses plotly.js (cached afterwards)
        cold = time.perf_counter() - start
        seconds = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            path = write_report(run_dir)
            seconds.append(time.perf_counter() - start)
        data = load_run_data(run_dir)
        trajectories = run_dir / "trajectories.jsonl"
        size = path.stat().st_size
        build = sorted(seconds)[len(seconds) // 2]
        return {
            "run_dir": args.run_dir or f"generated: {args.env_id}, policies {list(args.policies)}, "
                                       f"K={args.steps_per_action}",
            "episodes": len(data["episodes"]), "policies": len(data["policies"]),
            "steps_per_episode": max((len(e["steps"]) for e in data["episodes"]), default=0),
            "trajectory_records": sum(1 for _ in open(trajectories)) if trajectories.exists() else 0,
            "trajectories_mb": round(trajectories.stat().st_size / 1e6, 2) if trajectories.exists() else 0.0,
            "report_mb": round(size / 1e6, 3),
            "plotly_js_packed_mb": round(len(packed_plotly_js()) / 1e6, 3),
            "data_mb": round(len(json.dumps(data, separators=(",", ":"))) / 1e6, 3),
            "cold_build_seconds": round(cold, 3),
            "build_seconds": round(build, 3), "build_seconds_all": [round(s, 3) for s in seconds],
            "generate_seconds": round(generate_seconds, 1),
            "size_met": size / 1e6 < TARGET_MB, "time_met": max(cold, build) < TARGET_SECONDS,
        }


def markdown(result: dict[str, Any]) -> str:
    met = {True: "met", False: "NOT met"}
    return "\n".join([
        f"Run directory: {result['run_dir']}; {result['episodes']} episodes x {result['policies']} policies, "
        f"{result['steps_per_episode']} steps per episode, {result['trajectory_records']} trajectory records "
        f"({result['trajectories_mb']} MB of trajectories.jsonl).",
        "",
        "| figure | value | target | |",
        "|---|---|---|---|",
        f"| report.html size | {result['report_mb']} MB | < {TARGET_MB:g} MB | {met[result['size_met']]} |",
        f"| first build in a process (compresses plotly.js) | {result['cold_build_seconds']} s | "
        f"< {TARGET_SECONDS:g} s | {met[result['cold_build_seconds'] < TARGET_SECONDS]} |",
        f"| later builds (median of {len(result['build_seconds_all'])}) | {result['build_seconds']} s | "
        f"< {TARGET_SECONDS:g} s | {met[result['build_seconds'] < TARGET_SECONDS]} |",
        "",
        f"Of the size: plotly.js (gzip + base64) {result['plotly_js_packed_mb']} MB, the run data (JSON) "
        f"{result['data_mb']} MB.",
    ])


def main(argv: list[str] | None = None) -> int:
    args = parse_cli(Args, argv, "python -m benchmarks.report_size")
    result = run(args)
    print(json.dumps(result, indent=2))
    if args.write and not args.smoke:
        write_result("report", "Run report: size and build time", markdown(result), data=result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
