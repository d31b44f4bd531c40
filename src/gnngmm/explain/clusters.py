"""The clusters table: one row per mixture component, gathering what the other tables say of it
(size, weight, certainty, cohesion on the graph, outliers, top features, typical nodes and, with
labels, the classes it holds)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from gnngmm.explain.agreement import cluster_class_columns
from gnngmm.explain.common import as_tensor, join
from gnngmm.explain.graph import cohesion
from gnngmm.explain.scores import NodeScores


def cluster_table(
    got: NodeScores,
    counts: np.ndarray,
    weights,
    features: pd.DataFrame,
    typical: pd.DataFrame,
    *,
    threshold: float | None = None,
    contingency: pd.DataFrame | None = None,
    min_share: float = 0.2,
) -> pd.DataFrame:
    """One row per cluster.

    Args:
        got (NodeScores): every node's scores.
        counts (ndarray): (K, K) edges between clusters (:func:`~gnngmm.explain.edge_counts`).
        weights (Tensor): (K,) mixture weights.
        features (DataFrame): :func:`~gnngmm.explain.feature_profiles`' table.
        typical (DataFrame): :func:`~gnngmm.explain.typical_nodes`' table.
        threshold (float, optional): outlier threshold (adds ``outliers`` and ``outlier_share``).
        contingency (DataFrame, optional): :func:`~gnngmm.explain.class_agreement`'s first table
            (adds ``majority_class``, ``purity``, ``classes_held``, ``merges``).
        min_share (float, optional): the share of a class that makes a cluster hold it (default
            0.2).

    Returns:
        K rows: ``cluster``, ``size``, ``share``, ``weight``, ``mean_max_responsibility``,
        ``mean_entropy``, ``mean_log_density``, :func:`~gnngmm.explain.cohesion`'s columns,
        (``outliers``, ``outlier_share``), ``mean_anomaly_score``, ``top_features`` and
        ``typical_nodes`` (the first five, joined), then the class columns.
    """
    k = counts.shape[0]
    c = got.clusters.numpy()
    size = np.bincount(c, minlength=k)
    member = np.maximum(size, 1)
    frame = pd.DataFrame(
        {
            "cluster": np.arange(k),
            "size": size,
            "share": size / max(1, c.size),
            "weight": as_tensor(weights, torch.float64).numpy(),
            "mean_max_responsibility": np.bincount(c, got.max_responsibility.numpy(), minlength=k) / member,
            "mean_entropy": np.bincount(c, got.entropy.numpy(), minlength=k) / member,
            "mean_log_density": np.bincount(c, got.log_density.numpy(), minlength=k) / member,
        }
    )
    frame = pd.concat([frame, cohesion(counts)], axis=1)
    scores = got.scores.numpy()
    if threshold is not None:
        flagged = np.bincount(c, (scores > threshold).astype(np.float64), minlength=k)
        frame["outliers"] = flagged.astype(np.int64)
        frame["outlier_share"] = flagged / member
    frame["mean_anomaly_score"] = np.bincount(c, scores, minlength=k) / member
    frame["top_features"] = [join(features.loc[features["cluster"] == i, "feature"], 5) for i in range(k)]
    frame["typical_nodes"] = [join(typical.loc[typical["cluster"] == i, "node"], 5) for i in range(k)]
    if contingency is not None:
        for name, column in cluster_class_columns(contingency, min_share).items():
            frame[name] = column
    return frame
