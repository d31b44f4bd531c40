"""Epoch time for 1 and 2 processes at equal total work: does DDP divide the work?

    python scripts/bench_ddp.py                    # planted graph, 20,000 nodes, neighbour batches, CPU
    python scripts/bench_ddp.py --accelerator gpu  # 1 GPU against 2 (needs 2 GPUs)

Both runs train the same model on the same graph for the same epochs with the same batch size;
each epoch covers every seed node once in total (2 processes: half each, `ShardSampler`). The
epoch time is Lightning's, logged by the EM-refit callback to the CSV logger (rank 0), without the
EM refit itself. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(processes: int, args, out: Path) -> dict:
    trainer = ["trainer=ddp_sim", f"trainer.devices={processes}"] if processes > 1 else ["trainer.devices=1"]
    if args.accelerator == "gpu":
        trainer = (
            ["trainer=ddp", f"trainer.devices={processes}", "trainer.strategy=ddp_spawn"]
            if processes > 1
            else ["trainer=gpu"]
        )
    cmd = [
        sys.executable,
        "train.py",
        *trainer,
        "data=planted",
        f"data.planted.num_nodes={args.nodes}",
        "data.num_classes=8",
        f"data.planted.avg_degree={args.degree}",
        "data.loader=neighbor",
        f"data.batch_size={args.batch_size}",
        "data.num_neighbors=[10,5]",
        f"trainer.max_epochs={args.epochs}",
        "head.refit_every_n_epochs=1000",
        "loss.finetune_epochs=1",
        "logger=csv",
        "callbacks=none",
        "save_pictures=false",
        "anomaly_score=nll",
        "trainer.enable_progress_bar=false",
        f"num_threads={args.threads}",
        f"hydra.run.dir={out}",
    ]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stderr[-3000:]}")
    rows = list(csv.DictReader(open(next((out / "csv").rglob("metrics.csv")))))
    epochs = [float(r["time/epoch_seconds"]) for r in rows if r.get("time/epoch_seconds")]
    metrics = json.loads((out / "metrics.json").read_text())
    return {
        "processes": processes,
        "epoch_seconds": round(statistics.median(epochs), 3),
        "nmi": round(metrics["nmi"], 4),
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=20_000)
    p.add_argument("--degree", type=float, default=10.0)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--accelerator", default="cpu", choices=["cpu", "gpu"])
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench_ddp_"))
    one, two = run(1, args, tmp / "one"), run(2, args, tmp / "two")
    result = {
        "nodes": args.nodes,
        "batch_size": args.batch_size,
        "accelerator": args.accelerator,
        "threads": args.threads,
        "one_process": one,
        "two_processes": two,
        "speed_up": round(one["epoch_seconds"] / two["epoch_seconds"], 2),
    }
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
