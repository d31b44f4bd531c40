#!/usr/bin/env bash
# GPU checks on one CUDA device, about 5 minutes in all:
#   1. bench_em.py: EM on the GPU (float64) against scikit-learn on the CPU, Reddit-sized (< 2 min);
#   2. bench_scale.py: the Reddit-scale planted graph through the whole pipeline on the GPU (< 5 min).
# Needs gnngmm's dependencies importable: `pip install -e .` on a networked machine; on an offline
# one, install wheels of hydra-core, omegaconf, antlr4-python3-runtime and wandb first.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src:${PYTHONPATH:-}" PYTHONUNBUFFERED=1 WANDB_MODE=offline
PY=${PYTHON:-python3}
$PY -c "import torch; print('torch', torch.__version__, '|', torch.cuda.get_device_name(0))"
echo "== bench_em (CUDA float64 vs scikit-learn CPU, 5 iterations)"
timeout 170 $PY scripts/bench_em.py --device cuda --iters 5
echo "== bench_em (CUDA, ours only, 20 iterations)"
timeout 120 $PY scripts/bench_em.py --device cuda --iters 20 --skip-sklearn
echo "== bench_scale (CUDA)"
timeout 300 $PY scripts/bench_scale.py --device cuda --epochs 3
