#!/usr/bin/env bash
# GPU checks on one CUDA device, by stage (default: all, about 20 minutes):
#   scripts/gpu_check.sh quick ddp reddit     # what fits one 15-minute device lease
#   quick    the CUDA tests; python train.py trainer=gpu on Cora; the estimator fitted on the GPU,
#            saved, loaded on the CPU (same clusters) (~2 min)
#   ddp      scripts/bench_ddp.py on the machine's CPU cores: epoch time of 1 and 2 processes (~2 min)
#   em       bench_em.py: EM on the GPU (float64) against scikit-learn on the CPU, Reddit-sized (< 5 min)
#   reddit   bench_scale.py --preset reddit (232,965 nodes, 114,615,892 directed edges; target <= 3 min)
#   products bench_scale.py --preset products (2,449,029 nodes, 123,718,280 directed edges; target <= 10 min)
# Cora's raw files: GNNGMM_MIRROR_DIR, else .gpudata/ (carried: planetoid/Cora/raw). Needs gnngmm's
# dependencies importable: `pip install -e .` on a networked machine; on an offline one with torch,
# PyG and Lightning there, the pure-Python hydra, omegaconf and antlr4 packages in .gpudeps/ (carried,
# put on PYTHONPATH here) are enough (wandb is only imported with logger=wandb).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src:$PWD/.gpudeps:${PYTHONPATH:-}" PYTHONUNBUFFERED=1 WANDB_MODE=offline
PY=${PYTHON:-python3}
OUT=${OUT:-${TMPDIR:-/tmp}}
MIRROR=${GNNGMM_MIRROR_DIR:-$PWD/.gpudata}
STAGES=${*:-quick ddp em reddit products}
status=0
run() { echo "== $1"; shift; "$@" || { echo "FAILED ($?): $*"; status=1; }; }
$PY -c "import torch; print('torch', torch.__version__, '|', torch.cuda.get_device_name(0), '|', torch.get_num_threads(), 'CPU threads')"
for stage in $STAGES; do
  case $stage in
    quick)
      run "CUDA tests" timeout 180 $PY -m pytest -q -p no:cacheprovider -p no:randomly tests/test_mixture_engine.py -k cuda
      run "Cora on the GPU (python train.py trainer=gpu)" timeout 240 $PY train.py trainer=gpu logger=csv \
        trainer.enable_progress_bar=false paths.mirror_dir="$MIRROR" paths.data_dir="$OUT/gnngmm-data" \
        hydra.run.dir="$OUT/cora_gpu"
      run "the estimator on the GPU, loaded on the CPU" timeout 240 $PY - "$MIRROR" "$OUT" <<'PY'
import sys, time, torch
from gnngmm import GNNGMM
from gnngmm.data import load_dataset
from gnngmm.metrics import clustering_metrics
mirror, out = sys.argv[1], sys.argv[2]
data = load_dataset("cora", f"{out}/gnngmm-data", mirror)
start = time.perf_counter()
model = GNNGMM(n_clusters=7, random_state=0, accelerator="gpu").fit(data)
print(f"fit on {torch.cuda.get_device_name(0)}: {time.perf_counter() - start:.1f} s", clustering_metrics(data.y, model.labels_))
path = model.save(f"{out}/cora_gpu_estimator.ckpt")
cpu = GNNGMM.load(path)
cpu.module_.cpu(); cpu.gmm_.to("cpu")
same = int((cpu.predict(data) == model.labels_).sum())
print(f"loaded on the CPU: same cluster for {same}/{data.num_nodes} nodes; outliers flagged {int(cpu.predict_outliers(data).sum())}")
PY
      ;;
    ddp) run "bench_ddp (CPU, 1 vs 2 processes)" timeout 400 $PY scripts/bench_ddp.py --nodes 20000 --epochs 3 ;;
    em)
      run "bench_em (CUDA float64 vs scikit-learn CPU, 5 iterations)" timeout 170 $PY scripts/bench_em.py --device cuda --iters 5
      run "bench_em (CUDA, ours only, 20 iterations)" timeout 120 $PY scripts/bench_em.py --device cuda --iters 20 --skip-sklearn ;;
    reddit) run "bench_scale --preset reddit (CUDA; target <= 3 min, <= 16 GB)" timeout 900 \
      $PY scripts/bench_scale.py --device cuda --preset reddit --output "$OUT/bench_reddit_cuda" ;;
    products) run "bench_scale --preset products (CUDA; target <= 10 min, <= 16 GB)" timeout 1500 \
      $PY scripts/bench_scale.py --device cuda --preset products --output "$OUT/bench_products_cuda" ;;
    *) echo "unknown stage $stage"; status=2 ;;
  esac
done
exit $status
