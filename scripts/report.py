"""Rebuild a run's report from its files: ``report.html`` and the explanation tables as CSV.

    python scripts/report.py RUN_DIR                       # writes RUN_DIR/report.html, clusters.csv, anomalies.csv, ...
    python scripts/report.py RUN_DIR --out DIR             # somewhere else
    python scripts/report.py RUN_DIR --nodes 12 40         # also explain these nodes (ids, or positions)
    python scripts/report.py RUN_DIR --data-dir data --mirror-dir ../shared/datasets   # where the dataset is now

The model is ``RUN_DIR/model.ckpt`` (``GNNGMM.load``); the graph is rebuilt from the run config the
checkpoint carries, as ``predict.py`` does (same dataset, injected outliers, node ids), with the
preprocessing's edge cleaning (undirected, no self-loops) so that degrees and cohesion count the
edges the model saw. ``metrics.json`` is shown at the top of the page when present.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

SRC = Path(__file__).resolve().parents[1] / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))


def run_config(model, run_dir: Path) -> dict:
    """The run's resolved config: the checkpoint's, else the run dir's ``.hydra/config.yaml``."""
    from gnngmm.errors import InputError

    config = getattr(getattr(model, "module_", None), "run_config", None)
    if config:
        return config
    path = run_dir / ".hydra" / "config.yaml"
    if path.exists():
        from omegaconf import OmegaConf

        return OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    raise InputError(f"{run_dir}: the checkpoint does not record its run config and there is no .hydra/config.yaml")


def load_run_graph(config: dict, data_dir: str | None = None, mirror_dir: str | None = None):
    """The run's graph as loaded (labels, injected outliers and node ids included), edges cleaned."""
    from gnngmm.data.preprocess import clean_edges
    from gnngmm.errors import InputError
    from gnngmm.train import build_datamodule

    if not config.get("data"):
        raise InputError("the run config does not name its dataset")
    data_cfg = dict(config["data"])
    if data_dir is not None:
        data_cfg["data_dir"] = data_dir
    if mirror_dir is not None:
        data_cfg["mirror_dir"] = mirror_dir
    raw = build_datamodule(data_cfg).load_raw()
    return clean_edges(raw, data_cfg.get("name", "graph"))


def main(argv=None) -> Path:
    from gnngmm.errors import InputError
    from gnngmm.estimator import GNNGMM
    from gnngmm.explain import explain_model
    from gnngmm.report import write_report, write_tables

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--ckpt", type=Path, default=None, help="checkpoint (default RUN_DIR/model.ckpt)")
    parser.add_argument("--out", type=Path, default=None, help="output dir (default: the run dir)")
    parser.add_argument("--data-dir", default=None, help="the dataset's dir, if it moved since the run")
    parser.add_argument("--mirror-dir", default=None, help="the read-only dataset mirror, if it moved")
    parser.add_argument("--nodes", nargs="*", default=None, help="nodes to explain besides the top outliers")
    parser.add_argument("--top", type=int, default=10, help="features per cluster")
    parser.add_argument("--max-points", type=int, default=50_000, help="most nodes drawn on the map")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        start = time.perf_counter()
        model = GNNGMM.load(args.ckpt or args.run_dir / "model.ckpt")
        graph = load_run_graph(run_config(model, args.run_dir), args.data_dir, args.mirror_dir)
        nodes = None
        if args.nodes:
            nodes = [int(v) if getattr(graph, "node_ids", None) is None else v for v in args.nodes]
        tables = explain_model(
            model,
            graph,
            labels=getattr(graph, "y", None),
            node_ids=nodes,
            top=args.top,
            outliers=getattr(graph, "outlier", None),
            max_points=args.max_points,
        )
        out = args.out or args.run_dir
        metrics_path = args.run_dir / "metrics.json"
        metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else None
        written = write_tables(out, tables)
        page = write_report(out / "report.html", tables, model, metrics=metrics)
    except InputError as err:
        print(f"gnngmm: error: {err}", file=sys.stderr)
        sys.exit(2)
    names = ", ".join(p.name for p in written)
    print(f"[gnngmm] report of {args.run_dir} -> {page} (+ {names}) in {time.perf_counter() - start:.1f} s")
    return page


if __name__ == "__main__":
    main()
