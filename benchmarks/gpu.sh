#!/usr/bin/env bash
# GPU figures, for a machine with a CUDA GPU (under 8 minutes): the batched MLP env on the GPU with N in the hundreds
# next to a 2-worker CPU SubprocVecEnv (JSON on stdout, docs/results/batched_env_cuda.md), then the CUDA tests
# (target networks, batched env, MiniLM encoder on the GPU). Run after the README's set-up with the CUDA torch build:
#   make setup TORCH_SPEC=torch && bash benchmarks/gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
"$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'benchmarks/gpu.sh: no CUDA device here')"
"$PY" -c "import json, torch; print(json.dumps({'gpu': torch.cuda.get_device_name(0), 'torch': torch.__version__}))"
timeout 360 "$PY" -m benchmarks.batched_env --device cuda --sizes 1 16 64 256 512 --obs-settings training_stats \
    --blocks 2 --env-steps-per-block 512
timeout 100 "$PY" -m pytest -q -p no:cacheprovider -m "slow or not slow" tests/envs/test_cuda.py \
    tests/envs/test_batched_env.py -k "cuda"
