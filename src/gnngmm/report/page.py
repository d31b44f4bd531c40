"""``report.html``: one self-contained page (plotly.js inlined, no server, opens offline) built from
the tables of :func:`gnngmm.explain.explain_model`, and the same tables as CSV files."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from gnngmm.report import figures

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

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 2em 3em; color: #222; }
h1 { margin-bottom: .2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
p.note { color: #555; max-width: 70em; }
dl.run { display: grid; grid-template-columns: max-content auto; gap: .1em 1em; font-size: 90%; }
dl.run dt { color: #666; } dl.run dd { margin: 0; font-family: ui-monospace, monospace; }
div.scroll { max-height: 34em; overflow: auto; border: 1px solid #ddd; margin: .5em 0; }
table.gnngmm { border-collapse: collapse; font-size: 85%; font-variant-numeric: tabular-nums; }
table.gnngmm th, table.gnngmm td { padding: .25em .6em; border-bottom: 1px solid #eee; text-align: right;
  white-space: nowrap; }
table.gnngmm th { position: sticky; top: 0; background: #f6f6f6; cursor: pointer; user-select: none; }
table.gnngmm tbody tr:hover { background: #fff7d6; }
nav a { margin-right: 1em; }
"""

# click a header to sort its table (numbers numerically), click again to reverse
SORT_SCRIPT = """
document.querySelectorAll("table.gnngmm").forEach(function (table) {
  table.querySelectorAll("thead th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var up = th.getAttribute("data-order") !== "asc";
      rows.sort(function (a, b) {
        var x = a.cells[col].textContent, y = b.cells[col].textContent;
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return up ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
      th.setAttribute("data-order", up ? "asc" : "desc");
    });
  });
});
"""


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


def _cell(value):
    if isinstance(value, (list, tuple, np.ndarray)):
        return ", ".join(str(v) for v in value)
    return value


def html_table(frame: pd.DataFrame, table_id: str, *, index: bool = False, digits: int = 4) -> str:
    """A DataFrame as an HTML table (``<table id=table_id class="gnngmm">``, escaped), floats at
    ``digits`` significant digits, lists joined by commas, wrapped in a scrolling ``div``."""
    shown = frame.copy()
    for column in shown.columns:
        if shown[column].dtype == object:
            shown[column] = shown[column].map(_cell)
    text = shown.to_html(
        index=index,
        table_id=table_id,
        classes="gnngmm",
        border=0,
        escape=True,
        na_rep="",
        float_format=lambda v: f"{v:.{digits}g}",
    )
    return f'<div class="scroll">{text}</div>'


def _figure(fig, div_id: str) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config={"displaylogo": False})


def _run_summary(metrics: dict | None, tables: dict) -> str:
    clusters = tables.get("clusters")
    items = []
    if clusters is not None:
        items.append(("nodes", int(clusters["size"].sum())))
        items.append(("clusters (K)", len(clusters)))
    for key in (
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
    ):
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
    """Write ``report.html``: one page that opens offline (plotly.js inlined, about 5 MB).

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
    from plotly.offline import get_plotlyjs

    path = Path(path)
    history = history if history is not None else getattr(model, "history_", None)
    bic_table = bic_table if bic_table is not None else getattr(model, "bic_table_", None)
    chosen = getattr(model, "n_clusters_", None) if model is not None else (metrics or {}).get("k")
    name = (metrics or {}).get("dataset")
    title = title or (f"gnngmm report: {name}" if name else "gnngmm report")
    clusters = tables["clusters"]
    k = len(clusters)
    nav, body = [], []

    def section(anchor: str, heading: str, *parts: str) -> None:
        nav.append(f'<a href="#section-{anchor}">{html.escape(heading)}</a>')
        body.append(f'<section id="section-{anchor}"><h2>{html.escape(heading)}</h2>{"".join(parts)}</section>')

    if "map" in tables and len(tables["map"]):
        points = tables["map"]
        n_total = int(clusters["size"].sum())
        note = (
            f"{len(points):,} of {n_total:,} nodes drawn (a fixed random sample with the listed anomalies)"
            if len(points) < n_total
            else f"all {n_total:,} nodes"
        )
        section(
            "map",
            "Embedding map",
            f'<p class="note">PCA of the embedding the mixture models; {note}. Buttons change the colouring; '
            "hover a point for its node id, cluster, responsibility and anomaly score.</p>",
            _figure(figures.embedding_map(points, svg_points=svg_points), "map"),
        )
    shown = clusters.drop(columns=[c for c in ("share",) if c in clusters])
    section(
        "clusters",
        f"Clusters ({k})",
        '<p class="note">Per mixture component: size and weight, mean max-responsibility and entropy of its '
        "members, cohesion on the graph (share of its edge ends that stay inside, conductance = cut / "
        "min(volume, rest of the volume)), flagged outliers, its most over-represented features and its most "
        "typical nodes (highest log-density). Click a header to sort.</p>",
        html_table(shown, "table-clusters"),
    )
    if "features" in tables and len(tables["features"]):
        section(
            "features",
            "Characteristic features",
            '<p class="note">Binary features: share of the cluster having the feature vs the rest, effect = '
            "log-odds ratio, score = its z; continuous features: means, effect = standardised difference "
            "(Cohen's d), score = Welch's t. Ranked by score among over-represented features with enough "
            "support (cluster members where the feature is non-zero).</p>",
            html_table(tables["features"], "table-features"),
        )
    if "typical" in tables and len(tables["typical"]):
        section("typical", "Typical nodes", html_table(tables["typical"], "table-typical"))
    if "edges" in tables:
        section(
            "edges",
            "Edges between clusters",
            '<p class="note">Stored edges from a cluster (row) to a cluster (column), coloured by the share of the '
            "row's edge ends: a strong diagonal means communities the graph agrees with.</p>",
            _figure(
                figures.share_heatmap(
                    tables["edges"],
                    normalise="rows",
                    title="edges between clusters",
                    x_title="to cluster",
                    y_title="from cluster",
                ),
                "edges-heatmap",
            ),
            html_table(tables["edges"], "table-edges", index=True),
        )
    if "contingency" in tables:
        parts = [
            (
                '<p class="note">Clusters (rows) against classes (columns), coloured by the share of each class. A '
                "cluster holds a class when at least the given share of the class is in it; a class held by several "
                "clusters is split, a cluster holding several classes merges them.</p>"
            ),
            _figure(
                figures.share_heatmap(
                    tables["contingency"],
                    normalise="columns",
                    title="clusters x classes",
                    x_title="class",
                    y_title="cluster",
                ),
                "contingency-heatmap",
            ),
            html_table(tables["contingency"], "table-contingency", index=True),
        ]
        if "classes" in tables:
            parts.append(html_table(tables["classes"], "table-classes"))
        section("classes", "Clusters and classes", *parts)
    if "anomalies" in tables:
        anomalies = tables["anomalies"]
        section(
            "anomalies",
            f"Anomalies ({len(anomalies)})",
            '<p class="note">The top outliers (the contamination share, capped) and any requested node. Per '
            "channel: its value and its tail p-value (share of nodes scoring at least as high); driver = the "
            "channel of smallest p-value; mahalanobis / euclidean = distance to its component's mean (under "
            "the component's covariance / plain).</p>",
            html_table(anomalies, "table-anomalies"),
        )
    if bic_table:
        section("bic", "Model selection", _figure(figures.bic_curve(bic_table, chosen), "bic"))
    if history:
        fig = figures.history_curves(history)
        if fig is not None:
            section("history", "Training history", _figure(fig, "history"))
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>{STYLE}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head>
<body>
<h1>{html.escape(title)}</h1>
{_run_summary(metrics, tables)}
<nav>{"".join(nav)}</nav>
{"".join(body)}
<script type="text/javascript">{SORT_SCRIPT}</script>
<script type="application/json" id="gnngmm-report-meta">{json.dumps(_meta(tables))}</script>
</body>
</html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
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
