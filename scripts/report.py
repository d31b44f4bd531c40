"""Rebuild a run's report from its files: ``report.html`` and the explanation tables as CSV.

    python scripts/report.py RUN_DIR                   # RUN_DIR/report.html, clusters.csv, anomalies.csv, ...
    python scripts/report.py RUN_DIR --out DIR         # somewhere else
    python scripts/report.py RUN_DIR --nodes 12 40     # also explain these nodes (ids, or positions)
    python scripts/report.py RUN_DIR --data-dir data --mirror-dir ../shared/datasets   # where the dataset is now

The model is ``RUN_DIR/model.ckpt`` (``GNNGMM.load``); the graph is rebuilt from the data module
arguments the checkpoint records (``data_source_``), as ``predict.py`` does (same dataset, injected
outliers, node ids), with the preparation's edge cleaning (undirected, no self-loops) so that
degrees and cohesion count the edges the model saw. ``metrics.json`` is shown at the top of the
page when present.
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


def load_run_graph(model, data_dir: str | None = None, mirror_dir: str | None = None):
    """The graph ``model`` was trained on, rebuilt from its ``data_source_`` as ``predict.py`` does.

    The graph is returned as loaded (labels ``y``, injected outliers ``outlier`` and ``node_ids``
    included), with the preparation's edge cleaning (undirected, no self-loops) when the model's
    ``preparation_`` cleans edges, so that degrees and cohesion count the edges the model saw. It
    is not prepared further: :func:`gnngmm.explain.explain_model` scores it through the model,
    which applies the rest of the preparation (feature normalisation, precomputed propagation)
    itself, and profiles the raw features.

    Args:
        model (GNNGMM): a loaded estimator.
        data_dir (str, optional): the dataset's dir, instead of the recorded one.
        mirror_dir (str, optional): the read-only dataset mirror, instead of the recorded one.

    Returns:
        torch_geometric.data.Data

    Raises:
        InputError: when the model was fitted on a graph given in Python, not a dataset.
    """
    from gnngmm.data import GraphDataModule
    from gnngmm.data.preprocess import clean_edges
    from gnngmm.errors import InputError

    source = dict(getattr(model, "data_source_", None) or {})
    if source.get("name") in (None, "data"):
        raise InputError(
            "the model was fitted on a graph given in Python, not a dataset: "
            "call gnngmm.explain.explain_model(model, data) and gnngmm.report.write_report in Python"
        )
    moved = {key: value for key, value in (("data_dir", data_dir), ("mirror_dir", mirror_dir)) if value is not None}
    raw = GraphDataModule(**{**source, **moved}).load_raw()
    if (getattr(model, "preparation_", None) or {}).get("clean", True):
        raw = clean_edges(raw, source["name"])
    return raw


def _parser() -> argparse.ArgumentParser:
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
    return parser


def main(argv=None) -> Path:
    """Write the run's ``report.html`` and CSV tables; exits with status 2 on an input error."""
    from gnngmm.errors import InputError
    from gnngmm.estimator import GNNGMM
    from gnngmm.explain import explain_model
    from gnngmm.report import write_report, write_tables

    args = _parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        start = time.perf_counter()
        model = GNNGMM.load(args.ckpt or args.run_dir / "model.ckpt")
        graph = load_run_graph(model, args.data_dir, args.mirror_dir)
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
