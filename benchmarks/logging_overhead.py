"""What the neuron log and token relevance cost: env step time with them on / off, per task family.

For each family the script builds, in this one process, envs that differ in one switch only:

* ``default``: the default config (neuron log ``("selective", "events", "summaries")``, relevance on);
* ``logging_off``: ``neuron_log=()`` (no error pass, no activation statistics, no events);
* ``relevance_off`` (text families): ``relevance=False`` (no diagnostic pass, no token relevance);
* ``all_off`` (text families): both off.

All variants play the same instances with the same seeded random moves, stepped interleaved (one step of each
variant in turn, the order rotating every step), so slow drifts of a shared machine hit them alike. One
repetition is a block of ``steps_per_rep`` steps per variant; its ratio is the block's summed step time of
``default`` over the summed step time of the other variant. Reported: the median (and quartiles) over
repetitions of

* ``logging``: default / logging_off;
* ``relevance``: default / relevance_off (text families);
* ``total``: default / all_off (text families: logging and relevance together; other families: = logging).

Wall-clock (``perf_counter``) ratios are the figures; CPU-time (``process_time``) ratios are reported alongside,
as they are less disturbed by other processes on a busy machine. Steps where any variant diverged (no
validation pass) are not counted, and all variants start a new episode together. Observations are
``("training_stats", "neurons")``: the advisor and its encoder do not depend on these switches.

Run::

    .venv/bin/python benchmarks/logging_overhead.py [--families digits_mlp ... reviews_bert] [--reps N]
        [--steps-per-rep N] [--out runs/logging_overhead.json]

Default repetitions (:data:`PLAN`): 15 blocks of 10 steps for the small families (~20 ms steps), 7 blocks of 3
steps for text families (~1 s steps); a few minutes in all on two busy cores.

Targets: ``logging`` <= 1.10 for the MLP/CNN families, ``total`` <= 1.20 for ``reviews_bert``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from traingym.protocol.cli import StrTuple, parse_cli

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SCHEMA_VERSION = 1
FAMILIES: tuple[str, ...] = ("digits_mlp", "digits_cnn", "mnist_cnn", "tabular_mlp", "reviews_bert")
OBS_KEYS = ("training_stats", "neurons")
TARGETS: dict[str, tuple[str, float]] = {
    "digits_mlp": ("logging", 1.10), "digits_cnn": ("logging", 1.10), "mnist_cnn": ("logging", 1.10),
    "tabular_mlp": ("logging", 1.10), "reviews_bert": ("total", 1.20), "reviews_shortcut": ("total", 1.20),
}
"""Family -> (ratio, bound)."""
PLAN: dict[bool, dict[str, int]] = {False: {"reps": 15, "steps_per_rep": 10}, True: {"reps": 7, "steps_per_rep": 3}}
"""Default repetitions for non-text (False) and text (True) families."""


def _variants(text: bool) -> dict[str, dict[str, Any]]:
    variants: dict[str, dict[str, Any]] = {"default": {}, "logging_off": {"neuron_log": ()}}
    if text:
        variants["relevance_off"] = {"relevance": False}
        variants["all_off"] = {"neuron_log": (), "relevance": False}
    return variants


def _summary(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "p25": None, "p75": None}
    q = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else [values[0]] * 3
    return {"median": round(statistics.median(values), 4), "p25": round(q[0], 4), "p75": round(q[2], 4)}


def measure_logging_overhead(family: str, env_kwargs: dict[str, Any] | None = None, *, reps: int | None = None,
                             steps_per_rep: int | None = None, warmup_steps: int = 2, seed: int = 0
                             ) -> dict[str, Any]:
    """The on/off step-time ratios of one family (module doc). ``env_kwargs`` go to every variant; ``reps`` and
    ``steps_per_rep`` default to :data:`PLAN`."""
    import numpy as np
    from traingym.envs.tasks.registry import make_task
    from traingym.envs.training_env import TrainingEnv

    text = make_task(family).vocabulary() is not None
    reps = PLAN[text]["reps"] if reps is None else reps
    steps_per_rep = PLAN[text]["steps_per_rep"] if steps_per_rep is None else steps_per_rep
    variants = _variants(text)
    base = {"obs_keys": OBS_KEYS, **(env_kwargs or {})}
    envs = {name: TrainingEnv(task=family, **{**base, **extra}) for name, extra in variants.items()}
    names = list(envs)
    rng = np.random.default_rng(seed)
    episode = 0

    def new_episode() -> None:
        nonlocal episode
        episode += 1
        for env in envs.values():
            env.reset(seed=seed * 10_000 + episode)

    new_episode()
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    block_wall = dict.fromkeys(names, 0.0)
    block_cpu = dict.fromkeys(names, 0.0)
    block_steps = step_index = 0
    started = time.perf_counter()
    while len(wall["default"]) < reps:
        action = rng.integers(0, 3, size=4)
        order = names[step_index % len(names):] + names[: step_index % len(names)]
        seconds, cpu_seconds, ended, diverged = {}, {}, False, False
        for name in order:
            t0, c0 = time.perf_counter(), time.process_time()
            _, _, terminated, truncated, _ = envs[name].step(action)
            seconds[name], cpu_seconds[name] = time.perf_counter() - t0, time.process_time() - c0
            ended |= terminated or truncated
            diverged |= terminated
        step_index += 1
        if step_index > warmup_steps and not diverged:
            for name in names:
                block_wall[name] += seconds[name]
                block_cpu[name] += cpu_seconds[name]
            block_steps += 1
            if block_steps == steps_per_rep:
                for name in names:
                    wall[name].append(block_wall[name])
                    cpu[name].append(block_cpu[name])
                block_wall, block_cpu, block_steps = dict.fromkeys(names, 0.0), dict.fromkeys(names, 0.0), 0
        if ended:
            new_episode()
    for env in envs.values():
        env.close()

    def ratios(times: dict[str, list[float]], other: str) -> list[float]:
        return [a / b for a, b in zip(times["default"], times[other]) if b > 0]

    pairs = {"logging": "logging_off", **({"relevance": "relevance_off", "total": "all_off"} if text else {})}
    out: dict[str, Any] = {
        "text": text,
        **{key: _summary(ratios(wall, other)) for key, other in pairs.items()},
        "cpu": {key: _summary(ratios(cpu, other)) for key, other in pairs.items()},
        "step_ms": {n: round(1000 * statistics.median(wall[n]) / steps_per_rep, 2) for n in names},
        "reps": reps, "steps_per_rep": steps_per_rep, "elapsed_s": round(time.perf_counter() - started, 1),
    }
    if not text:
        out["total"] = out["logging"]
        out["cpu"]["total"] = out["cpu"]["logging"]
    return out


@dataclass(frozen=True)
class LoggingOverheadArgs:
    """What the neuron log and token relevance cost: env step time with them on / off, per task family."""

    families: StrTuple = FAMILIES
    """Task families to measure."""
    reps: int | None = None
    """Blocks per family (default: PLAN)."""
    steps_per_rep: int | None = None
    """Steps per block (default: PLAN)."""
    warmup_steps: int = 2
    """Untimed steps before the blocks."""
    steps_per_action: int | None = None
    """K (default: the env default, 50)."""
    device: str = "cpu"
    """Device of the target networks."""
    out: str | None = None
    """Also write the JSON here."""


def main(argv: list[str] | None = None) -> int:
    args = parse_cli(LoggingOverheadArgs, argv, "benchmarks/logging_overhead.py")

    import torch
    import traingym.envs  # noqa: F401  (registers the environments)

    torch.set_num_threads(1)
    env_kwargs: dict[str, Any] = {"device": args.device}
    if args.steps_per_action is not None:
        env_kwargs["steps_per_action"] = args.steps_per_action
    result: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "command": " ".join(["benchmarks/logging_overhead.py", *sys.argv[1:]]),
        "machine": {"cpu_count": os.cpu_count(), "loadavg": [round(v, 2) for v in os.getloadavg()],
                    "python": platform.python_version(), "torch": torch.__version__, "torch_threads": 1},
        "env_kwargs": {**env_kwargs, "obs_keys": list(OBS_KEYS)}, "families": {}, "targets": {},
    }
    for family in args.families:
        print(f"measuring {family} ...", file=sys.stderr, flush=True)
        result["families"][family] = measure_logging_overhead(
            family, env_kwargs, reps=args.reps, steps_per_rep=args.steps_per_rep, warmup_steps=args.warmup_steps)
        if family in TARGETS:
            key, bound = TARGETS[family]
            value = result["families"][family][key]["median"]
            result["targets"][family] = {"ratio": key, "value": value, "target": f"<= {bound:g}",
                                         "met": None if value is None else value <= bound}
    result["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
