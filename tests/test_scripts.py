"""The scripts under scripts/: the benchmark's result files and method arguments, the safeguard
check's planted runs, the head variants of a fitted model, the scale benchmark at CI size and its
table of growth slopes."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys

import pytest
import torch
from conftest import ROOT, run_cli
from conftest import SMALL_ARGS as SMALL

from gnngmm import GNNGMM
from gnngmm.data import load_dataset


@pytest.fixture(scope="module")
def cora(tmp_path_factory, mirror):
    return load_dataset("cora", tmp_path_factory.mktemp("data"), mirror)


@pytest.fixture(scope="module")
def fitted(cora):
    # the scripts study the trained head; two epochs can lose to the training-free reference,
    # which the run would then adopt (its labels, not the head's argmax): keep the trained one
    return GNNGMM(7, reference="none", **SMALL).fit(cora)


def load_benchmark():
    spec = importlib.util.spec_from_file_location("benchmark", ROOT / "scripts" / "benchmark.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_anomaly_run_keeps_the_committed_clustering_section_and_rows(tmp_path, monkeypatch):
    bench = load_benchmark()
    out, runs = tmp_path / "docs", tmp_path / "runs"
    out.mkdir()
    clustering = ["## Node clustering", "", "| cora | gnngmm | 10 | 0.603 |", ""]
    (out / "results.md").write_text("\n".join(["# Results", "", *clustering, "## Anomaly detection", "", "old", ""]))
    for name in ("runs.csv", "results.csv"):
        (out / name).write_text("task,dataset,method,nmi\nclustering,cora,gnngmm,0.6\nanomaly,inj_cora,gnngmm,\n")
    fake = {
        "auroc": 0.93,
        "average_precision": 0.4,
        "recall_at_k": 0.5,
        "degree_auroc": 0.73,
        "feature_norm_auroc": 0.71,
        "train_seconds": 50.0,
        "peak_rss_mb": 700.0,
    }
    monkeypatch.setattr(
        bench,
        "run_one",
        lambda task, ds, method, seed, runs, threads: {
            "task": task,
            "dataset": ds,
            "method": method,
            "seed": seed,
            **fake,
        },
    )

    bench.main(
        [
            "--task",
            "anomaly",
            "--datasets",
            "inj_cora",
            "--methods",
            "gnngmm",
            "gnngmm-max",
            "--seeds",
            "2",
            "--out",
            str(out),
            "--runs",
            str(runs),
        ]
    )

    text = (out / "results.md").read_text()
    assert "\n".join(clustering) in text  # kept verbatim: its runs are not under --runs
    assert "old" not in text and "| inj_cora | gnngmm-max | 2 | 0.9300 ± 0.0000" in text
    with open(out / "runs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["task"], r["method"]) for r in rows] == [("clustering", "gnngmm")] + [("anomaly", "gnngmm")] * 2 + [
        ("anomaly", "gnngmm-max")
    ] * 2


def test_injected_validation_graphs_are_benchmark_datasets():
    bench = load_benchmark()
    args = bench.ANOMALY_METHODS["gnngmm-max"]("cora_injected")
    assert args[0] == "experiment=cora" and "data.inject.structural_cliques=5" in args
    assert "data.normalize_features=row" in args  # the graphs the anomaly rules were chosen on
    assert args[-1] == "anomaly_score=combined_max"  # the method's score wins over the dataset's
    assert bench.ANOMALY_METHODS["gnngmm"]("bond_reddit") == ["experiment=bond_reddit"]


def load_safeguard_check():
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    spec = importlib.util.spec_from_file_location("safeguard_check", ROOT / "scripts" / "safeguard_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_safeguard_check_composes_its_planted_runs_and_reports_them(tmp_path, monkeypatch, make_cfg):
    check = load_safeguard_check()
    cfg = make_cfg(*check.PLANTED, small=False)  # a new graph with the closest experiment's settings
    assert cfg.data.name == "planted" and cfg.data.planted.generator == "dcsbm" and cfg.objective.s == 0.4
    assert make_cfg(*check.GRAPH, small=False).objective.s == 0.6  # the defaults

    def fake_run(overrides, run_dir, threads):  # modularity falls 40% after epoch 9 when unguarded
        run_dir.mkdir(parents=True)
        (run_dir / "history.csv").write_text(
            "epoch,cluster_sizes,gmm/modularity,nmi\n9,1;2,0.5,0.7\n219,1;2,0.3,0.45\n"
        )
        guarded = "safeguard=none" not in overrides
        return {"nmi": 0.7 if guarded else 0.45, "ari": 0.75, "restored_epoch": 9 if guarded else None}

    monkeypatch.setattr(check, "train_run", fake_run)
    table = check.provoked(2, tmp_path / "runs", 1)
    assert (
        "| 0 | 0.7000 (9) | 0.5000 -> 0.3000 (40% drop) | 0.4500 / 0.7500 | 0.7000 / 0.7500 | 9 | 0.7000 / 0.7500 |"
        in table
    )
    assert table[-1].startswith("| mean | | | 0.4500 ± 0.0000 / 0.7500 ± 0.0000 | 0.7000 ± 0.0000")

    bench = tmp_path / "bench" / "cora" / "gnngmm" / "seed0"
    bench.mkdir(parents=True)
    (bench / "history.csv").write_text(
        "epoch,cluster_sizes,gmm/modularity,gmm/silhouette,nmi\n9,1;2,0.70,0.40,0.5\n"
        "199,1;2,0.70,0.36,0.5\n219,1;2,0.693,,0.6\n"
    )
    (bench / "metrics.json").write_text('{"restored_epoch": null}')
    assert check.development(tmp_path / "bench")[-1] == "| cora | 1 | 0 | 1.00% / 1.00% | 10.0% / 10.0% |"

    def fake_blurring(overrides, run_dir, threads):  # modularity rises while NMI falls
        run_dir.mkdir(parents=True)
        (run_dir / "history.csv").write_text(
            "epoch,cluster_sizes,gmm/modularity,nmi\n19,1;2,0.74,0.42\n219,1;2,0.77,0.29\n"
        )
        guarded = "safeguard=none" not in overrides
        return {"nmi": 0.44 if guarded else 0.29, "ari": 0.45, "restored_epoch": 19 if guarded else None}

    monkeypatch.setattr(check, "train_run", fake_blurring)
    table = check.blurring(1, tmp_path / "runs", 1)
    assert "| 0 | 0.4200 (19) | 0.7400 -> 0.7700 | 0.2900 / 0.4500 | 0.4400 / 0.4500 | 19 |" in table


def test_stage1_ablation_stops_where_each_experiments_gmm_phase_starts():
    bench = load_benchmark()
    assert bench.METHODS["gnngmm-stage1"]("citeseer")[-1] == "trainer.max_epochs=50"  # 70 - 20
    assert bench.METHODS["gnngmm-stage1"]("cora")[-1] == "trainer.max_epochs=200"  # 220 - 20


def test_head_variants_script_derives_partitions_from_a_fitted_model(fitted, cora):
    import importlib.util

    spec = importlib.util.spec_from_file_location("head_variants", ROOT / "scripts" / "head_variants.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    from gnngmm.encoders.propagation import normalized_adjacency

    out = script.variants(fitted, cora, normalized_adjacency(cora.edge_index, cora.num_nodes))
    assert {"final (as trained)", "warm diag", "fresh isotropic", "embedding smoothed, t=2"} <= set(out)
    assert all(tuple(pred.shape) == (cora.num_nodes,) for pred in out.values())
    assert torch.equal(out["final (as trained)"], fitted.predict(cora))
    agree = {k: float((v == out["final (as trained)"]).float().mean()) for k, v in out.items()}
    # warm refits keep the components' order, so their partitions line up with the trained one
    assert min(agree["warm diag"], agree["warm spherical"], agree["warm full"]) > 0.9
    assert agree["responsibilities smoothed, t=4"] < 1.0  # four smoothing steps move some nodes


@pytest.mark.slow  # a subprocess / several processes
def test_bench_scale_small(tmp_path):
    """The benchmark at CI size: the JSON line carries what the issue asks for, and training lifts
    the clusters far above k-means on the raw features.

    At 3,000 nodes k-means on the pre-propagated features still leads (NMI 0.24 against 0.20-0.23
    for 3-40 epochs): the trained pipeline overtakes it only with the mission's sizes (Reddit
    preset 0.864 against 0.824, docs/scaling.md), which CI cannot run. So this asserts what holds
    at this size, not the full-size claim."""
    result = run_cli(
        [
            "scripts/bench_scale.py",
            "--nodes",
            "3000",
            "--edges",
            "60000",
            "--features",
            "32",
            "--blocks",
            "5",
            "--epochs",
            "3",
            "--batch-size",
            "512",
            "--threads",
            "1",
            "--output",
            str(tmp_path / "bench"),
        ],
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = json.loads(result.stdout.strip().splitlines()[-1])
    for key in (
        "nodes",
        "edges_directed",
        "nmi",
        "ari",
        "raw_kmeans_nmi",
        "propagated_kmeans_nmi",
        "epoch_seconds",
        "em_seconds",
        "total_seconds",
        "peak_rss_mb",
        "peak_gpu_mb",
        "propagate_seconds",
        "final_seconds",
    ):
        assert key in line, key
    assert line["nodes"] == 3000 and line["edges_directed"] == 60000 and line["peak_gpu_mb"] is None
    assert line["raw_kmeans_nmi"] < 0.05 and line["nmi"] > 0.15, line  # raw k-means 0.005, the pipeline 0.20
    assert (
        line["raw_kmeans_nmi"] < line["propagated_kmeans_nmi"] and line["nmi"] > 0.75 * line["propagated_kmeans_nmi"]
    ), line


def test_scaling_table_fits_growth_slopes(tmp_path, capsys):
    """scripts/scaling_table.py: the slope of a stage that doubles with the edges is 1, of one that
    quadruples 2; the table lists the runs by size."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import scaling_table

    logs = []
    for i, edges in enumerate((1000, 2000, 4000)):
        run = {
            "preset": "reddit",
            "scale": edges / 4000,
            "nodes": edges // 10,
            "edges_directed": edges,
            "epochs": 1,
            "nmi": 0.5,
            "raw_kmeans_nmi": 0.1,
            "propagated_kmeans_nmi": 0.4,
            "generate_seconds": 1.0,
            "propagate_seconds": edges / 100,
            "epoch_seconds": (edges / 1000) ** 2,
            "em_seconds": 2.0,
            "final_seconds": 1.0,
            "total_seconds": 9.0,
            "peak_rss_mb": 100.0 + i,
        }
        path = tmp_path / f"r{i}.log"
        path.write_text("progress line\n" + json.dumps(run) + "\n")
        logs.append(str(path))
    scaling_table.main(logs)
    out = capsys.readouterr().out
    assert "| reddit | 0.25 | 100 | 1,000 |" in out
    slopes = next(line for line in out.splitlines() if line.startswith("| reddit | 3 |")).split(" | ")
    assert slopes[3] == "1.00" and slopes[4] == "2.00" and slopes[5] == "0.00", slopes  # propagate, epoch, em
