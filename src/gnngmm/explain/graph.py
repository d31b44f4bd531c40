"""How the clusters sit on the graph: the stored edges between them, every node's degree, and
each cluster's cohesion (volume, internal edge share, cut, conductance). The edges are read in
blocks, so nothing of size ``N x N`` is built."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from gnngmm.explain.common import EDGE_CHUNK, as_tensor


def edge_counts(edge_index: Tensor, clusters: Tensor, k: int, chunk: int = EDGE_CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """Stored edges between clusters and every node's degree, by blocks of ``chunk`` edges.

    Edges are read as stored (an undirected graph stores both directions, PyG's convention);
    self-loops are skipped.

    Args:
        edge_index (Tensor): (2, E) node indices.
        clusters (Tensor): (N,) cluster of every node, in ``[0, k)``.
        k (int): number of clusters.
        chunk (int, optional): edges per block (default ``2**22``).

    Returns:
        ``(counts, degree)``: ``counts[i, j]`` (K, K) int64 is the number of stored edges from a
        node of cluster ``i`` to one of cluster ``j``; ``degree`` (N,) int64 the stored edges
        leaving each node. For a graph stored in both directions ``counts`` is symmetric, an edge
        between two clusters counts once in ``(i, j)`` and once in ``(j, i)``, an edge inside
        ``i`` twice on the diagonal, and a row sums to the cluster's volume (sum of degrees).
    """
    clusters = as_tensor(clusters, torch.long)
    n = clusters.numel()
    counts = torch.zeros(k * k, dtype=torch.long)
    degree = torch.zeros(n, dtype=torch.long)
    edge_index = as_tensor(edge_index)
    for start in range(0, edge_index.shape[1], chunk):
        src = edge_index[0, start : start + chunk].long()
        dst = edge_index[1, start : start + chunk].long()
        keep = src != dst
        if not bool(keep.all()):
            src, dst = src[keep], dst[keep]
        counts += torch.bincount(clusters[src] * k + clusters[dst], minlength=k * k)
        degree += torch.bincount(src, minlength=n)
    return counts.view(k, k).numpy(), degree.numpy()


def cohesion(counts: np.ndarray) -> pd.DataFrame:
    """Each cluster's cohesion on the graph.

    Args:
        counts (ndarray): (K, K) :func:`edge_counts`'s ``counts``.

    Returns:
        K rows: ``volume`` (sum of its nodes' degrees), ``internal_edge_share`` (share of its
        edge ends whose other end is in the cluster: ``counts[i, i] / volume``), ``cut`` (edges
        leaving it), ``conductance`` (``cut / min(volume, total volume - volume)``, 0 best, NaN
        for a cluster without edges or holding every edge).
    """
    counts = np.asarray(counts, dtype=np.float64)
    volume = counts.sum(1)
    inside = np.diag(counts)
    cut = volume - inside
    total = volume.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(volume > 0, inside / volume, np.nan)
        denominator = np.minimum(volume, total - volume)
        conductance = np.where(denominator > 0, cut / denominator, np.nan)
    return pd.DataFrame(
        {
            "volume": volume.astype(np.int64),
            "internal_edge_share": share,
            "cut": cut.astype(np.int64),
            "conductance": conductance,
        }
    )
