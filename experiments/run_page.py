"""A results page from one finished ``train_agent.py`` run: how it was trained, how long training and evaluation
took, and its final held-out table, read from the run directory's own files (``config.json``, ``timing.json``,
``eval.json``)::

    python -m traingym.experiments.run_page --run-dir runs/my-run --name agent_my_run  # docs/results/agent_my_run.md

One run is one agent seed: the page is a timing and a first look. Learning claims need several seeds
(:mod:`traingym.experiments.study`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from traingym.agents.args import Args
from traingym.agents.train import load_run_args
from traingym.experiments.results import check_page_name, write_result
from traingym.experiments.study import train_command
from traingym.protocol.cli import parse_cli
from traingym.protocol.run_files import CONFIG_FILE, EVAL_JSON, TIMING_FILE


@dataclass(frozen=True)
class RunPageArgs:
    """Write docs/results/<name>.md from a finished run directory."""

    run_dir: str
    """A run directory of train_agent.py with a saved model (its timing.json)."""
    name: str
    """Page name (file stem under docs/results/): letters, digits and underscores."""

    def __post_init__(self) -> None:
        check_page_name("--name", self.name)
        for needed in (CONFIG_FILE, TIMING_FILE):
            if not (Path(self.run_dir) / needed).exists():
                raise ValueError(f"--run-dir must be a finished run (no {needed} in {self.run_dir!r})")


def eval_table(evaluation: dict[str, Any]) -> str:
    """The final evaluation's summary (eval.json) as a Markdown table."""
    reference = evaluation["reference"]
    lines = [f"| policy | episodes | test acc [95% CI] | Δ vs {reference} [95% CI] | wins | diverged |",
             "|---|---|---|---|---|---|"]
    for row in evaluation["summary"]:
        diff = ("—" if row["diff_vs_reference"] is None else
                f"{row['diff_vs_reference']:+.3f} [{row['diff_ci_low']:+.3f}, {row['diff_ci_high']:+.3f}]")
        wins = "—" if row["win_rate"] is None else f"{row['win_rate']:.0%}"
        lines.append(f"| {row['policy']} | {row['episodes']} | {row['test_accuracy']:.3f} "
                     f"[{row['test_accuracy_ci_low']:.3f}, {row['test_accuracy_ci_high']:.3f}] | {diff} | {wins} | "
                     f"{row['divergence_rate']:.0%} |")
    return "\n".join(lines)


def page(run_dir: Path) -> tuple[str, str, dict[str, Any]]:
    """Title, body and data of the run's page."""
    config = json.loads((run_dir / CONFIG_FILE).read_text())
    args = Args.from_json({**load_run_args(run_dir), "run_dir": str(run_dir)})
    timing = json.loads((run_dir / TIMING_FILE).read_text())
    evaluation = json.loads((run_dir / EVAL_JSON).read_text()) if (run_dir / EVAL_JSON).exists() else None
    steps, seconds = int(timing["num_timesteps"]), float(timing["train_seconds"])
    body = [f"Run `{run_dir.name}`, created {config['created']}"
            + (f", resumed at steps {config['resumed']}" if config["resumed"] else "") + ".",
            "", f"Trained with `{train_command(args)}` (the run's config.json; versions: "
            + ", ".join(f"{k} {v}" for k, v in config["versions"].items()) + ").", "",
            f"- training: **{seconds / 60:.1f} min** for {steps:,} env steps ({steps / seconds:.2f} env steps/s, "
            f"{args.n_envs} envs, {args.vec_env}, {args.env_workers} worker process(es))"
            + (" since the last resume" if config["resumed"] else "")]
    if "eval_seconds" in timing:
        body.append(f"- final evaluation: {float(timing['eval_seconds']) / 60:.1f} min")
    starts = config.get("starts", [])
    body += [f"- started at step {s['step']:,} on {s['at']}: commit {s['commit']}, {s['machine']}" for s in starts]
    where = ("the machine of each start above" if starts else
             "a run from before config.json recorded its machine: the machine above is where this page was written")
    body += ["", f"The timings are the run's own (timing.json); {where}.",
             "One run is one agent seed: a timing and a first look, not a learning claim.", ""]
    if evaluation is not None:
        settings = evaluation["settings"]
        body += [f"## Final evaluation ({settings['instance_set']} instances "
                 f"{settings['instance_indices'][0]}..{settings['instance_indices'][-1]}, paired)", "",
                 eval_table(evaluation)]
    else:
        body.append("No final evaluation in the run (no eval.json).")
    title = f"One {args.algo} run on {args.env}: training time and held-out table"
    data = {"config": config, "timing": timing, "summary": evaluation["summary"] if evaluation else None}
    return title, "\n".join(body), data


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_cli(RunPageArgs, argv, "python -m traingym.experiments.run_page")
    title, body, data = page(Path(args.run_dir))
    print(body)
    print(f"wrote {write_result(args.name, title, body, data)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
