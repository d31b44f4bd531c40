"""How the clusters meet the classes, where labels exist: the contingency table, each class's
best cluster, and which classes are split across clusters or merged into one.

The rule: cluster ``i`` *holds* class ``c`` when at least ``min_share`` of the class's nodes are in
``i``. A class held by two or more clusters is *split*; a cluster holding two or more classes
*merges* them. A class's *best cluster* is the one holding most of its nodes (ties: the lowest
index).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from gnngmm.errors import InputError
from gnngmm.explain.common import as_tensor


def _class_rows(table: np.ndarray, classes: np.ndarray, min_share: float) -> list[dict]:
    """One row per class (column of the (K, C) count ``table``), as :func:`class_agreement`'s
    ``classes`` table lists them."""
    size = table.sum(0)
    share = table / np.maximum(size, 1)[None, :]  # (K, C): share of each class in each cluster
    holds = share >= min_share
    cluster_total = table.sum(1)
    rows = []
    for j, c in enumerate(classes):
        best = int(table[:, j].argmax())
        order = np.argsort(-table[:, j], kind="stable")
        held = [int(i) for i in order if holds[i, j]]
        cover = np.cumsum(table[order, j]) >= 0.8 * size[j]
        merged = [int(classes[o]) for o in np.flatnonzero(holds[best]) if o != j] if holds[best, j] else []
        rows.append(
            {
                "class": int(c),
                "size": int(size[j]),
                "best_cluster": best,
                "share_in_best": float(share[best, j]),
                "purity_of_best": float(table[best, j] / max(1, cluster_total[best])),
                "clusters": held,
                "split": len(held) >= 2,
                "merged_with": merged,
                "clusters_for_80": int(np.argmax(cover)) + 1 if size[j] else 0,
            }
        )
    return rows


def class_agreement(clusters, labels, k: int, *, min_share: float = 0.2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """How the clusters meet the classes, by this module's rule. Nodes with a negative label are
    left out.

    Args:
        clusters (Tensor): (N,) cluster of every node, in ``[0, k)``.
        labels (Tensor): (N,) integer class of every node (negative: unknown).
        k (int): number of clusters.
        min_share (float, optional): the share of a class that makes a cluster hold it (default
            0.2).

    Returns:
        ``(contingency, classes)``: ``contingency`` (K rows, one column per class, int counts,
        index ``cluster``); ``classes`` (one row per class): ``class``, ``size``,
        ``best_cluster``, ``share_in_best`` (share of the class there), ``purity_of_best`` (share
        of that cluster's labelled nodes in this class), ``clusters`` (the clusters holding it,
        most first), ``split``, ``merged_with`` (the other classes its best cluster holds, when
        that cluster holds it), ``clusters_for_80`` (fewest clusters covering 80% of it).

    Raises:
        InputError: when ``labels`` and ``clusters`` disagree on N.
    """
    clusters = as_tensor(clusters, torch.long).numpy()
    labels = as_tensor(labels, torch.long).numpy()
    if labels.shape != clusters.shape:
        raise InputError(f"labels of shape {labels.shape} do not match {clusters.shape[0]} nodes")
    known = labels >= 0
    classes = np.unique(labels[known])
    position = np.searchsorted(classes, labels[known])
    table = np.zeros((k, classes.size), dtype=np.int64)
    np.add.at(table, (clusters[known], position), 1)
    contingency = pd.DataFrame(table, index=pd.RangeIndex(k, name="cluster"), columns=[int(c) for c in classes])
    return contingency, pd.DataFrame(_class_rows(table, classes, min_share))


def cluster_class_columns(contingency: pd.DataFrame, min_share: float = 0.2) -> dict[str, list]:
    """The clusters table's class columns, from :func:`class_agreement`'s ``contingency``.

    Args:
        contingency (DataFrame): (K, C) counts, one column per class.
        min_share (float, optional): the share of a class that makes a cluster hold it (default
            0.2).

    Returns:
        dict of K-long columns: ``majority_class`` (None for a cluster without labelled nodes),
        ``purity`` (share of its labelled nodes in that class), ``classes_held``, ``merges``
        (holds two or more classes).
    """
    table = contingency.to_numpy()
    class_ids = list(contingency.columns)
    labelled = table.sum(1)
    share = table / np.maximum(table.sum(0), 1)[None, :]
    held = [[class_ids[j] for j in np.flatnonzero(share[i] >= min_share)] for i in range(table.shape[0])]
    return {
        "majority_class": [class_ids[int(r.argmax())] if r.sum() else None for r in table],
        "purity": table.max(1, initial=0) / np.maximum(labelled, 1),
        "classes_held": held,
        "merges": [len(h) >= 2 for h in held],
    }
