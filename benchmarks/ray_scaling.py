"""Figure ``ray_scaling``: PPO env steps/s of SB3 with a 2-worker ``SubprocVecEnv`` vs RLlib with 2 env runners,
side by side in one process, plus what starting Ray costs.

    .venv/bin/python -m benchmarks.ray_scaling            # writes docs/results/ray_scaling.md (+ .json)
    .venv/bin/python -m benchmarks.ray_scaling --smoke    # seconds, nothing written

Both agents train PPO on the same env config (``Args.env_kwargs``: the same registered id and ``gym.make`` kwargs)
with the same rollout (``n_steps`` per env, 2 envs), epochs and minibatch. Both exist at once; blocks alternate
(one SB3 ``learn`` of one rollout, then one RLlib ``train()`` iteration of the same size), each timed on its own, and
the figure is the median over blocks of RLlib's env steps/s over SB3's: the learner update is inside both, as in a
real run. Ray's start-up (``ray.init`` of a local instance, then building the algorithm, which starts the env
runner actors) and SB3's (``SubprocVecEnv`` + model) are timed once each.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from traingym.experiments.results import write_result
from traingym.protocol.cli import parse_cli

from benchmarks.timing import median, quartiles, rounded


@dataclass(frozen=True)
class BenchArgs:
    """PPO env steps/s: SB3 SubprocVecEnv (2 workers) vs RLlib (2 env runners), and Ray's start-up cost."""

    env: str = "TrainGym/DigitsMLP-v0"
    """Gymnasium id of the TrainGym environment."""
    steps_per_action: int = 20
    """Optimizer steps of the target network per env step (K)."""
    horizon: int = 20
    """Env steps per episode (T)."""
    n_steps: int = 32
    """Rollout steps per env per PPO update (both libraries; 2 envs: 64 env steps per block)."""
    blocks: int = 6
    """Timed blocks per library (alternating)."""
    smoke: bool = False
    """Seconds-long run (K=5, T=3, 2 blocks of 16 steps); writes nothing."""
    write: bool = True
    """Write docs/results/ray_scaling.md and .json (not with --smoke)."""


def measure(bench: BenchArgs) -> dict[str, Any]:
    import ray
    from traingym.agents.args import Args
    from traingym.agents.ray_support import connect
    from traingym.agents.rllib_backend import build_algorithm, sampled_env_steps
    from traingym.agents.train import build_training_env

    common: dict[str, Any] = {"env": bench.env, "horizon": bench.horizon, "steps_per_action": bench.steps_per_action,
                              "n_steps": bench.n_steps, "n_epochs": 4, "batch_size": 64, "normalize": False,
                              "progress_bar": False, "tensorboard": False, "checkpoint_freq": 0, "eval_freq": 0}
    sb3_args = Args(n_envs=2, vec_env="subproc", **common)
    rllib_args = Args(backend="rllib", num_env_runners=2, ray_address="local", **common)
    start = time.perf_counter()
    from traingym.agents.algos import build_model

    venv, _ = build_training_env(sb3_args)
    venv.seed(0)
    model = build_model("ppo", venv, 0, "cpu", None, 0, **sb3_args.algo_kwargs())
    sb3_start_s = time.perf_counter() - start
    start = time.perf_counter()
    connect("local", num_cpus=2)
    ray_init_s = time.perf_counter() - start
    start = time.perf_counter()
    algo = build_algorithm(rllib_args)
    rllib_build_s = time.perf_counter() - start
    block = 2 * bench.n_steps
    sb3_sps, rllib_sps, ratios = [], [], []
    try:
        model.learn(block, reset_num_timesteps=False)  # warm-up: first resets, first update
        algo.train()
        for _ in range(bench.blocks):
            before, start = model.num_timesteps, time.perf_counter()
            model.learn(block, reset_num_timesteps=False)
            sb3_sps.append((model.num_timesteps - before) / (time.perf_counter() - start))
            start = time.perf_counter()
            steps = sampled_env_steps(algo.train())
            rllib_sps.append(steps / (time.perf_counter() - start))
            ratios.append(rllib_sps[-1] / sb3_sps[-1])
    finally:
        algo.stop()
        venv.close()
        start = time.perf_counter()
        ray.shutdown()
        ray_shutdown_s = time.perf_counter() - start
    p25, p75 = quartiles(ratios)
    return {"ratio_rllib_over_sb3": rounded(median(ratios)), "ratio_p25": rounded(p25), "ratio_p75": rounded(p75),
            "sb3_env_steps_per_s": rounded(median(sb3_sps), 2), "rllib_env_steps_per_s": rounded(median(rllib_sps), 2),
            "ray_init_s": rounded(ray_init_s, 2), "rllib_build_s": rounded(rllib_build_s, 2),
            "ray_startup_s": rounded(ray_init_s + rllib_build_s, 2), "ray_shutdown_s": rounded(ray_shutdown_s, 2),
            "sb3_startup_s": rounded(sb3_start_s, 2), "env_steps_per_block": block, "settings": asdict(bench)}


def markdown(result: dict[str, Any]) -> str:
    s = result["settings"]
    return "\n".join([
        f"PPO on `{s['env']}` (K={s['steps_per_action']}, T={s['horizon']}, observation `training_stats`), "
        f"{s['blocks']} alternating blocks of {result['env_steps_per_block']} env steps (rollout + update) per "
        "library, both alive in one process on this machine.", "",
        "| | env steps/s (median) | start-up |", "|---|---:|---:|",
        f"| SB3 PPO, `SubprocVecEnv` 2 workers | {result['sb3_env_steps_per_s']} | {result['sb3_startup_s']} s |",
        f"| RLlib PPO, 2 env runners (local Ray) | {result['rllib_env_steps_per_s']} | {result['ray_startup_s']} s "
        f"(`ray.init` {result['ray_init_s']} s + algorithm with env runners {result['rllib_build_s']} s) |", "",
        f"RLlib / SB3 env steps/s: **{result['ratio_rllib_over_sb3']}** (interquartile range over blocks "
        f"{result['ratio_p25']} to {result['ratio_p75']}). `ray.shutdown`: {result['ray_shutdown_s']} s.", "",
        "On one machine both use the same two cores, so the ratio is Ray's overhead (or gain) at equal hardware; "
        "RLlib's throughput grows with env runners on more nodes (docs/ray.md), SB3's stops at one host."])


def main(argv: list[str] | None = None) -> int:
    bench = parse_cli(BenchArgs, argv, "python -m benchmarks.ray_scaling")
    if bench.smoke:
        bench = BenchArgs(env=bench.env, steps_per_action=5, horizon=3, n_steps=8, blocks=2, smoke=True, write=False)
    result = measure(bench)
    print(json.dumps(result, indent=2))
    if bench.write and not bench.smoke:
        path = write_result("ray_scaling", "Ray scaling: SB3 SubprocVecEnv (2 workers) vs RLlib (2 env runners)",
                            markdown(result), data=result)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
