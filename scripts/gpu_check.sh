#!/usr/bin/env bash
# GPU checks on one CUDA device, about 20 minutes in all:
#   1. bench_em.py: EM on the GPU (float64) against scikit-learn on the CPU, Reddit-sized (< 2 min);
#   2. bench_scale.py: the planted reddit and products presets (true sizes) through the whole
#      pipeline on the GPU (each prints its JSON line; the baselines' k-means runs on the GPU too).
#   3. the CUDA-only tests, and a default Cora run on the GPU when GNNGMM_MIRROR_DIR holds Cora's raw files.
# Needs gnngmm's dependencies importable: `pip install -e .` on a networked machine; on an offline
# one with torch, PyG and Lightning already there, the pure-Python hydra, omegaconf and antlr4
# packages copied into a folder on PYTHONPATH are enough (wandb is only imported with logger=wandb).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src:${PYTHONPATH:-}" PYTHONUNBUFFERED=1 WANDB_MODE=offline
PY=${PYTHON:-python3}
$PY -c "import torch; print('torch', torch.__version__, '|', torch.cuda.get_device_name(0))"
echo "== bench_em (CUDA float64 vs scikit-learn CPU, 5 iterations)"
timeout 170 $PY scripts/bench_em.py --device cuda --iters 5
echo "== bench_em (CUDA, ours only, 20 iterations)"
timeout 120 $PY scripts/bench_em.py --device cuda --iters 20 --skip-sklearn
echo "== bench_scale --preset reddit (CUDA; 232,965 nodes, 114,615,892 directed edges; target <= 3 min, <= 16 GB)"
timeout 900 $PY scripts/bench_scale.py --device cuda --preset reddit --output "${TMPDIR:-/tmp}/bench_reddit_cuda"
echo "== bench_scale --preset products (CUDA; 2,449,029 nodes, 123,718,280 directed edges; target <= 10 min, <= 16 GB)"
timeout 1500 $PY scripts/bench_scale.py --device cuda --preset products --output "${TMPDIR:-/tmp}/bench_products_cuda"
echo "== CUDA tests"
timeout 120 $PY -m pytest -q -p no:cacheprovider tests/test_mixture_engine.py -k cuda
if [ -n "${GNNGMM_MIRROR_DIR:-}" ]; then
  echo "== Cora on the GPU (python train.py trainer=gpu)"
  timeout 180 $PY train.py trainer=gpu logger=csv trainer.enable_progress_bar=false \
    paths.mirror_dir="$GNNGMM_MIRROR_DIR" paths.data_dir="${TMPDIR:-/tmp}/gnngmm-data"
fi
