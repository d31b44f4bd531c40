"""The report's map: a 2-D PCA of the embedding on a sample of nodes, one row per sampled node.

With more than ``max_points`` nodes, ``max_points`` are drawn with a seed (the positions asked to
be included always among them); the PCA is fitted on the sample (its covariance, ``d x d``), signs
fixed so that each axis's largest loading is positive.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from gnngmm.explain.common import as_tensor, row_names


def _sample(n: int, max_points: int, include: Sequence[int], seed: int) -> Tensor:
    """Sorted positions of at most ``max_points`` of ``n`` nodes: the first ``max_points`` of
    ``include``, then a seeded random draw of the others; every node when ``n <= max_points``."""
    if n <= max_points:
        return torch.arange(n)
    keep = torch.zeros(n, dtype=torch.bool)
    extra = torch.as_tensor(np.asarray(include, dtype=np.int64)[:max_points])
    keep[extra] = True
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    order = order[~keep[order]][: max_points - int(keep.sum())]
    keep[order] = True
    return torch.nonzero(keep).flatten()


def _pca_2d(sample: Tensor) -> tuple[Tensor, list[float]]:
    """The (n, d) rows projected on their first two principal axes, ``(xy (n, 2) float64, the two
    axes' explained variance ratios)``; zeros where there is no second axis or fewer than 2 rows."""
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
    return xy, ratio


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
    """A 2-D PCA of the embedding on a sample of nodes (this module's docstring), for the report.

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
    z = as_tensor(z)
    index = _sample(z.shape[0], max_points, include, seed)
    xy, ratio = _pca_2d(z[index].double())
    idx = index.numpy()
    score = as_tensor(scores, torch.float64)[index].numpy()
    frame = {
        "index": idx,
        "node": row_names(node_names, idx),
        "pc1": xy[:, 0].float().numpy(),
        "pc2": xy[:, 1].float().numpy(),
        "cluster": as_tensor(clusters, torch.long)[index].numpy(),
        "max_responsibility": as_tensor(max_responsibility, torch.float64)[index].numpy(),
        "anomaly_score": score,
    }
    if threshold is not None:
        frame["is_outlier"] = score > threshold
    if labels is not None:
        frame["label"] = as_tensor(labels, torch.long)[index].numpy()
    out = pd.DataFrame(frame)
    out.attrs["explained_variance_ratio"] = [float(r) for r in ratio]
    return out
