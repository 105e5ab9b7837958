"""TrainGym speed benchmarks: how far an env step is from a bare PyTorch loop, resets, vector envs, PPO.

Run (the one documented command; ``--smoke`` is the seconds-long variant the test suite runs)::

    .venv/bin/python benchmarks/run.py [--smoke] [--out FILE] [--device cpu|cuda] [--figures NAME ...]

Every figure that compares speeds is a ratio measured side by side in this one process, interleaved, as the
median of several repetitions: absolute times on a shared 2-core machine are noise, ratios much less so. The
full run takes a few minutes on 2 cores; it prints the JSON below and writes it to ``--out``
(default ``runs/benchmarks.json``; ``runs/`` is git-ignored).

## Output schema (``schema_version`` 1)
```json
{
  "schema_version": 1,
  "mode": "full | smoke",
  "command": "benchmarks/run.py ...",
  "elapsed_s": 312.4,
  "machine": {"cpu_count": 2, "loadavg": [1.2, 1.0, 0.8], "python": "3.11.7", "torch": "2.13.0+cpu",
              "gymnasium": "1.4.0", "stable_baselines3": "2.9.2", "torch_threads": 1, "cuda_available": false,
              "sched_autogroup": true,                              // Linux: CPU shared equally per session
              "cpu_pressure": "some avg10=42.20 avg60=62.35 avg300=67.00 total=4423401135"},  // /proc/pressure/cpu
  "loadavg_end": [1.5, 1.1, 0.9],
  "env_kwargs": {"device": "cpu"},            // TrainingEnv kwargs on top of the defaults (smoke: tiny K etc.)
  "figures": {
    "step_overhead": {                          // benchmarks/step_overhead.py; one entry per task family
      "digits_mlp": {"ratio": 1.08,             // median over reps of env step time / bare loop time
                     "ratio_p25": 1.06, "ratio_p75": 1.1,
                     "ratio_encoder_cached": 1.05,  // same, encoder cache misses taken out (a warm cache)
                     "env_ms": 21.3, "bare_ms": 19.7, "reps": 12, "steps_per_rep": 10, "warmup_steps": 20,
                     "components": {"train_loop": 0.01, "validation": 0.004, "moves": 0.001, "neuron_log": 0.02,
                                    "events": 0.002, "observation": 0.003, "report": 0.01, "advisor": 0.02,
                                    "encoder": 0.01, "relevance": null, "other": 0.001},  // fractions of a bare step
                     "encoder_hit_rate": 0.97,  // encoder cache hits / lookups during the timed steps
                     "obs_keys": ["training_stats", "neurons", "diagnosis"], "hparams_match": true,
                     "reason": null},           // why ratio is null (e.g. family not registered)
      "reviews_bert": {"ratio": null, "reason": "task family 'reviews_bert' is not registered ..."}
    },
    "reset_ms": {"digits_mlp": {"median_ms": 6.1, "p25_ms": 5.8, "p75_ms": 6.9, "first_reset_ms": 40.2,
                                "reps": 30, "data_cached": true, "reason": null}},       // benchmarks/reset_time.py
    "vec_scaling": {"ratio": 1.8, "ratio_p25": 1.7, "ratio_p75": 1.9, "steps_per_s_1": 40.1,
                    "steps_per_s_2": 72.3, "cpu_share_1": 0.98, "cpu_share_2": 0.93,  // CPU s per wall s per env
                    "cpu_efficiency": 0.97,   // CPU s per step: single / pair (null without /proc)
                    "n_envs": 2, "blocks": 6, "steps_per_block": 15, "env_id": "TrainGym/DigitsMLP-v0",
                    "instance_index": 0, "start_method": "default"},                      // benchmarks/vec_scaling.py
    "encoder_cache_hit_rate": {"value": 0.96, "episodes": 100, "lookups": 2100, "distinct_texts": 80,
                               "exact_cache_bound": 0.962, "encoder": "minilm", "advisor": "heuristic",
                               "elapsed_s": 95.0, "reason": null},                       // benchmarks/encoder_cache.py
    "ppo_fps": {"fps": 35.2, "env_steps_per_s": 41.0, "env_time_fraction": 0.86, "total_timesteps": 256,
                "n_steps": 128, "env_id": "TrainGym/DigitsMLP-v0"}                       // benchmarks/ppo_fps.py
  },
  "targets": {"step_overhead.digits_mlp": {"value": 1.08, "target": "<= 1.1", "met": true}, ...}
}
```
A figure that could not be measured has ``null`` values and a ``reason``; ``targets[...].met`` is then null.
A figure left out with ``--figures`` is absent. Timing ratios are only meaningful in the full mode.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable (for ``benchmarks.*``)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from traingym.protocol.cli import StrTuple, parse_cli  # noqa: E402  (after the offline switches)

SCHEMA_VERSION = 1
FIGURES: tuple[str, ...] = ("step_overhead", "reset_ms", "vec_scaling", "batched_env", "encoder_cache_hit_rate",
                             "ppo_fps")
DEFAULT_ENV_ID = "TrainGym/DigitsMLP-v0"
DEFAULT_FAMILY = "digits_mlp"
SMOKE_KWARGS: dict[str, Any] = {"steps_per_action": 2, "val_size": 64, "encoder": "hashing"}
"""Smoke mode: tiny env steps and the model-free encoder, so the whole suite runs in seconds."""


def _plan(smoke: bool) -> dict[str, dict[str, Any]]:
    """Repetition counts per figure (full mode sized to stay well under 10 minutes on 2 busy cores)."""
    if smoke:
        return {"step_overhead": {"reps": 2, "steps_per_rep": 2, "warmup_steps": 1, "time_budget_s": 10.0},
                "reset_ms": {"reps": 2}, "vec_scaling": {"blocks": 2, "steps_per_block": 2, "start_method": "fork"},
                "encoder_cache_hit_rate": {"episodes": 2}, "ppo_fps": {"n_steps": 16, "total_timesteps": 32},
                "batched_env": {"sizes": (1, 4), "blocks": 1, "env_steps_per_block": 4}}
    return {"step_overhead": {"reps": 15, "steps_per_rep": 10, "warmup_steps": 20, "time_budget_s": 30.0},
            "reset_ms": {"reps": 30}, "vec_scaling": {"blocks": 6, "steps_per_block": 15},
            "encoder_cache_hit_rate": {"episodes": 100}, "ppo_fps": {"n_steps": 128, "total_timesteps": 256},
            "batched_env": {"sizes": (1, 16), "blocks": 3, "env_steps_per_block": 32}}


TARGETS: tuple[tuple[str, str, float], ...] = (
    ("step_overhead.digits_mlp", "<=", 1.10),
    ("step_overhead.digits_cnn", "<=", 1.10),
    ("step_overhead.reviews_bert", "<=", 1.20),
    ("reset_ms.digits_mlp", "<=", 20.0),
    ("reset_ms.digits_cnn", "<=", 20.0),
    ("vec_scaling", ">=", 1.6),
    ("batched_env.speedup_n16", ">=", 5.0),
    ("encoder_cache_hit_rate", ">=", 0.95),
)
"""Targets (default config: heuristic advisor, MiniLM encoder; relevance on for reviews_bert). ``batched_env``:
the batched DigitsMLP env with 16 sub-envs in 2 worker processes (8 each) over a 2-worker SubprocVecEnv (both on
the same two cores), default observation."""


def _target_value(figures: dict[str, Any], name: str) -> float | None:
    figure, _, family = name.partition(".")
    entry = figures.get(figure)
    if entry is None:
        return None
    if family:
        entry = entry.get(family, {})
    for key in ("ratio", "median_ms", "value", "speedup"):
        if key in entry:
            return entry[key]
    return None


def evaluate_targets(figures: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for name, op, bound in TARGETS:
        if name.partition(".")[0] not in figures:
            continue
        value = _target_value(figures, name)
        met = None if value is None else (value <= bound if op == "<=" else value >= bound)
        out[name] = {"value": value, "target": f"{op} {bound:g}", "met": met}
    return out


def run_suite(*, smoke: bool, device: str = "cpu", figures: tuple[str, ...] = FIGURES,
              log: Any = sys.stderr) -> dict[str, Any]:
    """Measure the selected figures; returns the JSON-able result (schema in the module doc)."""
    import torch
    import traingym.envs  # noqa: F401  (registers the environments)

    from benchmarks.batched_env import measure_batched
    from benchmarks.encoder_cache import measure_encoder_cache
    from benchmarks.ppo_fps import measure_ppo_fps
    from benchmarks.reset_time import measure_resets
    from benchmarks.step_overhead import FAMILIES, measure_family
    from benchmarks.timing import machine_info, rounded
    from benchmarks.vec_scaling import measure_vec_scaling

    torch.set_num_threads(1)
    started = time.perf_counter()
    plan = _plan(smoke)
    env_kwargs: dict[str, Any] = {**(SMOKE_KWARGS if smoke else {}), "device": device}
    result: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "mode": "smoke" if smoke else "full",
                              "command": " ".join(["benchmarks/run.py", *sys.argv[1:]]),
                              "elapsed_s": None, "machine": machine_info(), "loadavg_end": None,
                              "env_kwargs": env_kwargs, "figures": {}, "targets": {}}
    out = result["figures"]

    def note(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", file=log, flush=True)

    if "step_overhead" in figures:
        out["step_overhead"] = {}
        for family in FAMILIES:
            note(f"step_overhead {family}")
            out["step_overhead"][family] = measure_family(family, env_kwargs, **plan["step_overhead"])
    if "reset_ms" in figures:
        note("reset_ms")
        out["reset_ms"] = measure_resets(FAMILIES, env_kwargs, **plan["reset_ms"])
    if "vec_scaling" in figures:
        note("vec_scaling")
        out["vec_scaling"] = measure_vec_scaling(DEFAULT_ENV_ID, env_kwargs, **plan["vec_scaling"])
    if "batched_env" in figures:
        note("batched_env")
        out["batched_env"] = measure_batched(DEFAULT_ENV_ID, env_kwargs, **plan["batched_env"])
    if "encoder_cache_hit_rate" in figures:
        note("encoder_cache_hit_rate")
        out["encoder_cache_hit_rate"] = measure_encoder_cache(DEFAULT_FAMILY, env_kwargs,
                                                              **plan["encoder_cache_hit_rate"])
    if "ppo_fps" in figures:
        note("ppo_fps")
        out["ppo_fps"] = measure_ppo_fps(DEFAULT_ENV_ID, env_kwargs, **plan["ppo_fps"])
    result["targets"] = evaluate_targets(out)
    result["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    result["elapsed_s"] = rounded(time.perf_counter() - started, 1)
    note("done")
    return result


@dataclass(frozen=True)
class BenchArgs:
    """TrainGym speed benchmarks: how far an env step is from a bare PyTorch loop, resets, vector envs, PPO."""

    smoke: bool = False
    """Tiny repetitions: checks the suite runs (seconds)."""
    out: str = "runs/benchmarks.json"
    """Write the JSON result here."""
    device: str = "cpu"
    """Device of the target networks (cpu, cuda, cuda:N)."""
    figures: StrTuple = FIGURES
    """Measure only these figures (step_overhead, reset_ms, vec_scaling, batched_env, encoder_cache_hit_rate,
    ppo_fps); docs/results/benchmarks.md is written only by a full run of all of them."""

    def __post_init__(self) -> None:
        unknown = [f for f in self.figures if f not in FIGURES]
        if unknown or not self.figures:
            raise ValueError(f"--figures must be names from {FIGURES}, got {list(self.figures)}")


def main(argv: list[str] | None = None) -> int:
    args = parse_cli(BenchArgs, argv, "benchmarks/run.py")
    result = run_suite(smoke=args.smoke, device=args.device, figures=tuple(args.figures))
    text = json.dumps(result, indent=2)
    print(text)
    print(targets_table(result["targets"]), file=sys.stderr)
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    if not args.smoke and args.figures == FIGURES:
        from traingym.experiments.results import write_result

        write_result("benchmarks", "Speed benchmarks (benchmarks/run.py)", page(result), data=result)
    return 0


def page(result: dict[str, Any]) -> str:
    """The Markdown body of docs/results/benchmarks.md for a full suite's ``result``."""
    ceiling = result["figures"].get("batched_env", {}).get("ceiling")
    bound = ("" if ceiling is None else f"\n\nTraining-only ceiling of the batched env (N={ceiling['n']} in "
             f"{ceiling['workers']} workers, if everything but `StackedMLP.train` cost nothing): "
             f"{ceiling['speedup_vs_subproc2']}x SubprocVecEnv(2); see batched_env.md.")
    return (f"{targets_table(result['targets'])}{bound}\n\nWhole suite: {result['elapsed_s']} s; load average at "
            f"the start {result['machine'].get('loadavg')}, at the end {result['loadavg_end']}. Raw figures: "
            "benchmarks.json next to this page.")


def targets_table(targets: dict[str, dict[str, Any]]) -> str:
    """Every target as a Markdown table row: figure, measured value, target, met / not met."""
    rows = ["| figure | value | target | |", "|---|---|---|---|"]
    for name, entry in targets.items():
        verdict = {True: "met", False: "**not met**", None: "not measured"}[entry["met"]]
        rows.append(f"| {name} | {entry['value']} | {entry['target']} | {verdict} |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
