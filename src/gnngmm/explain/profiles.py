"""What each cluster is: the input features most over-represented in it against the rest of the
graph, and its most typical members.

The features are read in one pass over the rows, in blocks, accumulating per cluster and feature
the sum, the sum of squares and the count of non-zero entries (``index_add``: (K, F) arrays, no
one-hot). A feature whose every value is 0 or 1 is *binary* (bag-of-words, one-hot): its effect is
the log-odds ratio of having it in the cluster against outside,
``log((a+.5)(d+.5)/((b+.5)(c+.5)))`` (``a``/``b``: cluster members with / without it, ``c``/``d``:
the other nodes; Haldane's 0.5), and its score that log-odds ratio over its standard error (a
z-score: a large share gap on a common feature beats the same ratio on a rare one). Any other
feature is *continuous*: its effect is the standardised mean difference (Cohen's d with the pooled
standard deviation) and its score Welch's t.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from gnngmm.errors import InputError
from gnngmm.explain.common import FEATURE_COLUMNS, ROW_BYTES, as_tensor, row_names


def _feature_sums(x: Tensor, clusters: Tensor, k: int, row_bytes: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per cluster and feature, by blocks of rows: ``(sum, sum of squares, non-zero count)``, three
    (K, F) float64 tensors, and the (F,) bool mask of the binary features."""
    n, f = x.shape
    s1 = torch.zeros(k, f, dtype=torch.float64)
    s2 = torch.zeros(k, f, dtype=torch.float64)
    nz = torch.zeros(k, f, dtype=torch.float64)
    binary = torch.ones(f, dtype=torch.bool)
    rows = max(1, row_bytes // max(1, 8 * f))
    for start in range(0, n, rows):
        block = x[start : start + rows].double()
        c = clusters[start : start + rows]
        s1.index_add_(0, c, block)
        s2.index_add_(0, c, block.square())
        nonzero = block != 0
        nz.index_add_(0, c, nonzero.double())
        binary &= ~(nonzero & (block != 1)).any(0)
        del block, nonzero
    return s1, s2, nz, binary


def _continuous_effects(s1: Tensor, s2: Tensor, size: Tensor, n: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(mean in the cluster, mean outside, Cohen's d, Welch's t)``, each (K, F), from the sums
    and the (K, 1) cluster sizes."""
    out_size = n - size
    total1, total2 = s1.sum(0), s2.sum(0)
    mean_in = s1 / size.clamp_min(1)
    mean_out = (total1 - s1) / out_size.clamp_min(1)
    var_in = (s2 / size.clamp_min(1) - mean_in.square()).clamp_min(0) * size / (size - 1).clamp_min(1)
    var_out = (
        ((total2 - s2) / out_size.clamp_min(1) - mean_out.square()).clamp_min(0)
        * out_size
        / (out_size - 1).clamp_min(1)
    )
    pooled = (((size - 1).clamp_min(0) * var_in + (out_size - 1).clamp_min(0) * var_out) / max(1, n - 2)).sqrt()
    cohen = (mean_in - mean_out) / pooled.clamp_min(1e-12)
    spread = (var_in / size.clamp_min(1) + var_out / out_size.clamp_min(1)).sqrt().clamp_min(1e-12)
    welch = (mean_in - mean_out) / spread
    return mean_in, mean_out, cohen, welch


def _binary_effects(nz: Tensor, size: Tensor, n: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(share in the cluster, share outside, log-odds ratio, its z)``, each (K, F), from the
    non-zero counts and the (K, 1) cluster sizes."""
    out_size = n - size
    a, c = nz, nz.sum(0) - nz
    b, d = size - a, out_size - c
    log_odds = ((a + 0.5) * (d + 0.5) / ((b + 0.5) * (c + 0.5))).log()
    z_odds = log_odds / (1 / (a + 0.5) + 1 / (b + 0.5) + 1 / (c + 0.5) + 1 / (d + 0.5)).sqrt()
    return a / size.clamp_min(1), c / out_size.clamp_min(1), log_odds, z_odds


def _ranked_rows(stats: dict[str, Tensor], binary: Tensor, ranked: Tensor, top: int, feature_names) -> pd.DataFrame:
    """The ``top`` finite entries of each row of ``ranked`` (K, F), highest first, as the table's
    rows: the (K, F) columns of ``stats`` read at each kept feature."""
    k, f = ranked.shape
    keep = min(top, f)
    best_score, best = ranked.topk(keep, dim=1) if keep else (ranked[:, :0], ranked[:, :0].long())
    records = []
    for cluster in range(k):
        for rank in range(keep):
            if not math.isfinite(float(best_score[cluster, rank])):
                break
            j = int(best[cluster, rank])
            name = str(feature_names[j]) if feature_names is not None else str(j)
            kind = "binary" if bool(binary[j]) else "continuous"
            values = [float(stats[key][cluster, j]) for key in ("effect", "score", "in_cluster", "outside")]
            records.append((cluster, rank + 1, name, j, kind, *values, int(stats["support"][cluster, j])))
    return pd.DataFrame.from_records(records, columns=FEATURE_COLUMNS)


def feature_profiles(
    x,
    clusters,
    k: int,
    *,
    feature_names: Sequence[str] | None = None,
    top: int = 10,
    min_support: int = 5,
    row_bytes: int = ROW_BYTES,
) -> pd.DataFrame:
    """The input features most over-represented in each cluster against the rest of the graph
    (effects and scores as in this module's docstring). Features are ranked by score among those
    over-represented (effect > 0) with at least ``min_support`` cluster members where the feature
    is non-zero.

    Args:
        x (Tensor or ndarray): (N, F) node features, dense.
        clusters (Tensor): (N,) cluster of every node, in ``[0, k)``.
        k (int): number of clusters.
        feature_names (sequence of str, optional): F names; column indices otherwise.
        top (int, optional): features kept per cluster (default 10).
        min_support (int, optional): least number of cluster members with the feature non-zero
            (default 5).
        row_bytes (int, optional): bytes of float64 rows read per block (default 64 MiB).

    Returns:
        up to ``top`` rows per cluster, ordered by cluster then rank: ``cluster``, ``rank`` (1 =
        most over-represented), ``feature`` (name, or the column index as a string), ``column``
        (index), ``kind`` (``binary`` | ``continuous``), ``effect`` (log-odds ratio | Cohen's d),
        ``score`` (z of the log-odds ratio | Welch's t), ``in_cluster`` / ``outside`` (share of
        nodes with the feature | mean value), ``support`` (cluster members with it non-zero).

    Raises:
        InputError: when ``x`` and ``clusters`` disagree on N, or ``feature_names`` on F.
    """
    x = as_tensor(x)
    clusters = as_tensor(clusters, torch.long)
    if x.dim() != 2 or x.shape[0] != clusters.numel():
        raise InputError(f"features of shape {tuple(x.shape)} do not match {clusters.numel()} nodes")
    n, f = x.shape
    if feature_names is not None and len(feature_names) != f:
        raise InputError(f"{len(feature_names)} feature names for {f} feature columns")
    s1, s2, nz, binary = _feature_sums(x, clusters, k, row_bytes)
    size = torch.bincount(clusters, minlength=k).double()[:, None]  # (K, 1)
    mean_in, mean_out, cohen, welch = _continuous_effects(s1, s2, size, n)
    share_in, share_out, log_odds, z_odds = _binary_effects(nz, size, n)
    stats = {
        "effect": torch.where(binary, log_odds, cohen),
        "score": torch.where(binary, z_odds, welch),
        "in_cluster": torch.where(binary, share_in, mean_in),
        "outside": torch.where(binary, share_out, mean_out),
        "support": nz,
    }
    eligible = (stats["effect"] > 0) & (nz >= min_support) & (size > 0)
    ranked = torch.where(eligible, stats["score"], torch.full_like(stats["score"], -math.inf))
    return _ranked_rows(stats, binary, ranked, top, feature_names)


def typical_nodes(clusters, log_density, k: int, *, top: int = 5, node_names: Sequence | None = None) -> pd.DataFrame:
    """Each cluster's most typical members: the highest log-density under the mixture.

    Args:
        clusters (Tensor): (N,) cluster of every node.
        log_density (Tensor): (N,) log-density of every node's embedding.
        k (int): number of clusters.
        top (int, optional): members per cluster (default 5).
        node_names (sequence, optional): N node ids; positions otherwise.

    Returns:
        up to ``top`` rows per cluster: ``cluster``, ``rank``, ``node`` (id), ``index`` (position),
        ``log_density``.
    """
    clusters = as_tensor(clusters, torch.long).numpy()
    density = as_tensor(log_density, torch.float64).numpy()
    order = np.lexsort((-density, clusters))  # by cluster, then density descending
    sizes = np.bincount(clusters, minlength=k)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    picks, ranks = [], []
    for cluster in range(k):
        m = min(top, int(sizes[cluster]))
        picks.append(order[starts[cluster] : starts[cluster] + m])
        ranks.append(np.arange(1, m + 1))
    index = np.concatenate(picks) if picks else np.zeros(0, dtype=np.int64)
    return pd.DataFrame(
        {
            "cluster": clusters[index],
            "rank": np.concatenate(ranks) if ranks else [],
            "node": row_names(node_names, index),
            "index": index,
            "log_density": density[index],
        }
    )
