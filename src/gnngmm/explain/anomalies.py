"""Why a node is flagged as an outlier: each anomaly channel's tail p-value and the channel that
drove the score, the distance to its component, and which nodes are the top outliers.

The *driver* of a node is the informative (non-constant) channel of smallest empirical upper-tail
p-value (the share of nodes scoring at least as high, :func:`gnngmm.anomaly.tail_p_values`, the
p-values the combined score sums), i.e. the largest term ``-log p`` of Fisher's sum (ties: the
first channel in order).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from gnngmm.anomaly import tail_p_values
from gnngmm.errors import InputError
from gnngmm.explain.common import MAX_OUTLIERS, as_tensor, row_names


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
    z = as_tensor(z, torch.float64)
    components = as_tensor(components, torch.long)
    means = as_tensor(means, torch.float64)
    cov = as_tensor(covariances, torch.float64)
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
    scores = as_tensor(scores, torch.float64)
    count = min(cap, max(1, round(contamination * scores.numel())), scores.numel())
    order = np.argsort(-scores.numpy(), kind="stable")
    return order[:count]


def _channel_columns(channels: dict, index: np.ndarray) -> dict:
    """The rows ``index``'s ``driver``, then ``p_<channel>`` for every channel, then every
    channel's raw value (columns named by the channel)."""
    picked = torch.as_tensor(index)
    channels = {name: as_tensor(v, torch.float64) for name, v in channels.items()}
    informative = informative_channels(channels)
    p_values = {name: tail_p_values(v)[picked].numpy() for name, v in channels.items()}
    columns = {}
    if informative:
        stacked = np.stack([p_values[name] for name in informative])
        columns["driver"] = [informative[i] for i in stacked.argmin(0)]
    else:
        columns["driver"] = [None] * index.size
    for name in channels:
        columns[f"p_{name}"] = p_values[name]
    for name, v in channels.items():
        columns[name] = v[picked].numpy()
    return columns


def _node_columns(index: np.ndarray, clusters, columns: dict, labels, outliers) -> dict:
    """The rows ``index``'s ``cluster``, then the given ``columns`` (``max_responsibility`` and
    ``degree``: (N,) read at ``index``; ``mahalanobis`` and ``euclidean``: already one value per
    row), then ``label`` and ``true_outlier`` when given."""
    picked = torch.as_tensor(index)
    out = {"cluster": as_tensor(clusters, torch.long)[picked].numpy()}
    for name, column in columns.items():
        if column is not None:
            out[name] = (
                np.asarray(column) if name in ("mahalanobis", "euclidean") else as_tensor(column)[picked].numpy()
            )
    if labels is not None:
        out["label"] = as_tensor(labels, torch.long)[picked].numpy()
    if outliers is not None:
        out["true_outlier"] = as_tensor(outliers).bool()[picked].numpy()
    return out


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
    """Why each of ``nodes`` scored as it did: every channel's tail p-value, computed on all N
    nodes, and the driver (this module's docstring).

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
    all_scores = as_tensor(scores, torch.float64).numpy()
    index = np.asarray(nodes, dtype=np.int64)
    rank = all_scores.size - np.searchsorted(np.sort(all_scores), all_scores[index], side="right") + 1
    frame = {"rank": rank, "node": row_names(node_names, index), "index": index, "anomaly_score": all_scores[index]}
    if threshold is not None:
        frame["is_outlier"] = all_scores[index] > threshold
    wanted = {int(i) for i in requested}
    frame["requested"] = np.array([int(i) in wanted for i in index], dtype=bool)
    frame.update(_channel_columns(channels, index))
    copied = {"max_responsibility": max_responsibility, "degree": degree, "mahalanobis": mahalanobis}
    copied["euclidean"] = euclidean
    frame.update(_node_columns(index, clusters, copied, labels, outliers))
    return pd.DataFrame(frame)
