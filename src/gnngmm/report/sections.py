"""The sections of ``report.html``, each built from :func:`gnngmm.explain.explain_model`'s tables
(or the estimator's ``bic_table_`` / ``history_`` rows) as ``(anchor, heading, HTML parts)``, or
None when its table is missing or empty."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from gnngmm.report import figures
from gnngmm.report.markup import figure_div, html_table

Section = tuple[str, str, list[str]]

CLUSTERS_NOTE = (
    "Per mixture component: size and weight, mean max-responsibility and entropy of its members, cohesion on "
    "the graph (share of its edge ends that stay inside, conductance = cut / min(volume, rest of the volume)), "
    "flagged outliers, its most over-represented features and its most typical nodes (highest log-density). "
    "Click a header to sort."
)
FEATURES_NOTE = (
    "Binary features: share of the cluster having the feature vs the rest, effect = log-odds ratio, score = its "
    "z; continuous features: means, effect = standardised difference (Cohen's d), score = Welch's t. Ranked by "
    "score among over-represented features with enough support (cluster members where the feature is non-zero)."
)
EDGES_NOTE = (
    "Stored edges from a cluster (row) to a cluster (column), coloured by the share of the row's edge ends: a "
    "strong diagonal means communities the graph agrees with."
)
CLASSES_NOTE = (
    "Clusters (rows) against classes (columns), coloured by the share of each class. A cluster holds a class "
    "when at least the given share of the class is in it; a class held by several clusters is split, a cluster "
    "holding several classes merges them."
)
ANOMALIES_NOTE = (
    "The top outliers (the contamination share, capped) and any requested node. Per channel: its value and its "
    "tail p-value (share of nodes scoring at least as high); driver = the channel of smallest p-value; "
    "mahalanobis / euclidean = distance to its component's mean (under the component's covariance / plain)."
)


def _note(text: str) -> str:
    return f'<p class="note">{text}</p>'


def map_section(tables: dict[str, pd.DataFrame], svg_points: int) -> Section | None:
    """The embedding map of the ``map`` table, and how many of the nodes it draws."""
    if "map" not in tables or not len(tables["map"]):
        return None
    points = tables["map"]
    n_total = int(tables["clusters"]["size"].sum())
    note = (
        f"{len(points):,} of {n_total:,} nodes drawn (a fixed random sample with the listed anomalies)"
        if len(points) < n_total
        else f"all {n_total:,} nodes"
    )
    text = (
        f"PCA of the embedding the mixture models; {note}. Buttons change the colouring; "
        "hover a point for its node id, cluster, responsibility and anomaly score."
    )
    figure = figure_div(figures.embedding_map(points, svg_points=svg_points), "map")
    return "map", "Embedding map", [_note(text), figure]


def cluster_sections(tables: dict[str, pd.DataFrame]) -> list[Section]:
    """The clusters table (without its ``share`` column), then the features and typical nodes."""
    clusters = tables["clusters"]
    shown = clusters.drop(columns=[c for c in ("share",) if c in clusters])
    out = [("clusters", f"Clusters ({len(clusters)})", [_note(CLUSTERS_NOTE), html_table(shown, "table-clusters")])]
    if "features" in tables and len(tables["features"]):
        parts = [_note(FEATURES_NOTE), html_table(tables["features"], "table-features")]
        out.append(("features", "Characteristic features", parts))
    if "typical" in tables and len(tables["typical"]):
        out.append(("typical", "Typical nodes", [html_table(tables["typical"], "table-typical")]))
    return out


def edges_section(tables: dict[str, pd.DataFrame]) -> Section | None:
    """The edges between clusters: a heatmap of each row's shares, and the counts."""
    if "edges" not in tables:
        return None
    heatmap = figures.share_heatmap(
        tables["edges"], normalise="rows", title="edges between clusters", x_title="to cluster", y_title="from cluster"
    )
    parts = [_note(EDGES_NOTE), figure_div(heatmap, "edges-heatmap")]
    return "edges", "Edges between clusters", parts + [html_table(tables["edges"], "table-edges", index=True)]


def classes_section(tables: dict[str, pd.DataFrame]) -> Section | None:
    """Clusters against classes: a heatmap of each class's shares, the contingency and classes tables."""
    if "contingency" not in tables:
        return None
    heatmap = figures.share_heatmap(
        tables["contingency"], normalise="columns", title="clusters x classes", x_title="class", y_title="cluster"
    )
    parts = [
        _note(CLASSES_NOTE),
        figure_div(heatmap, "contingency-heatmap"),
        html_table(tables["contingency"], "table-contingency", index=True),
    ]
    if "classes" in tables:
        parts.append(html_table(tables["classes"], "table-classes"))
    return "classes", "Clusters and classes", parts


def anomalies_section(tables: dict[str, pd.DataFrame]) -> Section | None:
    """The anomaly table."""
    if "anomalies" not in tables:
        return None
    anomalies = tables["anomalies"]
    parts = [_note(ANOMALIES_NOTE), html_table(anomalies, "table-anomalies")]
    return "anomalies", f"Anomalies ({len(anomalies)})", parts


def training_sections(bic_table: Sequence[dict] | None, history: Sequence[dict] | None, chosen) -> list[Section]:
    """The BIC curve (with the ``chosen`` K marked) and the history curves, those there are rows for."""
    out = []
    if bic_table:
        out.append(("bic", "Model selection", [figure_div(figures.bic_curve(bic_table, chosen), "bic")]))
    fig = figures.history_curves(history) if history else None
    if fig is not None:
        out.append(("history", "Training history", [figure_div(fig, "history")]))
    return out


def report_sections(
    tables: dict[str, pd.DataFrame], *, bic_table=None, history=None, chosen=None, svg_points: int
) -> list[Section]:
    """Every section of the page, in order: map, clusters, features, typical nodes, edges, classes,
    anomalies, model selection, training history (those that have something to show)."""
    sections = [map_section(tables, svg_points), *cluster_sections(tables)]
    sections += [edges_section(tables), classes_section(tables), anomalies_section(tables)]
    sections += training_sections(bic_table, history, chosen)
    return [s for s in sections if s is not None]
