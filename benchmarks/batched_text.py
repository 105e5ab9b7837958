"""Figure ``batched_text``: env steps/s of the batched review-BERT env next to ``SubprocVecEnv(2)``, and the wall
time of a 10,000-step PPO run that follows from it.

One process holds a 2-worker ``SubprocVecEnv`` of the single env and, for every N, the batched env in 2 worker
processes (``gym.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point", workers=2)``), all on the same
config and seed (random instances from the train set, random actions, auto-resets included). Blocks of steps
alternate between them, each timed on its own; a figure is the median over blocks of sub-env steps per second,
and ``speedup_vs_subproc2`` divides by the SubprocVecEnv figure of the same block round. Both sides use the same
two cores (one torch thread per process).

``train_share``: the share of an in-process batched env's step spent in its grouped training (the rest:
batches, augmentation, validation, neuron log, token relevance on its cadence, observations), and
``relevance_share`` the part in token relevance, timed in one block of an in-process env of N / 2 sub-envs
(one worker's share).

PPO estimate: SB3 PPO (``MultiInputPolicy``, ``n_steps`` 16 per sub-env, minibatch 64, 10 epochs: the agents'
settings) runs ``ppo_rollouts`` rollouts on the batched env in 2 workers (the SB3 adapter); its update time per
env step plus the measured env time per step, times 10,000, is the estimate for each vector env
(``ppo_10k_minutes``). The goal (issue 25): <= 60 minutes on 2 cores.

Run: ``.venv/bin/python -m benchmarks.batched_text`` (``--smoke`` for a seconds-long check). Prints JSON and
writes ``docs/results/batched_text.md``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import sys
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from traingym.envs import ENV_KWARGS, ENV_TASKS
from traingym.envs.batched.text import BatchedTextEnv
from traingym.experiments.results import write_result
from traingym.protocol.cli import IntTuple, StrTuple, parse_cli

from benchmarks.ppo_fps import TimedVecEnv
from benchmarks.timing import PhaseClock, machine_info, median, rounded
from benchmarks.vec_scaling import cpu_seconds, make_env

GOAL_MINUTES = 60.0
PPO_STEPS = 10_000
WORKERS = 2


@dataclasses.dataclass(frozen=True)
class Args:
    """Batched review-BERT env throughput against SubprocVecEnv(2), and a PPO wall-time estimate."""

    env_id: str = "TrainGym/ReviewsShortcut-v0"
    """A reviews env id."""
    sizes: IntTuple = (2, 8, 16)
    """Numbers of sub-envs N of the batched env (in 2 workers)."""
    obs_keys: StrTuple = ("training_stats",)
    """Observation keys (the agents' default)."""
    blocks: int = 3
    """Timed block rounds."""
    env_steps_per_block: int = 16
    """Sub-env steps per timed block (a batched block takes max(1, this / N) vector steps)."""
    ppo_rollouts: int = 2
    """PPO rollouts timed on the batched env (N = the largest size)."""
    seed: int = 0
    """Seed of every vector env (sub-env i gets seed + i)."""
    smoke: bool = False
    """Tiny run (K=2, validation 64, 1 block, N up to 4, one PPO rollout) that checks the script works; no page."""
    write: bool = True
    """Write docs/results/batched_text.md (and .json)."""


def measure_throughput(args: Args, kwargs: dict[str, Any]) -> dict[str, Any]:
    from stable_baselines3.common.vec_env import SubprocVecEnv

    rng = np.random.default_rng(args.seed)
    subproc = SubprocVecEnv([functools.partial(make_env, args.env_id, kwargs)] * WORKERS)
    batched: dict[int, gym.vector.VectorEnv] = {}
    sps: dict[Any, list[float]] = {"subproc2": [], **{n: [] for n in args.sizes}}
    cpu: dict[Any, list[float]] = {"subproc2": [], **{n: [] for n in args.sizes}}
    pids: dict[Any, list[int]] = {"subproc2": [os.getpid(), *(p.pid for p in subproc.processes)]}
    try:
        subproc.seed(args.seed)
        subproc.reset()
        subproc.step(rng.integers(0, 3, size=(WORKERS, 4)))  # warm-up
        for n in args.sizes:
            env = gym.make_vec(args.env_id, num_envs=n, vectorization_mode="vector_entry_point",
                               workers=min(WORKERS, n), **kwargs)
            env.reset(seed=args.seed)
            env.step(rng.integers(0, 3, size=(n, 4)))  # warm-up
            batched[n] = env
            pids[n] = [os.getpid(), *(p.pid for p in getattr(env, "processes", []))]
        for _ in range(args.blocks):
            steps = max(1, args.env_steps_per_block // WORKERS)
            started, cpu_before = time.perf_counter(), cpu_seconds(pids["subproc2"])
            for _ in range(steps):
                subproc.step(rng.integers(0, 3, size=(WORKERS, 4)))
            sps["subproc2"].append(WORKERS * steps / (time.perf_counter() - started))
            cpu["subproc2"].append((cpu_seconds(pids["subproc2"]) - cpu_before) / (WORKERS * steps))
            for n, env in batched.items():
                steps = max(1, args.env_steps_per_block // n)
                started, cpu_before = time.perf_counter(), cpu_seconds(pids[n])
                for _ in range(steps):
                    env.step(rng.integers(0, 3, size=(n, 4)))
                sps[n].append(n * steps / (time.perf_counter() - started))
                cpu[n].append((cpu_seconds(pids[n]) - cpu_before) / (n * steps))
    finally:
        subproc.close()
        for env in batched.values():
            env.close()
    rows = [{"n": n, "workers": min(WORKERS, n), "steps_per_s": rounded(median(sps[n]), 3),
             "speedup_vs_subproc2": rounded(median([b / s for b, s in zip(sps[n], sps["subproc2"])]), 2),
             "cpu_s_per_step": rounded(median(cpu[n]), 4),
             "cpu_speedup_vs_subproc2": rounded(median([s / b for b, s in zip(cpu[n], cpu["subproc2"])]), 2)}
            for n in args.sizes]
    return {"subproc2_steps_per_s": rounded(median(sps["subproc2"]), 3),
            "subproc2_cpu_s_per_step": rounded(median(cpu["subproc2"]), 4), "batched": rows,
            "blocks": {str(k): [rounded(v, 3) for v in vs] for k, vs in sps.items()}}


def measure_shares(args: Args, kwargs: dict[str, Any], n: int) -> dict[str, Any]:
    """Training and relevance shares of one in-process batched env's steps (one worker's share of N)."""
    rng = np.random.default_rng(args.seed)
    env = BatchedTextEnv(n, task=ENV_TASKS[args.env_id], **{**ENV_KWARGS.get(args.env_id, {}), **kwargs})
    clock = PhaseClock()
    env.train_steps = clock.wrap("train", env.train_steps)  # type: ignore[method-assign]
    for relevance in (sub.token_relevance for sub in env.envs):
        if relevance is not None:
            relevance.update = clock.wrap("relevance", relevance.update)  # type: ignore[method-assign]
    try:
        env.reset(seed=args.seed)
        env.step(rng.integers(0, 3, size=(n, 4)))
        clock.take()
        steps = max(1, args.env_steps_per_block // n)
        started = time.perf_counter()
        for _ in range(steps):
            env.step(rng.integers(0, 3, size=(n, 4)))
        elapsed = time.perf_counter() - started
        seconds = clock.take()
    finally:
        env.close()
    return {"n": n, "steps_per_s": rounded(n * steps / elapsed, 3),
            "train_share": rounded(seconds.get("train", 0.0) / elapsed, 3),
            "relevance_share": rounded(seconds.get("relevance", 0.0) / elapsed, 3)}


def measure_ppo(args: Args, kwargs: dict[str, Any], n: int) -> dict[str, Any]:
    """PPO on the batched env in 2 workers: seconds per env step spent outside the env (the update)."""
    from stable_baselines3 import PPO
    from traingym.envs.batched.sb3 import make_batched_vec_env

    n_steps = 16
    vec = TimedVecEnv(make_batched_vec_env(args.env_id, n, seed=args.seed, workers=min(WORKERS, n), **kwargs))
    try:
        model = PPO("MultiInputPolicy", vec, n_steps=n_steps, batch_size=64, n_epochs=10, seed=args.seed,
                    device="cpu")
        started, cpu_before = time.perf_counter(), time.process_time()
        model.learn(total_timesteps=args.ppo_rollouts * n_steps * n)
        elapsed, parent_cpu = time.perf_counter() - started, time.process_time() - cpu_before
    finally:
        vec.close()
    return {"n": n, "workers": min(WORKERS, n), "n_steps": n_steps, "timesteps": int(model.num_timesteps),
            "fps": rounded(model.num_timesteps / elapsed, 3),
            "env_steps_per_s": rounded(model.num_timesteps / vec.seconds, 3),
            "update_seconds_per_step": rounded((elapsed - vec.seconds) / model.num_timesteps, 5),
            "update_cpu_seconds_per_step": rounded(parent_cpu / model.num_timesteps, 5)}


def run(args: Args) -> dict[str, Any]:
    torch.set_num_threads(1)
    if args.smoke:
        args = dataclasses.replace(args, sizes=tuple(n for n in args.sizes if n <= 4) or (2,), blocks=1,
                                   env_steps_per_block=4, ppo_rollouts=1)
    kwargs: dict[str, Any] = {"obs_keys": list(args.obs_keys)}
    if args.smoke:
        kwargs.update(steps_per_action=2, val_size=64)
    throughput = measure_throughput(args, kwargs)
    largest = max(args.sizes)
    shares = measure_shares(args, kwargs, max(1, largest // WORKERS))
    ppo = measure_ppo(args, kwargs, largest)
    update = ppo["update_seconds_per_step"] or 0.0
    update_cpu = ppo["update_cpu_seconds_per_step"] or 0.0

    def minutes(steps_per_s: float | None) -> float | None:
        """Wall time as measured (whatever else ran on the machine)."""
        return rounded(PPO_STEPS * (1.0 / steps_per_s + update) / 60.0, 1) if steps_per_s else None

    def idle_minutes(cpu_s_per_step: float | None) -> float | None:
        """On 2 otherwise idle cores: the env's CPU seconds spread over both, the update on one."""
        return rounded(PPO_STEPS * (cpu_s_per_step / WORKERS + update_cpu) / 60.0, 1) if cpu_s_per_step else None

    best = max(throughput["batched"], key=lambda r: r["steps_per_s"] or 0.0)
    name = f"batched_n{best['n']}_w{best['workers']}"
    estimate = {"subproc2": minutes(throughput["subproc2_steps_per_s"]), name: minutes(best["steps_per_s"])}
    idle = {"subproc2": idle_minutes(throughput["subproc2_cpu_s_per_step"]), name: idle_minutes(best["cpu_s_per_step"])}
    return {"env_id": args.env_id, "env_kwargs": kwargs, "throughput": throughput, "shares": shares, "ppo": ppo,
            "ppo_10k_minutes": estimate, "ppo_10k_minutes_idle_cores": idle, "goal_minutes": GOAL_MINUTES,
            "goal_met": idle[name] is not None and idle[name] <= GOAL_MINUTES,
            "machine": machine_info(), "args": dataclasses.asdict(args)}


def markdown(result: dict[str, Any]) -> str:
    t, s, p = result["throughput"], result["shares"], result["ppo"]
    lines = [f"Env `{result['env_id']}`, registered config (K=50, batch 32, AdamW, validation and diagnostic buffers "
             f"512, token relevance on) with obs `{result['env_kwargs']['obs_keys']}`; random train-set instances and "
             "actions, auto-resets included; one torch thread per process. The batched env runs in 2 worker "
             "processes (`gym.make_vec(..., vectorization_mode=\"vector_entry_point\", workers=2)`), the "
             "SubprocVecEnv in 2 processes: the same two cores.", "",
             f"SubprocVecEnv, 2 workers: **{t['subproc2_steps_per_s']}** env steps/s.", "",
             f"CPU seconds per env step (all processes of the vector env): SubprocVecEnv(2) "
             f"{t['subproc2_cpu_s_per_step']}.", "",
             "| N | workers | env steps/s | x SubprocVecEnv(2) | CPU s per env step | x SubprocVecEnv(2), CPU |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['n']} | {r['workers']} | {r['steps_per_s']} | {r['speedup_vs_subproc2']} | "
              f"{r['cpu_s_per_step']} | {r['cpu_speedup_vs_subproc2']} |" for r in t["batched"]]
    lines += ["", f"One worker's share in this process (N={s['n']}): {s['steps_per_s']} env steps/s on one core; "
              f"grouped training {s['train_share']} of the step, token relevance (on its cadence) "
              f"{s['relevance_share']}, the rest per-sub-env validation, neuron log, batches and observation.", "",
              f"PPO (SB3, n_steps {p['n_steps']} x {p['n']} sub-envs, minibatch 64, 10 epochs) on the batched env in "
              f"{p['workers']} workers: {p['fps']} frames/s over {p['timesteps']} steps; env {p['env_steps_per_s']} "
              f"steps/s; update {p['update_seconds_per_step']} s ({p['update_cpu_seconds_per_step']} CPU s) per env "
              "step.", "",
              f"Estimated time of a {PPO_STEPS:,}-step PPO run, as measured here (10,000 x (1 / env steps/s + update "
              "per step)) and on 2 otherwise idle cores (10,000 x (CPU s per env step / 2 + update CPU s per step)):",
              ""]
    lines += [f"- {name}: {minutes} min as measured, **{result['ppo_10k_minutes_idle_cores'][name]} min** on idle "
              "cores" for name, minutes in result["ppo_10k_minutes"].items()]
    lines += ["", f"Goal (issue 25): <= {result['goal_minutes']:.0f} min on 2 cores (idle-core estimate): "
              f"**{'met' if result['goal_met'] else 'not met'}**.", "",
              f"Machine load at the end: {result['machine']['loadavg']}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_cli(Args, argv, "python -m benchmarks.batched_text")
    result = run(args)
    print(json.dumps(result, indent=2, default=str))
    if args.write and not args.smoke:
        write_result("batched_text", "Batched review-BERT env: env steps/s and a 10,000-step PPO estimate",
                     markdown(result), data=result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
