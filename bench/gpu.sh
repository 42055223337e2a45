#!/usr/bin/env bash
# GPU benchmark of the transformers backend: REBASE vs sampling per token, prefix reuse, batching,
# FLOP ledger vs measured, and tokens/s next to plain model.generate (bench/gpu.py has the details).
# Why a wrapper: the GPU machine has no project install, so the repo is put on PYTHONPATH and the
# python there (torch + transformers, offline) runs the script; a hard 8-minute limit.
#
#   bench/gpu.sh            # on a CUDA machine: 1.5B random Qwen2 in bf16
#   bench/gpu.sh --smoke    # tiny shapes on the CPU, to check the script anywhere
#   PYTHON=.venv/bin/python bench/gpu.sh --smoke
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false TRANSFORMERS_VERBOSITY=error OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
PY="${PYTHON:-python3}"
"$PY" -c "import torch, transformers, pydantic, yaml" 2>/dev/null || {
  echo "bench/gpu.sh: $PY lacks one of torch, transformers, pydantic, pyyaml (the rebase import needs all four)" >&2
  exit 2
}
exec timeout "${BENCH_TIMEOUT:-480}" "$PY" bench/gpu.py "$@"
