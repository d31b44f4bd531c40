"""Every explanation table for a fitted :class:`~gnngmm.GNNGMM` and a graph.

:func:`explain_model` reads only the estimator's public results: its stored training-graph results
(``transform()``, ``predict_proba()``, ``score_samples()``, ``labels_``, ``decision_scores_``,
``channels_``) when they describe the graph (same N), else ``transform(data)`` and
``gmm_.log_prob_table`` (plus ``prediction_table(data)`` for the anomaly channels unless the
model's stored clusters agree with the graph's on 99% of the nodes, which means the checkpoint's
own training graph); ``threshold_``, ``contamination`` and ``gmm_``'s weights, means and
covariances.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from gnngmm.errors import InputError
from gnngmm.explain.agreement import class_agreement
from gnngmm.explain.anomalies import anomaly_reasons, component_distances, select_outliers
from gnngmm.explain.clusters import cluster_table
from gnngmm.explain.common import FEATURE_COLUMNS, MAX_OUTLIERS, join
from gnngmm.explain.graph import edge_counts
from gnngmm.explain.node_map import embedding_map
from gnngmm.explain.profiles import feature_profiles, typical_nodes
from gnngmm.explain.scores import NodeScores, node_scores

TABLES = ("clusters", "features", "typical", "edges", "contingency", "classes", "anomalies", "map")


def _positions(node_ids, names, n: int) -> list[int]:
    """Positions of the requested nodes: by name when the graph names its nodes, else indices."""
    if node_ids is None:
        return []
    if isinstance(node_ids, (str, int, np.integer)):
        node_ids = [node_ids]
    if names is not None:
        lookup = {str(name): i for i, name in enumerate(names)}
        missing = [v for v in node_ids if str(v) not in lookup]
        if missing:
            raise InputError(f"node_ids not in the graph: {join(missing, 5)}" + (" ..." if len(missing) > 5 else ""))
        return [lookup[str(v)] for v in node_ids]
    out = [int(v) for v in node_ids]
    bad = [v for v in out if not 0 <= v < n]
    if bad:
        raise InputError(f"node_ids out of range [0, {n}): {join(bad, 5)}")
    return out


def _profile_tables(got: NodeScores, data, k: int, features, feature_names, top: int, typical: int, min_support: int):
    """``features`` (of ``features``, else ``data.raw_x``, else ``data.x``; empty without any)
    and ``typical``."""
    x = features if features is not None else getattr(data, "raw_x", None)
    x = x if x is not None else getattr(data, "x", None)
    if feature_names is None:
        feature_names = getattr(data, "feature_names", None)
    if x is not None:
        profiles = feature_profiles(x, got.clusters, k, feature_names=feature_names, top=top, min_support=min_support)
    else:
        profiles = pd.DataFrame(columns=FEATURE_COLUMNS)
    return {
        "features": profiles,
        "typical": typical_nodes(got.clusters, got.log_density, k, top=typical, node_names=got.names),
    }


def _cluster_tables(model, got: NodeScores, counts: np.ndarray, tables: dict, labels, min_share: float) -> dict:
    """``contingency`` and ``classes`` (with labels), ``clusters`` and ``edges``."""
    k = counts.shape[0]
    out = {}
    if labels is not None:
        out["contingency"], out["classes"] = class_agreement(got.clusters, labels, k, min_share=min_share)
    out["clusters"] = cluster_table(
        got,
        counts,
        model.gmm_.weights_,
        tables["features"],
        tables["typical"],
        threshold=getattr(model, "threshold_", None),
        contingency=out.get("contingency"),
        min_share=min_share,
    )
    out["edges"] = pd.DataFrame(counts, index=pd.RangeIndex(k, name="cluster"), columns=list(range(k)))
    return out


def _chosen_nodes(got: NodeScores, contamination: float, max_outliers: int, requested: list[int]) -> list:
    """The top outliers, highest first, then the requested nodes not among them."""
    top_nodes = select_outliers(got.scores, contamination, max_outliers)
    listed = set(top_nodes.tolist())
    return list(top_nodes) + [i for i in dict.fromkeys(requested) if i not in listed]


def _anomaly_table(model, got: NodeScores, chosen: list, requested: list, degree, labels, outliers) -> pd.DataFrame:
    """:func:`anomaly_reasons` of the ``chosen`` nodes, with their distance to their component."""
    picked = torch.as_tensor(chosen, dtype=torch.long)
    gmm = model.gmm_
    maha, eucl = component_distances(
        got.z[picked], got.clusters[picked], gmm.means_, gmm.covariances_, gmm.covariance_type
    )
    return anomaly_reasons(
        got.scores,
        got.channels,
        chosen,
        clusters=got.clusters,
        max_responsibility=got.max_responsibility,
        degree=torch.as_tensor(degree),
        mahalanobis=maha,
        euclidean=eucl,
        threshold=getattr(model, "threshold_", None),
        requested=requested,
        node_names=got.names,
        labels=labels,
        outliers=outliers,
    )


def _map_table(model, got: NodeScores, chosen: list, labels, max_points: int, seed: int) -> pd.DataFrame:
    """:func:`embedding_map` of the nodes, the ``chosen`` ones always drawn."""
    return embedding_map(
        got.z,
        clusters=got.clusters,
        max_responsibility=got.max_responsibility,
        scores=got.scores,
        labels=labels,
        threshold=getattr(model, "threshold_", None),
        node_names=got.names,
        max_points=max_points,
        include=chosen,
        seed=seed,
    )


def explain_model(
    model,
    data,
    labels=None,
    node_ids=None,
    feature_names: Sequence[str] | None = None,
    top: int = 10,
    *,
    features=None,
    outliers=None,
    typical: int = 5,
    min_support: int = 5,
    min_share: float = 0.2,
    max_outliers: int = MAX_OUTLIERS,
    max_points: int = 50_000,
    use_training_results: bool | None = None,
    seed: int = 0,
) -> dict[str, pd.DataFrame]:
    """Every table of :mod:`gnngmm.explain` for a fitted model and a graph, from the estimator's
    public results only (this module's docstring says which).

    Args:
        model (GNNGMM): a fitted (or loaded) estimator.
        data (torch_geometric.data.Data): the graph: ``edge_index`` (read as stored, self-loops
            skipped: the graph the model was trained on, both directions stored), the features
            profiled (``data.raw_x`` when present, else ``data.x``) and ``node_ids`` if any.
        labels (Tensor, optional): (N,) classes, negative = unknown: adds ``contingency``,
            ``classes`` and the ``label`` columns. Never read by anything else.
        node_ids (sequence, optional): nodes to explain besides the top outliers: ids when the
            graph names its nodes (``data.node_ids``), else positions.
        feature_names (sequence of str, optional): F names (default ``data.feature_names``).
        top, typical (int, optional): features (default 10) and typical nodes (5) per cluster.
        features (Tensor, optional): (N, F) features to profile instead of the graph's.
        outliers (Tensor, optional): (N,) known outlier marks (``true_outlier`` column).
        min_support, min_share: see :func:`feature_profiles` (5) and :func:`class_agreement` (0.2).
        max_outliers, max_points, seed (int, optional): most top outliers listed (1000), most
            nodes on the map (50,000), the map's sample seed (0).
        use_training_results (bool, optional): see :func:`~gnngmm.explain.scores.node_scores`.

    Returns:
        dict of DataFrames: ``clusters``, ``features``, ``typical``, ``edges``, ``anomalies``,
        ``map``, and with labels ``contingency`` and ``classes`` (see each function's docstring).

    Raises:
        InputError: a node id not in the graph, features or names of the wrong shape, or
            ``use_training_results=True`` without stored results.
    """
    k = int(model.n_clusters_)
    got = node_scores(model, data, use_training_results)
    counts, degree = edge_counts(data.edge_index, got.clusters, k)
    tables = _profile_tables(got, data, k, features, feature_names, top, typical, min_support)
    tables.update(_cluster_tables(model, got, counts, tables, labels, min_share))
    requested = _positions(node_ids, got.names, int(data.num_nodes))
    chosen = _chosen_nodes(got, float(model.contamination), max_outliers, requested)
    tables["anomalies"] = _anomaly_table(model, got, chosen, requested, degree, labels, outliers)
    tables["map"] = _map_table(model, got, chosen, labels, max_points, seed)
    return {key: tables[key] for key in TABLES if key in tables}
