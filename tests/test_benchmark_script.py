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
    assert args[-1] == "anomaly_score=combined_max"  # the method's score wins over the dataset's
    assert bench.ANOMALY_METHODS["gnngmm"]("bond_reddit") == ["experiment=bond_reddit"]
