"""What the explanation tables and report.html cost next to the run they explain, on a planted graph
of a preset's size (``bench_scale.py``'s graph and settings: SIGN features, MLP, CCA-SSG, K blocks).

    python scripts/bench_report.py --preset reddit --scale 0.1 --threads 1
    python scripts/bench_report.py --preset reddit            # true size: 232,965 nodes, 114.6M edges

The run is fitted in this process as ``train`` does it (``GNNGMM(**estimator_arguments(cfg))`` and the
config's data module, then ``fit``), then ``explain_model(model, graph, labels)`` reads the model's stored results
of its training graph (what a run does after fitting), ``write_tables`` and ``write_report`` write the
CSV files and the page. Resident memory is sampled every 20 ms. The last line is one JSON object:
``fit_seconds``, ``explain_seconds``, ``report_seconds``, their share of the fit, ``peak_rss_mb`` before
and after the report (the process's high-water mark), ``explain_extra_mb`` (the most the resident
memory rose above its level at the start of the explanation) and the page's size.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS.parent / "src"))
sys.path.insert(0, str(SCRIPTS))


class RSSSampler:
    """Largest resident set size (MB) seen between ``start`` and ``stop``, sampled from /proc."""

    def __init__(self, every: float = 0.02):
        self.every, self.peak, self._stop = every, 0.0, threading.Event()

    @staticmethod
    def now() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.now())
            time.sleep(self.every)

    def __enter__(self):
        self.peak = self.now()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.now())


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None) -> dict:
    import torch
    from bench_scale import graph_params, overrides_for
    from hydra import compose, initialize_config_module
    from hydra.core.hydra_config import HydraConfig

    from gnngmm.anomaly import COMBINATION_RULES
    from gnngmm.estimator import GNNGMM
    from gnngmm.explain import explain_model
    from gnngmm.loggers import resolved_config
    from gnngmm.pipeline import instantiate_component
    from gnngmm.report import write_report, write_tables
    from gnngmm.train import estimator_arguments

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="reddit")
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--max-points", type=int, default=50_000)
    p.add_argument("--output", default=None, help="where the tables and report.html go (default: a temporary dir)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    scale_args = argparse.Namespace(
        preset=args.preset, scale=args.scale, nodes=None, edges=None, features=None, blocks=None, homophily=None,
        signal=None, degree_sigma=None, encoder="sign", epochs=args.epochs, batch_size=2048,
        covariance_type="isotropic", device="cpu", seed=0, threads=args.threads, overrides=[],
    )  # fmt: skip
    params = graph_params(scale_args)
    out = Path(args.output or tempfile.mkdtemp(prefix="bench_report_"))
    out.mkdir(parents=True, exist_ok=True)
    overrides = [o for o in overrides_for(scale_args, params, out) if "callbacks.kmeans" not in o]
    with initialize_config_module("gnngmm.conf", version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    run_config = resolved_config(cfg)
    start = time.perf_counter()
    model = GNNGMM(**estimator_arguments(cfg))
    datamodule = instantiate_component(run_config["data"], keep_raw_features=model.anomaly_score in COMBINATION_RULES)
    datamodule.setup("fit")
    setup_seconds = time.perf_counter() - start
    start = time.perf_counter()
    model.fit(datamodule)
    fit_seconds = time.perf_counter() - start
    graph, labels = datamodule.data, datamodule.labels
    peak_before = peak_rss_mb()
    with RSSSampler() as sampler:
        level = RSSSampler.now()
        start = time.perf_counter()
        tables = explain_model(model, graph, labels=labels.y, max_points=args.max_points)
        explain_seconds = time.perf_counter() - start
        start = time.perf_counter()
        write_tables(out, tables)
        page = write_report(out / "report.html", tables, model)
        report_seconds = time.perf_counter() - start
    run_seconds = setup_seconds + fit_seconds
    result = {
        "preset": args.preset,
        "scale": args.scale,
        "nodes": int(graph.num_nodes),
        "edges_directed": int(graph.edge_index.shape[1]),
        "features": int(getattr(graph, "raw_x", graph.x).shape[1]),
        "k": int(model.n_clusters_),
        "threads": torch.get_num_threads(),
        "setup_seconds": round(setup_seconds, 1),
        "fit_seconds": round(fit_seconds, 1),
        "explain_seconds": round(explain_seconds, 2),
        "report_seconds": round(report_seconds, 2),
        "share_of_run": round((explain_seconds + report_seconds) / run_seconds, 4),
        "peak_rss_mb_before": round(peak_before, 1),
        "peak_rss_mb_after": round(peak_rss_mb(), 1),
        "explain_extra_mb": round(sampler.peak - level, 1),
        "map_points": len(tables["map"]),
        "report_mb": round(page.stat().st_size / 2**20, 2),
    }
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
