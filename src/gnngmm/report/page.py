"""``report.html``: one self-contained page (plotly.js inlined, no server, opens offline) built from
the tables of :func:`gnngmm.explain.explain_model`, and the same tables as CSV files."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from gnngmm.report import figures
from gnngmm.report.markup import html_page
from gnngmm.report.sections import report_sections

# explain_model's table -> CSV file name in a run dir ("map" is the report's sample, not written)
CSV_NAMES = {
    "clusters": "clusters.csv",
    "features": "cluster_features.csv",
    "typical": "cluster_typical.csv",
    "edges": "cluster_edges.csv",
    "contingency": "contingency.csv",
    "classes": "classes.csv",
    "anomalies": "anomalies.csv",
}
INDEXED = ("edges", "contingency")  # tables whose index (the cluster) is a column of the CSV


# metrics.json keys shown at the top of the page, in this order, when present
RUN_KEYS = (
    "dataset",
    "encoder",
    "objective",
    "k",
    "covariance_type",
    "seed",
    "nmi",
    "ari",
    "acc",
    "modularity",
    "auroc",
    "average_precision",
    "gmm_log_likelihood",
    "bic",
    "anomaly_score",
    "contamination",
    "outlier_threshold",
    "epochs",
    "train_seconds",
    "peak_rss_mb",
    "git_commit",
)


def write_tables(out_dir, tables: dict[str, pd.DataFrame]) -> list[Path]:
    """The tables as CSV files in ``out_dir`` (names in ``CSV_NAMES``; ``map`` is not written).

    Returns:
        the paths written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for key, name in CSV_NAMES.items():
        if key in tables:
            path = out_dir / name
            tables[key].to_csv(path, index=key in INDEXED)
            written.append(path)
    return written


def _run_summary(metrics: dict | None, tables: dict) -> str:
    """The run at a glance: node and cluster counts, then the ``RUN_KEYS`` found in ``metrics``."""
    clusters = tables.get("clusters")
    items = []
    if clusters is not None:
        items.append(("nodes", int(clusters["size"].sum())))
        items.append(("clusters (K)", len(clusters)))
    for key in RUN_KEYS:
        if metrics and metrics.get(key) is not None:
            value = metrics[key]
            if isinstance(value, float):
                value = f"{value:.4g}" if abs(value) < 1e5 else f"{value:.6g}"
            items.append((key, value))
    cells = "".join(f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(str(v))}</dd>" for k, v in items)
    return f'<dl class="run">{cells}</dl>'


def write_report(
    path,
    tables: dict[str, pd.DataFrame],
    model=None,
    *,
    metrics: dict | None = None,
    title: str | None = None,
    history: Sequence[dict] | None = None,
    bic_table: Sequence[dict] | None = None,
    svg_points: int = figures.SVG_POINTS,
) -> Path:
    """Write ``report.html``: one page that opens offline (plotly.js inlined).

    Sections: the run (``metrics``), the embedding map (the ``map`` table: one point per sampled
    node, coloured by cluster, label, anomaly score or outlier flag), the clusters table (K rows)
    with its feature and typical-node tables, the edges between clusters, the classes (contingency
    heatmap and table, when present), the anomaly table, the BIC curve and the history curves.

    Args:
        path (str or Path): the file to write.
        tables (dict of DataFrame): :func:`gnngmm.explain.explain_model`'s result.
        model (GNNGMM, optional): read for ``history_``, ``bic_table_`` and ``n_clusters_`` when
            ``history`` / ``bic_table`` are not given.
        metrics (dict, optional): the run's ``metrics.json``, shown at the top.
        title (str, optional): the page title (default from ``metrics``' dataset).
        history (list of dict, optional): one row per refit (``epoch``, ``gmm/modularity``, ...).
        bic_table (list of dict, optional): rows with ``k`` and ``bic``.
        svg_points (int, optional): most map points drawn as SVG before WebGL (default 20,000).

    Returns:
        Path: ``path``.

    Raises:
        KeyError: when ``tables`` has no ``clusters`` table.
    """
    path = Path(path)
    history = history if history is not None else getattr(model, "history_", None)
    bic_table = bic_table if bic_table is not None else getattr(model, "bic_table_", None)
    chosen = getattr(model, "n_clusters_", None) if model is not None else (metrics or {}).get("k")
    name = (metrics or {}).get("dataset")
    title = title or (f"gnngmm report: {name}" if name else "gnngmm report")
    sections = report_sections(tables, bic_table=bic_table, history=history, chosen=chosen, svg_points=svg_points)
    nav = "".join(f'<a href="#section-{anchor}">{html.escape(heading)}</a>' for anchor, heading, _ in sections)
    body = "".join(
        f'<section id="section-{anchor}"><h2>{html.escape(heading)}</h2>{"".join(parts)}</section>'
        for anchor, heading, parts in sections
    )
    content = f"{_run_summary(metrics, tables)}\n<nav>{nav}</nav>\n{body}"
    meta = f'<script type="application/json" id="gnngmm-report-meta">{json.dumps(_meta(tables))}</script>\n'
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(html_page(title, content, meta), encoding="utf-8")
    tmp.replace(path)
    return path


def _meta(tables: dict) -> dict:
    """Counts a reader (or a test) can check against what the page shows."""
    meta = {"clusters": len(tables["clusters"])}
    if "map" in tables:
        meta["map_points"] = len(tables["map"])
    if "anomalies" in tables:
        meta["anomalies"] = len(tables["anomalies"])
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in meta.items()}
