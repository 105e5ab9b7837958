"""The compute-matched HPO comparison (:mod:`traingym.hpo.compare`) and its results page.

The same flags as ``python -m traingym.hpo compare`` (one :class:`~traingym.hpo.compare.CompareConfig`), plus
``--write``: the table, the notes, the LLM-TPE counters and, on a pathology mixture, the mean test accuracy per
planted pathology go to ``docs/results/hpo_<family>.md`` (+ ``.json``), stamped with the command, commit, date and
machine (:func:`~traingym.experiments.results.write_result`). The rows resume from ``--out-dir`` as in ``hpo
compare``: adding a policy or an advisor to the command that wrote the page runs only the new rows::

    python -m traingym.experiments.hpo_comparison --env-id TrainGym/DigitsPathologies-v0 --n-instances 10 \\
        --advisors heuristic smollm gemma --policies good_defaults steer diagnosis_aware_defaults \\
        --out-dir runs/hpo_pathologies --write
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from traingym.experiments.results import family_page_name
from traingym.hpo.compare import (
    CompareConfig,
    Comparison,
    llm_tpe_totals,
    markdown_table,
    row_source,
    run_and_print,
    source_label,
    study_seconds,
)
from traingym.protocol.cli import parse_cli

PROG = "python -m traingym.experiments.hpo_comparison"


@dataclass(frozen=True)
class HPOPageArgs(CompareConfig):
    """The compute-matched comparison of static HPO (TPE, LLM-TPE per advisor) with policies, and its page."""

    write: bool = False
    """Write docs/results/hpo_<family>.md and .json (command, commit, date and machine recorded)."""


def page_name(env_id: str) -> str:
    """``hpo_<family>``: the env's task family, as in the tuned-defaults pages (``good_defaults_<family>``)."""
    return family_page_name("hpo", env_id)


def command_line(args: HPOPageArgs) -> str:
    """The command that reproduces the page (non-default flags only; the rows resume from ``--out-dir``)."""
    parts = PROG.split()
    for f in fields(args):
        value = getattr(args, f.name)
        if value == f.default or f.name == "write":
            continue
        flag = "--" + f.name.replace("_", "-")
        parts += [flag, *(str(v) for v in value)] if isinstance(value, tuple) else [flag, str(value)]
    return shlex.join(parts + (["--write"] if args.write else []))


def pathology_table(result: Comparison, config: CompareConfig) -> tuple[str, dict[str, dict[str, float]]]:
    """Mean test accuracy per planted pathology (ground truth, never shown to any method) of each single-run row and
    each sampler at the largest budget; ``("", {})`` when the env plants none."""
    from traingym.experiments.information_gap import pathologies

    labels = dict(zip(config.indices, pathologies(config.env_id, "test", config.indices)))
    groups = sorted(set(labels.values()))
    if len(groups) < 2:
        return "", {}
    top = max(config.budgets)
    chosen = [r for r in result.table if r["n_trials"] == top or r["source"] == "keep"
              or r["source"].startswith("policy[")]
    data: dict[str, dict[str, float]] = {}
    lines = ["| method | " + " | ".join(groups) + " |", "|" + "---|" * (len(groups) + 1)]
    for entry in chosen:
        source, n = entry["source"], entry["n_trials"]
        rows = [r for r in result.rows if row_source(r) == source and r["n_trials"] == n]
        means = {g: float(np.mean([r["test_accuracy"] for r in rows if labels[r["instance_index"]] == g]))
                 for g in groups if any(labels[r["instance_index"]] == g for r in rows)}
        data[entry["method"]] = {g: round(v, 4) for g, v in means.items()}
        lines.append(f"| {entry['method']} | " + " | ".join(f"{means[g]:.3f}" if g in means else "—" for g in groups)
                     + " |")
    counts = ", ".join(f"{g}: {list(labels.values()).count(g)}" for g in groups)
    return "\n".join(lines) + f"\n\nInstances per pathology: {counts}.\n", data


def write_page(result: Comparison, args: HPOPageArgs, out_dir: Path | None = None) -> Path:
    """``docs/results/hpo_<family>.md`` and ``.json`` (``out_dir``: another folder, e.g. in tests)."""
    from traingym.experiments.results import write_result

    n = max((r["n_instances"] for r in result.table), default=0)
    budgets = ", ".join(str(b) for b in args.budgets)
    intro = (f"Held-out instances {args.first_instance}..{args.first_instance + args.n_instances - 1} of "
             f"`{args.env_id}` (instance i trained with seed i; up to {n} per row), T={args.horizon} env steps of "
             f"K={args.steps_per_action} {args.optimizer} steps per run. TPE and LLM-TPE tune the starting learning "
             "rate, weight decay and augmentation level of the run and never move; a row reports the trial with the "
             f"best final validation accuracy among the first N (N = {budgets}) and that trial's test accuracy. "
             f"LLM-TPE (SLLMBO's hybrid, p_llm={args.p_llm}) asks its advisor on a seeded coin, else TPE samples the "
             "trial; an unusable answer falls back to TPE. Each instance's studies share one sampler seed. Policies "
             "run once and may move every step (good_defaults and diagnosis_aware_defaults start from their tuned "
             "values, the others from the instance's start). Compute: target-network optimizer steps per instance; "
             "advisor calls are not counted in it. Intervals: 95% percentile bootstrap over instances; differences "
             "are paired by instance.")
    lines = [intro, "", markdown_table(result.table), ""]
    lines += [f"- note: {note}" for note in result.notes]
    totals = llm_tpe_totals(result.rows)
    for advisor, stats in totals.items():
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(stats.get("fallback_reasons", {}).items())) or "none"
        lines.append(f"- LLM-TPE[{advisor}], all {max(args.budgets)}-trial studies: {stats.get('llm_calls', 0)} "
                     f"advisor calls, {stats.get('llm_trials', 0)} proposals accepted, fallbacks by reason: {reasons}; "
                     f"{stats.get('prompt_tokens', 0)} prompt + {stats.get('completion_tokens', 0)} completion "
                     "tokens.")
    seconds = study_seconds(result.rows, args)
    if seconds:
        lines.append("- Wall seconds per instance (the whole max-budget study, advisor calls included; on the "
                     "machine below, shared with other jobs): "
                     + ", ".join(f"{source_label(s)}: {v:g}" for s, v in seconds.items()) + ".")
    lines.append(f"- Plot: `{Path(args.out_dir) / 'accuracy_vs_compute.png'}` (written by the command, not "
                 "committed).")
    by_pathology, per_pathology = pathology_table(result, args)
    if by_pathology:
        lines += ["", "## By planted pathology", "",
                  "Mean test accuracy per instance's planted pathology (ground truth, never seen by any method); "
                  f"policies, keep and the samplers at N={max(args.budgets)}.", "", by_pathology]
    data: dict[str, Any] = {"config": asdict(args), "table": result.table, "llm_tpe_totals": totals,
                            "notes": result.notes, "study_seconds": seconds, "per_pathology": per_pathology,
                            "rows": result.rows}
    return write_result(page_name(args.env_id), f"Static HPO vs policies on {args.env_id}, compute-matched",
                        "\n".join(lines), data, command=command_line(args), out_dir=out_dir)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_cli(HPOPageArgs, argv, PROG)
    started = time.perf_counter()
    result = run_and_print(args, PROG)
    page = f"; page {write_page(result, args)}" if args.write else ""
    print(f"wrote {args.out_dir}/table.csv, table.json, accuracy_vs_compute.png{page} "
          f"({time.perf_counter() - started:.0f}s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
