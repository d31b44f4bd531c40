"""scripts/benchmark.py's result files: re-running one task must not erase the other's tables."""

import csv
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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
    fake = {"auroc": 0.93, "average_precision": 0.4, "recall_at_k": 0.5, "degree_auroc": 0.73,
            "feature_norm_auroc": 0.71, "train_seconds": 50.0, "peak_rss_mb": 700.0}
    monkeypatch.setattr(bench, "run_one", lambda task, ds, method, seed, runs, threads: {
        "task": task, "dataset": ds, "method": method, "seed": seed, **fake})

    bench.main(["--task", "anomaly", "--datasets", "inj_cora", "--methods", "gnngmm", "gnngmm-max",
                "--seeds", "2", "--out", str(out), "--runs", str(runs)])

    text = (out / "results.md").read_text()
    assert "\n".join(clustering) in text  # kept verbatim: its runs are not under --runs
    assert "old" not in text and "| inj_cora | gnngmm-max | 2 | 0.9300 ± 0.0000" in text
    with open(out / "runs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["task"], r["method"]) for r in rows] == [("clustering", "gnngmm")] + [("anomaly", "gnngmm")] * 2 + [
        ("anomaly", "gnngmm-max")] * 2


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
        (run_dir / "history.csv").write_text("epoch,cluster_sizes,gmm/modularity,nmi\n9,1;2,0.5,0.7\n219,1;2,0.3,0.45\n")
        guarded = "safeguard=none" not in overrides
        return {"nmi": 0.7 if guarded else 0.45, "ari": 0.75, "restored_epoch": 9 if guarded else None}

    monkeypatch.setattr(check, "train_run", fake_run)
    table = check.provoked(2, tmp_path / "runs", 1)
    assert "| 0 | 0.7000 (9) | 0.5000 -> 0.3000 (40% drop) | 0.4500 / 0.7500 | 0.7000 / 0.7500 | 9 | 0.7000 / 0.7500 |" in table
    assert table[-1].startswith("| mean | | | 0.4500 ± 0.0000 / 0.7500 ± 0.0000 | 0.7000 ± 0.0000")

    bench = tmp_path / "bench" / "cora" / "gnngmm" / "seed0"
    bench.mkdir(parents=True)
    (bench / "history.csv").write_text("epoch,cluster_sizes,gmm/modularity,gmm/silhouette,nmi\n9,1;2,0.70,0.40,0.5\n"
                                       "199,1;2,0.70,0.36,0.5\n219,1;2,0.693,,0.6\n")
    (bench / "metrics.json").write_text('{"restored_epoch": null}')
    assert check.development(tmp_path / "bench")[-1] == "| cora | 1 | 0 | 1.00% / 1.00% | 10.0% / 10.0% |"

    def fake_blurring(overrides, run_dir, threads):  # modularity rises while NMI falls
        run_dir.mkdir(parents=True)
        (run_dir / "history.csv").write_text("epoch,cluster_sizes,gmm/modularity,nmi\n19,1;2,0.74,0.42\n219,1;2,0.77,0.29\n")
        guarded = "safeguard=none" not in overrides
        return {"nmi": 0.44 if guarded else 0.29, "ari": 0.45, "restored_epoch": 19 if guarded else None}

    monkeypatch.setattr(check, "train_run", fake_blurring)
    table = check.blurring(1, tmp_path / "runs", 1)
    assert "| 0 | 0.4200 (19) | 0.7400 -> 0.7700 | 0.2900 / 0.4500 | 0.4400 / 0.4500 | 19 |" in table


def test_stage1_ablation_stops_where_each_experiments_gmm_phase_starts():
    bench = load_benchmark()
    assert bench.METHODS["gnngmm-stage1"]("citeseer")[-1] == "trainer.max_epochs=50"  # 70 - 20
    assert bench.METHODS["gnngmm-stage1"]("cora")[-1] == "trainer.max_epochs=200"  # 220 - 20
