"""predict.py (gnngmm.predict): a checkpoint rewrites its run's predictions exactly; a missing or
mismatched checkpoint fails with one clear line."""

from __future__ import annotations

import csv

import pytest
import torch
from conftest import ROOT, run_cli

from gnngmm.predict import predict
from gnngmm.train import train


def test_predict_export_round_trip(make_cfg, tmp_path):
    """predict.py on a run's model.ckpt rewrites the run's own predictions.csv exactly; on
    last.ckpt (the last epoch's state) the same clusters when the run kept its trained partition."""
    metrics = train(make_cfg())
    assert metrics["reference"]["decision"] == "reference"  # two epochs: the run adopted MS2CAG's
    out = predict(
        make_cfg(
            f"+ckpt_path={tmp_path / 'out' / 'model.ckpt'}",
            f"+output={tmp_path / 'pred.csv'}",
            small=False,
            config="predict",
        )
    )
    assert out.read_bytes() == (tmp_path / "out" / "predictions.csv").read_bytes()
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == 560
    assert list(rows[0]) == [
        "node",
        "cluster",
        "max_responsibility",
        "entropy",
        "nll",
        "anomaly_score",
        "channel_contextual",
        "channel_structural",
        "is_outlier",
    ]
    sizes = torch.bincount(torch.tensor([int(r["cluster"]) for r in rows]), minlength=metrics["k"]).tolist()
    assert sizes == metrics["cluster_sizes"]
    assert all(0.0 < float(r["max_responsibility"]) <= 1.0 and float(r["entropy"]) >= -1e-9 for r in rows)
    assert sum(int(r["is_outlier"]) for r in rows) == metrics["outliers_flagged"] == 56  # contamination 0.1
    train(make_cfg("reference=none", "overwrite=true"))  # the partition the last epoch's mixture gives
    rows = list(csv.DictReader(open(tmp_path / "out" / "predictions.csv")))
    last = predict(
        make_cfg(
            f"+ckpt_path={tmp_path / 'out' / 'checkpoints' / 'last.ckpt'}",
            f"+output={tmp_path / 'last.csv'}",
            small=False,
            config="predict",
        )
    )
    assert [r["cluster"] for r in csv.DictReader(open(last))] == [r["cluster"] for r in rows]


@pytest.mark.slow  # a subprocess / several processes
def test_predict_errors_are_clear(make_cfg, tmp_path, mirror):
    missing = run_cli(["predict.py", f"ckpt_path={tmp_path}/nope.ckpt", f"hydra.run.dir={tmp_path}/p"], cwd=ROOT)
    assert missing.returncode == 2 and "checkpoint not found" in missing.stderr
    train(make_cfg())
    ckpt = tmp_path / "out" / "checkpoints" / "last.ckpt"
    # the reddit fixture has 32 features, the checkpoint's encoder expects 48
    mismatch = run_cli(
        [
            "predict.py",
            f"ckpt_path={ckpt}",
            "data=reddit",
            f"paths.data_dir={tmp_path}/d2",
            f"paths.mirror_dir={mirror}",
            f"hydra.run.dir={tmp_path}/p2",
        ],
        cwd=ROOT,
    )
    assert mismatch.returncode == 2 and "does not fit dataset 'reddit'" in mismatch.stderr, mismatch.stderr[-2000:]
