#!/usr/bin/env bash
# GPU figures for a machine with a CUDA GPU, self-contained and under 5 minutes (each part has its own timeout):
#   1. the batched MLP env (DigitsMLP, obs training_stats) on the GPU, N = 256, 1024, 4096 in this process;
#   2. the same machine's best CPU configuration: N = 16 x cores, split over every core (one worker per core);
#   3. both printed as one JSON object and written to docs/results/batched_env_cuda.md (.json beside it);
#   4. the CUDA tests (target networks, batched env, MiniLM encoder on the GPU).
# Python: .device/activate.sh when present (a bare GPU machine: pack it here with `bash ../shared/device/pack.sh`
# and carry .device), else .venv (`make setup TORCH_SPEC=torch` for a CUDA build), else $PY. Run from anywhere:
#   bash benchmarks/gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PY:-}" ]; then
  if [ -f .device/activate.sh ]; then
    # shellcheck disable=SC1091
    source .device/activate.sh
    PY=python3
  elif [ -x .venv/bin/python ]; then
    PY=.venv/bin/python
  else
    echo "benchmarks/gpu.sh: no Python environment (.device/ or .venv/); see the header" >&2
    exit 1
  fi
fi
export PYTHONUNBUFFERED=1
"$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'benchmarks/gpu.sh: no CUDA device here')"
cores=$("$PY" -c "import os; print(len(os.sched_getaffinity(0)))")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# --env-steps-per-block 1024: N=256 takes 4 vector steps per block, N=1024 and N=4096 one each.
timeout 150 "$PY" -m benchmarks.batched_env --device cuda --sizes 256 1024 4096 --workers 1 \
    --obs-settings training_stats --blocks 2 --env-steps-per-block 1024 --no-write > "$tmp/cuda.json"
timeout 60 "$PY" -m benchmarks.batched_env --device cpu --sizes $((16 * cores)) --workers "$cores" \
    --obs-settings training_stats --blocks 2 --env-steps-per-block $((32 * cores)) --no-write > "$tmp/cpu.json"
"$PY" - "$tmp/cuda.json" "$tmp/cpu.json" "$cores" <<'PY'
import json, sys

import torch
from benchmarks.batched_env import markdown
from traingym.agents.results import write_result

cuda, cpu, cores = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), int(sys.argv[3])
best_cpu = max(cpu["settings"][0]["batched"], key=lambda row: row["steps_per_s"] or 0.0)
rows = cuda["settings"][0]["batched"]
for row in rows:
    row["x_best_cpu"] = round(row["steps_per_s"] / best_cpu["steps_per_s"], 2) if best_cpu["steps_per_s"] else None
result = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "cores": cores, "cuda": cuda,
          "best_cpu": {"n": best_cpu["n"], "workers": best_cpu["workers"], "steps_per_s": best_cpu["steps_per_s"]}}
print(json.dumps(result, indent=2))
body = "\n".join([
    f"GPU: {result['gpu']}, torch {result['torch']}, {cores} CPU cores. Goal (issue 25): DigitsMLP >= 10,000 env "
    "steps/s at N=4096 and >= 10x the same machine's CPU batched env with all cores.", "",
    f"Best CPU configuration, same machine: N={best_cpu['n']} in {best_cpu['workers']} workers: "
    f"**{best_cpu['steps_per_s']}** env steps/s.", "",
    "| N on the GPU | env steps/s | x best CPU |", "|---|---|---|",
    *[f"| {r['n']} | {r['steps_per_s']} | {r['x_best_cpu']} |" for r in rows], "",
    "## The GPU run in full", "", markdown(cuda)])
write_result("batched_env_cuda", "Batched MLP vector env on the GPU next to the best CPU configuration", body,
             data=result, command="bash benchmarks/gpu.sh")
PY
timeout 45 "$PY" -m pytest -q -p no:cacheprovider -m "slow or not slow" tests/envs/test_cuda.py \
    tests/envs/batched/test_batched_env.py -k "cuda"
