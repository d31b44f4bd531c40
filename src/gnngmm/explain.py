"""What a fitted clustering found, in tables: what each cluster is, how the clusters sit on the
graph, how they meet the classes where labels exist, and why a node is flagged as an outlier.

Pure functions, tensors or arrays in and ``pandas.DataFrame`` out, each reading the whole graph in
blocks (of rows, of edges): nothing of size ``N x K x F`` or ``N x N`` is ever built, so they can
follow a run on a graph of 10^5-10^6 nodes and 10^8 edges. :func:`explain_model` computes every
table from a fitted :class:`~gnngmm.GNNGMM` through its public attributes only.

Tables (the keys of :func:`explain_model`'s result):

* ``clusters`` (K rows): size, mixture weight, mean max-responsibility and entropy, cohesion on
  the graph, flagged outliers, top features and typical nodes (and the classes it holds);
* ``features``: per cluster, the input features most over-represented in it against the rest;
* ``typical``: per cluster, its members of highest log-density;
* ``edges`` (K x K): stored edges between clusters;
* ``contingency`` (K x C) and ``classes`` (C rows): only with labels;
* ``anomalies``: the top outliers and the requested nodes, each channel's tail p-value and the
  channel that drove the score;
* ``map``: a sample of nodes with a 2-D PCA of the embedding, for the report's picture.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from gnngmm.anomaly import tail_p_values
from gnngmm.errors import InputError

log = logging.getLogger(__name__)

EDGE_CHUNK = 1 << 22  # edges per block: a few int64 temporaries of this length at a time
ROW_BYTES = 1 << 26  # bytes of float64 feature rows per block (64 MiB)
MAX_OUTLIERS = 1000


# --------------------------------------------------------------------------- small helpers
def _tensor(values, dtype=None) -> Tensor:
    out = values if isinstance(values, Tensor) else torch.as_tensor(np.asarray(values))
    out = out.detach().cpu()
    return out.to(dtype) if dtype is not None else out


def _names(names, index: np.ndarray) -> list:
    """Names of the rows ``index``: ``names[i]`` when names are given, else ``i`` itself."""
    if names is None:
        return [int(i) for i in index]
    return [names[int(i)] for i in index]


def _join(values, limit: int | None = None) -> str:
    values = list(values)[:limit]
    return ", ".join(str(v) for v in values)


def responsibility_stats(proba: Tensor, rows: int = 1 << 16) -> tuple[Tensor, Tensor, Tensor]:
    """``(cluster, max_responsibility, entropy)`` of every row of ``proba`` (N, K), by blocks of
    ``rows`` rows (default 65,536). Entropy is in nats, 0 for a one-hot row.

    Returns:
        three (N,) tensors: int64 argmax, float64 largest responsibility, float64 entropy.
    """
    proba = _tensor(proba)
    parts = []
    for block in proba.split(rows):
        block = block.double()
        best, cluster = block.max(1)
        parts.append((cluster, best, -torch.special.xlogy(block, block).sum(1)))
    if not parts:
        empty = torch.zeros(0, dtype=torch.float64)
        return torch.zeros(0, dtype=torch.long), empty, empty
    return tuple(torch.cat(column) for column in zip(*parts))


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
    clusters = _tensor(clusters, torch.long)
    n = clusters.numel()
    counts = torch.zeros(k * k, dtype=torch.long)
    degree = torch.zeros(n, dtype=torch.long)
    edge_index = _tensor(edge_index)
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
    """Each cluster's cohesion on the graph, from :func:`edge_counts`'s ``counts`` (K, K).

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


# --------------------------------------------------------------------------- features
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
    """The input features most over-represented in each cluster against the rest of the graph.

    One pass over the rows of ``x`` in blocks accumulates, per cluster and feature, the sum, the
    sum of squares and the count of non-zero entries (``index_add``: (K, F) arrays, no one-hot).
    A feature whose every value is 0 or 1 is *binary* (bag-of-words, one-hot): its effect is the
    log-odds ratio of having it in the cluster against outside, ``log((a+.5)(d+.5)/((b+.5)(c+.5)))``
    (``a``/``b``: cluster members with / without it, ``c``/``d``: the other nodes; Haldane's 0.5),
    and its score that log-odds ratio over its standard error (a z-score: a large share gap on a
    common feature beats the same ratio on a rare one). Any other feature is *continuous*: its
    effect is the standardised mean difference (Cohen's d with the pooled standard deviation) and
    its score Welch's t. Features are ranked by score among those over-represented (effect > 0)
    with at least ``min_support`` cluster members where the feature is non-zero.

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
    x = _tensor(x)
    clusters = _tensor(clusters, torch.long)
    if x.dim() != 2 or x.shape[0] != clusters.numel():
        raise InputError(f"features of shape {tuple(x.shape)} do not match {clusters.numel()} nodes")
    n, f = x.shape
    if feature_names is not None and len(feature_names) != f:
        raise InputError(f"{len(feature_names)} feature names for {f} feature columns")
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
    size = torch.bincount(clusters, minlength=k).double()[:, None]  # (K, 1)
    out_size = n - size
    total1, total2, total_nz = s1.sum(0), s2.sum(0), nz.sum(0)
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
    welch = (mean_in - mean_out) / (var_in / size.clamp_min(1) + var_out / out_size.clamp_min(1)).sqrt().clamp_min(
        1e-12
    )
    a, c = nz, total_nz - nz
    b, d = size - a, out_size - c
    log_odds = ((a + 0.5) * (d + 0.5) / ((b + 0.5) * (c + 0.5))).log()
    z_odds = log_odds / (1 / (a + 0.5) + 1 / (b + 0.5) + 1 / (c + 0.5) + 1 / (d + 0.5)).sqrt()
    effect = torch.where(binary, log_odds, cohen)
    score = torch.where(binary, z_odds, welch)
    inside = torch.where(binary, a / size.clamp_min(1), mean_in)
    outside = torch.where(binary, c / out_size.clamp_min(1), mean_out)
    eligible = (effect > 0) & (nz >= min_support) & (size > 0)
    ranked = torch.where(eligible, score, torch.full_like(score, -math.inf))
    keep = min(top, f)
    best_score, best = ranked.topk(keep, dim=1) if keep else (ranked[:, :0], ranked[:, :0].long())
    records = []
    for cluster in range(k):
        for rank in range(keep):
            if not math.isfinite(float(best_score[cluster, rank])):
                break
            j = int(best[cluster, rank])
            records.append(
                (
                    cluster,
                    rank + 1,
                    str(feature_names[j]) if feature_names is not None else str(j),
                    j,
                    "binary" if bool(binary[j]) else "continuous",
                    float(effect[cluster, j]),
                    float(score[cluster, j]),
                    float(inside[cluster, j]),
                    float(outside[cluster, j]),
                    int(nz[cluster, j]),
                )
            )
    columns = ["cluster", "rank", "feature", "column", "kind", "effect", "score", "in_cluster", "outside", "support"]
    return pd.DataFrame.from_records(records, columns=columns)


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
    clusters = _tensor(clusters, torch.long).numpy()
    density = _tensor(log_density, torch.float64).numpy()
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
            "node": _names(node_names, index),
            "index": index,
            "log_density": density[index],
        }
    )


# --------------------------------------------------------------------------- classes
def class_agreement(clusters, labels, k: int, *, min_share: float = 0.2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """How the clusters meet the classes. Nodes with a negative label are left out.

    The rule: cluster ``i`` *holds* class ``c`` when at least ``min_share`` of the class's nodes
    are in ``i``. A class held by two or more clusters is *split*; a cluster holding two or more
    classes *merges* them (each such class's ``merged_with`` lists the others in its best cluster).
    A class's *best cluster* is the one holding most of its nodes (ties: the lowest index).

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
        most first), ``split``, ``merged_with``, ``clusters_for_80`` (fewest clusters covering 80%
        of it).

    Raises:
        InputError: when ``labels`` and ``clusters`` disagree on N.
    """
    clusters = _tensor(clusters, torch.long).numpy()
    labels = _tensor(labels, torch.long).numpy()
    if labels.shape != clusters.shape:
        raise InputError(f"labels of shape {labels.shape} do not match {clusters.shape[0]} nodes")
    known = labels >= 0
    classes = np.unique(labels[known])
    position = np.searchsorted(classes, labels[known])
    table = np.zeros((k, classes.size), dtype=np.int64)
    np.add.at(table, (clusters[known], position), 1)
    contingency = pd.DataFrame(table, index=pd.RangeIndex(k, name="cluster"), columns=[int(c) for c in classes])
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
        rows.append(
            {
                "class": int(c),
                "size": int(size[j]),
                "best_cluster": best,
                "share_in_best": float(share[best, j]),
                "purity_of_best": float(table[best, j] / max(1, cluster_total[best])),
                "clusters": held,
                "split": len(held) >= 2,
                "merged_with": [int(classes[o]) for o in np.flatnonzero(holds[best]) if o != j]
                if holds[best, j]
                else [],
                "clusters_for_80": int(np.argmax(cover)) + 1 if size[j] else 0,
            }
        )
    return contingency, pd.DataFrame(rows)


# --------------------------------------------------------------------------- anomalies
def component_distances(z, components, means, covariances, covariance_type: str) -> tuple[np.ndarray, np.ndarray]:
    """Distance of each row of ``z`` to the mean of its component.

    Args:
        z (Tensor): (n, d) embeddings as the mixture sees them.
        components (Tensor): (n,) component of every row.
        means (Tensor): (K, d) component means.
        covariances (Tensor): the mixture's covariances: (K, d, d) ``full``, (d, d) ``tied``,
            (K, d) ``diag``, (K,) ``spherical`` / ``isotropic``.
        covariance_type (str): one of those names.

    Returns:
        ``(mahalanobis, euclidean)``, two (n,) float64 arrays: ``sqrt((z - mu)^T S^-1 (z - mu))``
        under the component's own covariance ``S``, and ``||z - mu||``.
    """
    z = _tensor(z, torch.float64)
    components = _tensor(components, torch.long)
    means = _tensor(means, torch.float64)
    cov = _tensor(covariances, torch.float64)
    diff = z - means[components]
    euclidean = diff.norm(dim=1)
    if covariance_type == "full":
        maha = torch.empty_like(euclidean)
        for comp in components.unique().tolist():  # one Cholesky factor per component, never (n, d, d)
            rows = components == comp
            chol = torch.linalg.cholesky(cov[comp])
            maha[rows] = torch.linalg.solve_triangular(chol, diff[rows].T, upper=False).square().sum(0).sqrt()
    elif covariance_type == "tied":
        chol = torch.linalg.cholesky(cov)
        maha = torch.linalg.solve_triangular(chol, diff.T, upper=False).square().sum(0).sqrt()
    elif covariance_type == "diag":
        maha = (diff.square() / cov[components]).sum(1).sqrt()
    elif covariance_type in ("spherical", "isotropic"):
        maha = (diff.square().sum(1) / cov[components]).sqrt()
    else:
        raise InputError(f"covariance_type={covariance_type!r} is not one of full, tied, diag, spherical, isotropic")
    return maha.numpy(), euclidean.numpy()


def informative_channels(channels: dict[str, Tensor]) -> list[str]:
    """The channels that are not constant over the nodes (a constant one takes no part in a
    combined score, and its p-values say nothing)."""
    return [name for name, v in channels.items() if v.numel() and bool((v != v.flatten()[0]).any())]


def select_outliers(scores, contamination: float, cap: int = MAX_OUTLIERS) -> np.ndarray:
    """Positions of the ``round(contamination * N)`` highest scores (at least 1, at most ``cap``),
    highest first; ties are broken by position."""
    scores = _tensor(scores, torch.float64)
    count = min(cap, max(1, round(contamination * scores.numel())), scores.numel())
    order = np.argsort(-scores.numpy(), kind="stable")
    return order[:count]


def anomaly_reasons(
    scores,
    channels: dict[str, Tensor],
    nodes: Sequence[int],
    *,
    clusters,
    max_responsibility=None,
    degree=None,
    mahalanobis=None,
    euclidean=None,
    threshold: float | None = None,
    requested: Sequence[int] = (),
    node_names: Sequence | None = None,
    labels=None,
    outliers=None,
) -> pd.DataFrame:
    """Why each of ``nodes`` scored as it did.

    Every channel's empirical upper-tail p-value is computed on all N nodes (the share scoring at
    least as high, :func:`gnngmm.anomaly.tail_p_values`, the p-values the combined score sums);
    the *driver* is the informative (non-constant) channel of smallest p-value, i.e. the largest
    term ``-log p`` of Fisher's sum (ties: the first in ``channels``' order).

    Args:
        scores (Tensor): (N,) anomaly score, higher = more anomalous.
        channels (dict): channel name -> (N,) score, higher = more unusual.
        nodes (sequence of int): positions of the rows, in output order.
        clusters (Tensor): (N,) cluster of every node.
        max_responsibility, degree, labels, outliers (Tensor, optional): (N,) columns to copy.
        mahalanobis, euclidean (ndarray, optional): (len(nodes),) distance to the component.
        threshold (float, optional): score above which a node is flagged (``is_outlier``).
        requested (sequence of int, optional): positions asked for by the caller (``requested``).
        node_names (sequence, optional): N node ids; positions otherwise.

    Returns:
        one row per node: ``rank`` (1 = highest score; ties share the best rank), ``node``,
        ``index``, ``anomaly_score``, ``is_outlier``, ``requested``, ``driver``, ``p_<channel>``
        and ``<channel>`` (raw value) for each channel, ``cluster``, then the optional columns.
    """
    scores = _tensor(scores, torch.float64)
    index = np.asarray(nodes, dtype=np.int64)
    picked = torch.as_tensor(index)
    all_scores = scores.numpy()
    sorted_scores = np.sort(all_scores)
    rank = all_scores.size - np.searchsorted(sorted_scores, all_scores[index], side="right") + 1
    frame = {"rank": rank, "node": _names(node_names, index), "index": index, "anomaly_score": all_scores[index]}
    if threshold is not None:
        frame["is_outlier"] = all_scores[index] > threshold
    wanted = {int(i) for i in requested}
    frame["requested"] = np.array([int(i) in wanted for i in index], dtype=bool)
    channels = {name: _tensor(v, torch.float64) for name, v in channels.items()}
    informative = informative_channels(channels)
    p_values = {name: tail_p_values(v)[picked].numpy() for name, v in channels.items()}
    if informative:
        stacked = np.stack([p_values[name] for name in informative])
        frame["driver"] = [informative[i] for i in stacked.argmin(0)]
    else:
        frame["driver"] = [None] * index.size
    for name in channels:
        frame[f"p_{name}"] = p_values[name]
    for name, v in channels.items():
        frame[name] = v[picked].numpy()
    frame["cluster"] = _tensor(clusters, torch.long)[picked].numpy()
    for name, column in (("max_responsibility", max_responsibility), ("degree", degree)):
        if column is not None:
            frame[name] = _tensor(column)[picked].numpy()
    if mahalanobis is not None:
        frame["mahalanobis"] = np.asarray(mahalanobis)
    if euclidean is not None:
        frame["euclidean"] = np.asarray(euclidean)
    if labels is not None:
        frame["label"] = _tensor(labels, torch.long)[picked].numpy()
    if outliers is not None:
        frame["true_outlier"] = _tensor(outliers).bool()[picked].numpy()
    return pd.DataFrame(frame)


# --------------------------------------------------------------------------- the map
def embedding_map(
    z,
    *,
    clusters,
    max_responsibility,
    scores,
    labels=None,
    threshold: float | None = None,
    node_names: Sequence | None = None,
    max_points: int = 50_000,
    include: Sequence[int] = (),
    seed: int = 0,
) -> pd.DataFrame:
    """A 2-D PCA of the embedding on a sample of nodes, for the report's map.

    With more than ``max_points`` nodes, ``max_points`` are drawn with ``seed`` (the positions in
    ``include`` always among them, up to ``max_points``); the PCA is fitted on the sample (its
    covariance, ``d x d``), signs fixed so that each axis's largest loading is positive.

    Args:
        z (Tensor): (N, d) embedding.
        clusters, max_responsibility, scores (Tensor): (N,) columns.
        labels (Tensor, optional): (N,) classes (``label`` column).
        threshold (float, optional): outlier threshold (``is_outlier`` column).
        node_names (sequence, optional): N node ids.
        max_points (int, optional): most nodes drawn (default 50,000).
        include (sequence of int, optional): positions to keep in the sample.
        seed (int, optional): the sample's seed (default 0).

    Returns:
        one row per sampled node, by position: ``index``, ``node``, ``pc1``, ``pc2``, ``cluster``,
        ``max_responsibility``, ``anomaly_score`` (and ``is_outlier``, ``label``). The explained
        variance ratios of the two axes are in ``.attrs["explained_variance_ratio"]``.
    """
    z = _tensor(z)
    n = z.shape[0]
    if n > max_points:
        keep = torch.zeros(n, dtype=torch.bool)
        extra = torch.as_tensor(np.asarray(include, dtype=np.int64)[:max_points])
        keep[extra] = True
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        order = order[~keep[order]][: max_points - int(keep.sum())]
        keep[order] = True
        index = torch.nonzero(keep).flatten()
    else:
        index = torch.arange(n)
    sample = z[index].double()
    sample = sample - sample.mean(0)
    if sample.shape[1] >= 1 and sample.shape[0] > 1:
        cov = sample.T @ sample / (sample.shape[0] - 1)
        values, vectors = torch.linalg.eigh(cov)
        values, vectors = values.flip(0)[:2].clamp_min(0), vectors.flip(1)[:, :2]
        signs = torch.where(vectors.gather(0, vectors.abs().argmax(0, keepdim=True)) < 0, -1.0, 1.0).to(vectors)
        xy = sample @ (vectors * signs)
        total = float(cov.trace())
        ratio = (values / total if total > 0 else values * 0).tolist()
    else:
        xy, ratio = torch.zeros(sample.shape[0], 2, dtype=torch.float64), [0.0, 0.0]
    if xy.shape[1] < 2:  # a one-dimensional embedding
        xy = torch.cat([xy, torch.zeros(xy.shape[0], 2 - xy.shape[1], dtype=xy.dtype)], 1)
        ratio = list(ratio) + [0.0] * (2 - len(ratio))
    idx = index.numpy()
    score = _tensor(scores, torch.float64)[index].numpy()
    frame = {
        "index": idx,
        "node": _names(node_names, idx),
        "pc1": xy[:, 0].float().numpy(),
        "pc2": xy[:, 1].float().numpy(),
        "cluster": _tensor(clusters, torch.long)[index].numpy(),
        "max_responsibility": _tensor(max_responsibility, torch.float64)[index].numpy(),
        "anomaly_score": score,
    }
    if threshold is not None:
        frame["is_outlier"] = score > threshold
    if labels is not None:
        frame["label"] = _tensor(labels, torch.long)[index].numpy()
    out = pd.DataFrame(frame)
    out.attrs["explained_variance_ratio"] = [float(r) for r in ratio]
    return out


# --------------------------------------------------------------------------- the whole model
def _model_scores(model, data, use_training_results: bool | None) -> dict:
    """Embedding, responsibilities, log-density, anomaly scores and channels of ``data``'s nodes:
    the model's stored results of its training graph when they describe ``data``, else computed
    through the public API (one encoder pass)."""
    n = int(data.num_nodes)
    stored = None
    if use_training_results is not False:
        try:
            stored = model.transform()  # data=None: the training graph's own results, nothing recomputed
        except (InputError, RuntimeError):
            stored = None
        if stored is not None and stored.shape[0] != n:
            stored = None
        if stored is None and use_training_results:
            raise InputError("use_training_results=True, but the model holds no results of a graph of this size")
    if stored is not None:
        proba = model.predict_proba()
        return {
            "z": stored,
            "proba": proba,
            "log_density": model.score_samples(),
            "clusters": _tensor(model.labels_),
            "scores": model.decision_scores_,
            "channels": dict(model.channels_),
            "stored": True,
        }
    z = model.transform(data)
    log_prob = model.gmm_.log_prob_table(z).detach().cpu()
    log_density = torch.logsumexp(log_prob, 1)
    proba = torch.exp(log_prob - log_density[:, None])
    clusters = log_prob.argmax(1)
    del log_prob
    saved_labels = getattr(model, "labels_", None)
    channels = getattr(model, "channels_", None)
    same = (
        saved_labels is not None
        and channels
        and getattr(model, "decision_scores_", None) is not None
        and len(saved_labels) == n
        and float((_tensor(saved_labels) == clusters).double().mean()) >= 0.99
    )
    if same:  # the checkpoint's training graph: its scores are kept, not recounted (triangles)
        scores, channels = model.decision_scores_, dict(channels)
    else:
        table = model.prediction_table(data)
        scores = _tensor(table["anomaly_score"])
        channels = {"nll": _tensor(table["nll"])}
        channels.update({key[len("channel_") :]: _tensor(v) for key, v in table.items() if key.startswith("channel_")})
    return {
        "z": z,
        "proba": proba,
        "log_density": log_density,
        "clusters": clusters,
        "scores": _tensor(scores),
        "channels": channels,
        "stored": False,
    }


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
            raise InputError(f"node_ids not in the graph: {_join(missing, 5)}" + (" ..." if len(missing) > 5 else ""))
        return [lookup[str(v)] for v in node_ids]
    out = [int(v) for v in node_ids]
    bad = [v for v in out if not 0 <= v < n]
    if bad:
        raise InputError(f"node_ids out of range [0, {n}): {_join(bad, 5)}")
    return out


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
    """Every table of this module for a fitted :class:`~gnngmm.GNNGMM` and a graph.

    Reads only the estimator's public results: its stored training-graph results
    (``transform()``, ``predict_proba()``, ``score_samples()``, ``labels_``, ``decision_scores_``,
    ``channels_``) when they describe ``data`` (same N; ``use_training_results``), else
    ``transform(data)`` and ``gmm_.log_prob_table`` (plus ``prediction_table(data)`` for the anomaly
    channels unless the model's stored clusters agree with ``data``'s on 99% of the nodes, which
    means the checkpoint's own training graph); ``threshold_``, ``contamination`` and ``gmm_``'s
    means and covariances for the distances.

    Args:
        model (GNNGMM): a fitted (or loaded) estimator.
        data (torch_geometric.data.Data): the graph: ``edge_index`` (read as stored, self-loops
            skipped: pass the graph the model was trained on, both directions stored), the
            features (``features`` if given, else ``data.raw_x`` when present -- the raw
            features the preprocessing keeps -- else ``data.x``) and ``node_ids`` if it has them.
        labels (Tensor, optional): (N,) classes, negative = unknown: adds ``contingency``,
            ``classes`` and the ``label`` columns. Never read by anything else.
        node_ids (sequence, optional): nodes to explain besides the top outliers: node ids when
            the graph names its nodes (``data.node_ids``), else positions.
        feature_names (sequence of str, optional): F feature names (default ``data.feature_names``
            if present, else column indices).
        top (int, optional): features per cluster (default 10).
        features (Tensor, optional): (N, F) features to profile instead of the graph's.
        outliers (Tensor, optional): (N,) known outlier marks (``true_outlier`` column).
        typical (int, optional): typical nodes per cluster (default 5).
        min_support (int, optional): see :func:`feature_profiles` (default 5).
        min_share (float, optional): see :func:`class_agreement` (default 0.2).
        max_outliers (int, optional): cap on the top outliers listed (default 1000).
        max_points (int, optional): nodes on the map (default 50,000).
        use_training_results (bool, optional): ``None`` (default) uses the stored results when the
            model holds them for a graph of N nodes; ``True`` requires them; ``False`` scores
            ``data`` again.
        seed (int, optional): the map's sample (default 0).

    Returns:
        dict of DataFrames: ``clusters``, ``features``, ``typical``, ``edges``, ``anomalies``,
        ``map``, and with labels ``contingency`` and ``classes`` (see the module's docstring and
        each function's).

    Raises:
        InputError: a node id not in the graph, features or names of the wrong shape, or
            ``use_training_results=True`` without stored results.
    """
    n = int(data.num_nodes)
    k = int(model.n_clusters_)
    got = _model_scores(model, data, use_training_results)
    clusters = got["clusters"].long()
    _, max_resp, entropy = responsibility_stats(got["proba"])
    log_density = _tensor(got["log_density"], torch.float64)
    scores = _tensor(got["scores"], torch.float64)
    threshold = getattr(model, "threshold_", None)
    names = getattr(data, "node_ids", None)
    if names is None and got["stored"]:
        names = getattr(model, "node_ids_", None)
    if names is not None and len(names) != n:
        names = None
    if feature_names is None:
        feature_names = getattr(data, "feature_names", None)
    x = features if features is not None else getattr(data, "raw_x", None)
    x = x if x is not None else getattr(data, "x", None)

    counts, degree = edge_counts(data.edge_index, clusters, k)
    tables: dict[str, pd.DataFrame] = {}
    tables["features"] = (
        feature_profiles(x, clusters, k, feature_names=feature_names, top=top, min_support=min_support)
        if x is not None
        else pd.DataFrame(
            columns=[
                "cluster",
                "rank",
                "feature",
                "column",
                "kind",
                "effect",
                "score",
                "in_cluster",
                "outside",
                "support",
            ]
        )
    )
    tables["typical"] = typical_nodes(clusters, log_density, k, top=typical, node_names=names)

    size = np.bincount(clusters.numpy(), minlength=k)
    member = np.maximum(size, 1)
    c = clusters.numpy()
    weights = _tensor(model.gmm_.weights_, torch.float64).numpy()
    frame = pd.DataFrame(
        {
            "cluster": np.arange(k),
            "size": size,
            "share": size / max(1, n),
            "weight": weights,
            "mean_max_responsibility": np.bincount(c, max_resp.numpy(), minlength=k) / member,
            "mean_entropy": np.bincount(c, entropy.numpy(), minlength=k) / member,
            "mean_log_density": np.bincount(c, log_density.numpy(), minlength=k) / member,
        }
    )
    frame = pd.concat([frame, cohesion(counts)], axis=1)
    if threshold is not None:
        flagged = np.bincount(c, (scores.numpy() > threshold).astype(np.float64), minlength=k)
        frame["outliers"] = flagged.astype(np.int64)
        frame["outlier_share"] = flagged / member
    frame["mean_anomaly_score"] = np.bincount(c, scores.numpy(), minlength=k) / member
    feats = tables["features"]
    frame["top_features"] = [_join(feats.loc[feats["cluster"] == i, "feature"], 5) for i in range(k)]
    typ = tables["typical"]
    frame["typical_nodes"] = [_join(typ.loc[typ["cluster"] == i, "node"], 5) for i in range(k)]
    if labels is not None:
        contingency, classes = class_agreement(clusters, labels, k, min_share=min_share)
        tables["contingency"], tables["classes"] = contingency, classes
        table = contingency.to_numpy()
        class_ids = list(contingency.columns)
        labelled = table.sum(1)
        share = table / np.maximum(table.sum(0), 1)[None, :]
        frame["majority_class"] = [class_ids[int(r.argmax())] if r.sum() else None for r in table]
        frame["purity"] = table.max(1, initial=0) / np.maximum(labelled, 1)
        frame["classes_held"] = [[class_ids[j] for j in np.flatnonzero(share[i] >= min_share)] for i in range(k)]
        frame["merges"] = [len(h) >= 2 for h in frame["classes_held"]]
    tables["clusters"] = frame
    tables["edges"] = pd.DataFrame(counts, index=pd.RangeIndex(k, name="cluster"), columns=list(range(k)))

    requested = _positions(node_ids, names, n)
    top_nodes = select_outliers(scores, float(model.contamination), max_outliers)
    chosen = list(top_nodes) + [i for i in dict.fromkeys(requested) if i not in set(top_nodes.tolist())]
    picked = torch.as_tensor(chosen, dtype=torch.long)
    z = _tensor(got["z"])
    gmm = model.gmm_
    maha, eucl = component_distances(z[picked], clusters[picked], gmm.means_, gmm.covariances_, gmm.covariance_type)
    tables["anomalies"] = anomaly_reasons(
        scores,
        got["channels"],
        chosen,
        clusters=clusters,
        max_responsibility=max_resp,
        degree=torch.as_tensor(degree),
        mahalanobis=maha,
        euclidean=eucl,
        threshold=threshold,
        requested=requested,
        node_names=names,
        labels=labels,
        outliers=outliers,
    )
    tables["map"] = embedding_map(
        z,
        clusters=clusters,
        max_responsibility=max_resp,
        scores=scores,
        labels=labels,
        threshold=threshold,
        node_names=names,
        max_points=max_points,
        include=chosen,
        seed=seed,
    )
    order = ["clusters", "features", "typical", "edges", "contingency", "classes", "anomalies", "map"]
    return {key: tables[key] for key in order if key in tables}
