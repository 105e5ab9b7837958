"""Train an RL agent that steers neural-network training on a TrainGym env, then evaluate it against baselines.

    python train_agent.py                      # PPO on TrainGym/DigitsMLP-v0, default budget
    python train_agent.py --smoke --run-dir /tmp/smoke
    python train_agent.py --help

A thin CLI over :mod:`traingym.agents` (see docs/agents.md).
"""

from traingym.agents.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
