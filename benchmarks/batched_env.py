"""Figure ``batched_env``: env steps/s of the batched MLP vector env for N sub-envs, next to ``SubprocVecEnv``.

For each observation setting (the default: all three keys; or chosen keys, e.g. ``training_stats`` only), one
process holds a 2-worker ``SubprocVecEnv`` of the single env, a :class:`BatchedTrainingEnv` for every N and a
2-worker :class:`~traingym.envs.batched.shards.BatchedShardsVecEnv` for every N >= 2, all on the same config and seed
(random instances from the train set, random actions, auto-resets included: what an agent sees). Blocks of steps
alternate between them (subproc, N=1, N=4, N=4 in 2 workers, ...), each timed on its own; a figure is the median
over blocks of env steps (sub-env steps) per second, and ``speedup_vs_subproc2`` divides by the subproc figure of
the same block round. The target compares like with like: both sides use the same two cores.

FLOPs: forward matmul FLOPs of a training batch (``2 * B * sum(in * out)`` over the layers) times 3 for forward
plus backward, times K, per env step: ``useful`` with each instance's own architecture, ``computed`` with the
stack's padded width, inputs and classes at the instance's own depth (what the batched env really multiplies).
The achieved fraction is useful FLOP/s over a measured single-thread float32 ``torch.mm`` peak (1024 x 1024).
``train_share`` is the fraction of the batched env's step time spent in :meth:`StackedMLP.train` (the rest:
batch drawing and augmentation, validation, neuron log, observations, per-env Python).

``ceiling``: how fast the target configuration (N=16 in 2 workers) could go if nothing but the training steps
cost time. An in-process batched env holding one worker's share (N / workers sub-envs) is timed in the same
blocks; its sub-env steps per second of :meth:`StackedMLP.train` alone, times the workers, over the block's
SubprocVecEnv figure. No change outside the training steps can take the target past this ceiling. They still
compute what the single env's optimizer steps compute, bit for bit; since the batched env's equivalence with the
single env became statistical (:mod:`traingym.envs.batched.mlp`), other kernels or roundings would be allowed.

Run: ``.venv/bin/python -m benchmarks.batched_env`` (``--smoke`` for a seconds-long check). Prints JSON and
writes ``docs/results/batched_env.md``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import sys
import time
from typing import Any

import numpy as np
import torch
from traingym.envs.batched.mlp import BatchedTrainingEnv, Grouping
from traingym.experiments.results import write_result
from traingym.protocol.cli import IntTuple, StrTuple, parse_cli

from benchmarks.timing import PhaseClock, machine_info, median, rounded
from benchmarks.vec_scaling import make_env

TARGET_SPEEDUP = 5.0
TARGET_N = 16
TARGET_WORKERS = 2
"""Target: N=16 batched in 2 worker processes (the cores the SubprocVecEnv uses) >= 5x the steps/s of a
2-worker SubprocVecEnv."""


@dataclasses.dataclass(frozen=True)
class Args:
    """Batched env throughput against SubprocVecEnv."""

    env_id: str = "TrainGym/DigitsMLP-v0"
    """A batched env id."""
    sizes: IntTuple = (1, 4, 16, 64)
    """Numbers of sub-envs N of the batched env."""
    workers: IntTuple = (1, 2)
    """Worker processes of the batched env (1: in this process; more: ``BatchedShardsVecEnv``, N split between
    them), each with every N >= workers."""
    obs_settings: StrTuple = ("default", "training_stats")
    """Observation settings: ``default`` (all keys) or observation keys joined by ``+`` (``training_stats``,
    ``training_stats+neurons``)."""
    blocks: int = 3
    """Timed block rounds per setting."""
    env_steps_per_block: int = 32
    """Sub-env steps per timed block (a batched block takes max(1, this / N) vector steps)."""
    seed: int = 0
    """Seed of every vector env (sub-env i gets seed + i)."""
    grouping: Grouping = "width"
    """BatchedTrainingEnv grouping: none, width or architecture (other than width: writes batched_env_<grouping>)."""
    device: str = "cpu"
    """Torch device of the batched env's target networks (cpu, cuda, cuda:N); the SubprocVecEnv baseline stays on
    the CPU. Other than cpu: writes batched_env_<device>."""
    smoke: bool = False
    """Tiny run (K=5, 1 block, N up to 4) that checks the script works; writes no results page."""
    write: bool = True
    """Write docs/results/batched_env.md (and .json)."""


def matmul_peak_gflops(size: int = 1024, repeats: int = 5, device: str = "cpu") -> float:
    """Best float32 ``torch.mm`` GFLOP/s over a few repeats (single-thread on the CPU)."""
    a, b = torch.rand(size, size, device=device), torch.rand(size, size, device=device)
    torch.mm(a, b)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    best = float("inf")
    for _ in range(repeats):
        sync()
        started = time.perf_counter()
        torch.mm(a, b)
        sync()
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


def flops_per_env_step(env: BatchedTrainingEnv) -> dict[str, float]:
    """Mean useful and computed training FLOPs per sub-env step (3x forward matmul FLOPs, K steps)."""
    config = env.envs[0].config
    k, b = config.steps_per_action, config.batch_size
    useful, computed = [], []
    for stack in env.stacks:
        for depth, width, n_in, n_out in stack.shapes:
            dims = [n_in, *[width] * depth, n_out]
            padded = [stack.n_in, *[stack.width] * depth, stack.n_out]  # each row runs its own depth only
            useful.append(sum(2 * b * i * o for i, o in zip(dims, dims[1:])))
            computed.append(sum(2 * b * i * o for i, o in zip(padded, padded[1:])))
    return {"useful": 3 * k * float(np.mean(useful)), "computed": 3 * k * float(np.mean(computed))}


def measure(args: Args, obs_setting: str, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    from stable_baselines3.common.vec_env import SubprocVecEnv
    from traingym.envs.batched.sb3 import make_batched_vec_env
    from traingym.envs.batched.shards import BatchedShardsVecEnv

    kwargs = {**env_kwargs, **({} if obs_setting == "default" else {"obs_keys": obs_setting.split("+")})}
    subproc = SubprocVecEnv([functools.partial(make_env, args.env_id, kwargs)] * 2)
    subproc.seed(args.seed)
    subproc.reset()
    batched: dict[int, BatchedTrainingEnv] = {}
    shards: dict[tuple[int, int], BatchedShardsVecEnv] = {}
    clocks: dict[int, PhaseClock] = {}
    rng = np.random.default_rng(args.seed)
    configs = [(n, w) for n in args.sizes for w in args.workers if w <= n]
    sps: dict[Any, list[float]] = {"subproc2": [], **{c: [] for c in configs}}
    train_share: dict[int, list[float]] = {n: [] for n in args.sizes}
    target = (TARGET_N, TARGET_WORKERS) if (TARGET_N, TARGET_WORKERS) in configs else None
    share = TARGET_N // TARGET_WORKERS  # sub-envs per worker in the target configuration
    ceiling: list[float] = []
    try:
        for n in sorted({*args.sizes, *([share] if target else [])}):
            env = BatchedTrainingEnv(n, grouping=args.grouping, **kwargs, device=args.device)
            clocks[n] = PhaseClock()
            env.reset(seed=args.seed)
            _time_training(env, clocks[n])
            env.step(rng.integers(0, 3, size=(n, 4)))  # warm-up
            batched[n] = env
        for n, w in configs:
            if w > 1:
                vec = make_batched_vec_env(args.env_id, n, workers=w, grouping=args.grouping, **kwargs,
                                           device=args.device)
                vec.seed(args.seed)
                vec.reset()
                vec.step(rng.integers(0, 3, size=(n, 4)))  # warm-up
                shards[n, w] = vec
        subproc.step(rng.integers(0, 3, size=(2, 4)))
        for _ in range(args.blocks):
            steps = max(1, args.env_steps_per_block // 2)
            started = time.perf_counter()
            for _ in range(steps):
                subproc.step(rng.integers(0, 3, size=(2, 4)))
            sps["subproc2"].append(2 * steps / (time.perf_counter() - started))
            for n, w in configs:
                steps = max(1, args.env_steps_per_block // n)
                if w == 1:
                    env = batched[n]
                    _time_training(env, clocks[n])
                    clocks[n].take()
                started = time.perf_counter()
                for _ in range(steps):
                    actions = rng.integers(0, 3, size=(n, 4))
                    batched[n].step(actions) if w == 1 else shards[n, w].step(actions)
                elapsed = time.perf_counter() - started
                sps[n, w].append(n * steps / elapsed)
                if w == 1 and n in train_share:
                    train_share[n].append(clocks[n].take().get("train", 0.0) / elapsed)
            if target:
                ceiling.append(TARGET_WORKERS * _training_only_sps(batched[share], clocks[share], args, rng)
                               / sps["subproc2"][-1])
        flops = {n: flops_per_env_step(env) for n, env in batched.items()}
    finally:
        subproc.close()
        for env in batched.values():
            env.close()
        for vec in shards.values():
            vec.close()
    subproc_sps = median(sps["subproc2"]) or float("nan")
    rows = []
    for n, w in configs:
        ratios = [b / s for b, s in zip(sps[n, w], sps["subproc2"])]
        steps_per_s = median(sps[n, w]) or float("nan")
        in_process = w == 1  # the stack shapes (computed FLOPs) and the training share are read in this process
        rows.append({"n": n, "workers": w, "steps_per_s": rounded(steps_per_s, 2),
                     "speedup_vs_subproc2": rounded(median(ratios), 2),
                     "train_share": rounded(median(train_share[n]), 3) if in_process else None,
                     "useful_gflop_per_step": rounded(flops[n]["useful"] / 1e9, 4),
                     "computed_gflop_per_step": rounded(flops[n]["computed"] / 1e9, 4) if in_process else None,
                     "useful_gflops": rounded(flops[n]["useful"] * steps_per_s / 1e9, 3)})
    out = {"obs": obs_setting, "obs_keys": list(kwargs.get("obs_keys", ())) or "all",
           "subproc2_steps_per_s": rounded(subproc_sps, 2), "batched": rows}
    if target:
        out["ceiling"] = {"n": target[0], "workers": target[1], "sub_envs_per_worker": share,
                          "speedup_vs_subproc2": rounded(median(ceiling), 2)}
    return out


def measure_batched(env_id: str, env_kwargs: dict[str, Any], sizes: tuple[int, ...], blocks: int,
                    env_steps_per_block: int) -> dict[str, Any]:
    """The ``batched_env`` figure of ``benchmarks/run.py``: the default observation's curve, and the speedup of
    the largest N (16 in the full suite) with the most workers (2) over the 2-worker SubprocVecEnv, as
    ``speedup_n<N>: {"speedup": x}``."""
    args = Args(env_id=env_id, sizes=sizes, obs_settings=("default",), blocks=blocks,
                env_steps_per_block=env_steps_per_block, device=env_kwargs.get("device", "cpu"), write=False)
    setting = measure(args, "default", {k: v for k, v in env_kwargs.items() if k != "device"})
    largest = setting["batched"][-1]
    return {**setting, f"speedup_n{largest['n']}": {"speedup": largest["speedup_vs_subproc2"]}}


def _training_only_sps(env: BatchedTrainingEnv, clock: PhaseClock, args: Args, rng: np.random.Generator) -> float:
    """Sub-env steps per second of ``env``'s training steps alone (``StackedMLP.train``), over one block."""
    _time_training(env, clock)
    clock.take()
    steps = max(1, args.env_steps_per_block // env.num_envs)
    for _ in range(steps):
        env.step(rng.integers(0, 3, size=(env.num_envs, 4)))
    return env.num_envs * steps / (clock.take().get("train", 0.0) or float("nan"))


def _time_training(env: BatchedTrainingEnv, clock: PhaseClock) -> None:
    """Time every group stack's ``train`` under the label ``train`` (groups appear on resets: re-wrapped each
    block)."""
    for stack in env.stacks:
        if not hasattr(stack.train, "timed"):
            stack.train = clock.wrap("train", stack.train)  # type: ignore[method-assign]
            stack.train.timed = True  # type: ignore[attr-defined]


def run(args: Args) -> dict[str, Any]:
    torch.set_num_threads(1)
    sizes = tuple(n for n in args.sizes if n <= 4) if args.smoke else args.sizes
    if args.smoke:
        args = dataclasses.replace(args, sizes=sizes, blocks=1, env_steps_per_block=4)
    env_kwargs: dict[str, Any] = {"steps_per_action": 5} if args.smoke else {}
    # Other processes on the machine skew the figures (the ceiling most: it times one process against two), so
    # the page records the load around the run.
    machine = machine_info()
    peak = matmul_peak_gflops(size=4096 if args.device != "cpu" else 1024, device=args.device)
    settings = [measure(args, obs, env_kwargs) for obs in args.obs_settings]
    for setting in settings:
        for row in setting["batched"]:
            row["peak_fraction"] = rounded(row["useful_gflops"] / (peak * row["workers"]), 4)
    met = None
    for setting in settings:
        row16 = next((r for r in setting["batched"] if r["n"] == TARGET_N and r["workers"] == TARGET_WORKERS), None)
        if row16 is not None and row16["speedup_vs_subproc2"] is not None:
            ok = row16["speedup_vs_subproc2"] >= TARGET_SPEEDUP
            met = ok if met is None else (met and ok)
    return {"env_id": args.env_id, "env_kwargs": env_kwargs, "matmul_peak_gflops": rounded(peak, 2),
            "target": f"N={TARGET_N} in {TARGET_WORKERS} workers >= {TARGET_SPEEDUP}x SubprocVecEnv(2)",
            "target_met": met, "settings": settings, "machine": machine,
            "loadavg_end": [round(v, 2) for v in os.getloadavg()], "args": dataclasses.asdict(args)}


def markdown(result: dict[str, Any]) -> str:
    lines = [f"Env `{result['env_id']}`, default config (K=50, batch 64), random instances and actions, auto-resets "
             f"included; batched env grouping `{result['args']['grouping']}`, one torch thread per process, in this "
             "process (1 worker) or split between worker processes (`BatchedShardsVecEnv`); the SubprocVecEnv uses "
             "two processes. Single-thread matmul peak (the peak fraction is of workers x this): "
             f"{result['matmul_peak_gflops']} GFLOP/s on `{result['args']['device']}` (the batched env's device). "
             f"Load average (1, 5, 15 min) at the start {result['machine']['loadavg']} and the end "
             f"{result['loadavg_end']} on {result['machine']['cpu_count']} cores (other processes skew the figures, "
             "the ceiling most).", "",
             f"Target {result['target']}: **{'met' if result['target_met'] else 'not met'}**.", ""]
    for setting in result["settings"]:
        lines += [f"## Observation: {setting['obs']}", "",
                  f"SubprocVecEnv, 2 workers: {setting['subproc2_steps_per_s']} env steps/s.", "",
                  "| N | workers | env steps/s | x SubprocVecEnv(2) | share in batched training | useful GFLOP/step | "
                  "computed GFLOP/step | useful GFLOP/s | of matmul peak |", "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['n']} | {r['workers']} | {r['steps_per_s']} | {r['speedup_vs_subproc2']} | "
                  f"{r['train_share']} | {r['useful_gflop_per_step']} | {r['computed_gflop_per_step']} | "
                  f"{r['useful_gflops']} | {r['peak_fraction']} |" for r in setting["batched"]]
        if "ceiling" in setting:
            c = setting["ceiling"]
            lines.append(f"Training-only ceiling of N={c['n']} in {c['workers']} workers: "
                         f"**{c['speedup_vs_subproc2']}x** SubprocVecEnv(2), if batch drawing, augmentation, "
                         "validation, neuron log and observation cost nothing (each worker's "
                         f"{c['sub_envs_per_worker']} sub-envs' `StackedMLP.train` time alone, timed in the same "
                         "blocks).")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_cli(Args, argv, "python -m benchmarks.batched_env")
    result = run(args)
    print(json.dumps(result, indent=2))
    if args.write and not args.smoke:
        suffixes = [s for s in (args.grouping if args.grouping != "width" else "",
                                args.device.replace(":", "") if args.device != "cpu" else "") if s]
        name = "_".join(["batched_env", *suffixes])
        write_result(name, f"Batched MLP vector env: env steps/s (grouping {args.grouping}, {args.device})",
                     markdown(result), data=result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
