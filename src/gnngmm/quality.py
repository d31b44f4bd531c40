"""Label-free quality of a node partition, comparable across runs of the same graph.

``modularity``: the share of edges inside clusters minus its expectation under random rewiring
with the same degrees (Newman 2006). It is computed on the input graph, which no training setting
changes, so it compares trials with different embedding dimensions, loss weights or learning rates;
the mixture's BIC and log-likelihood do not (they grow with the dimension, and ``gmm.loss_weight``
lowers the NLL directly). The hyperparameter search (``hparams_search=optuna``) maximises it.

``silhouette``: how distinct the clusters are in the embedding itself (Rousseeuw 1987), on a fixed
sample of nodes. It sees a decline that modularity does not: clusters that blur while their
agreement with the graph still improves.
"""

from __future__ import annotations

import torch
from torch import Tensor


def modularity(edge_index: Tensor, labels: Tensor, num_nodes: int | None = None, chunk: int = 1 << 22) -> float:
    """Newman's modularity of ``labels`` (N,) on an undirected graph given both edge directions.
    Edges are read in chunks of ``chunk``: it runs at every refit, and per-edge label copies of a
    10^8-edge graph would hold gigabytes."""
    labels = torch.as_tensor(labels).long().cpu()
    edge_index = edge_index.cpu()
    n = int(num_nodes if num_nodes is not None else labels.numel())
    if edge_index.shape[1] == 0:
        return 0.0
    k = int(labels.max()) + 1
    two_m = float(edge_index.shape[1])  # every undirected edge counted twice
    inside = torch.zeros(k, dtype=torch.float64)
    degree = torch.zeros(n, dtype=torch.float64)
    for start in range(0, edge_index.shape[1], chunk):
        src, dst = edge_index[0, start : start + chunk], edge_index[1, start : start + chunk]
        a = labels[src]
        inside += torch.bincount(a[a == labels[dst]], minlength=k).double()
        degree += torch.bincount(src, minlength=n).double()
    volume = torch.zeros(k, dtype=torch.float64).index_add_(0, labels, degree)
    return float((inside / two_m - (volume / two_m) ** 2).sum())


def silhouette(z: Tensor, labels: Tensor, sample: int = 2000, seed: int = 0) -> float:
    """Mean cosine silhouette of ``labels`` (N,) on the rows of ``z`` (N, d), over ``sample`` nodes
    drawn with ``seed`` (the same nodes at every call on the same N, so that epochs compare).
    A node alone in its cluster (within the sample) scores 0, as in scikit-learn; one cluster: 0."""
    n = z.shape[0]
    idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:sample] if n > sample else torch.arange(n)
    x = torch.nn.functional.normalize(z[idx.to(z.device)].double().cpu(), dim=1)
    lab = torch.as_tensor(labels)[idx].long().cpu()
    _, lab = torch.unique(lab, return_inverse=True)
    k = int(lab.max()) + 1 if lab.numel() else 0
    if k < 2:
        return 0.0
    onehot = torch.nn.functional.one_hot(lab, k).double()  # (m, k)
    sums = (1.0 - x @ x.T).clamp_min_(0.0) @ onehot  # (m, k): summed distance to each cluster
    counts = onehot.sum(0)
    rows = torch.arange(lab.numel())
    own = counts[lab]
    a = sums[rows, lab] / (own - 1).clamp_min(1)
    others = sums / counts
    others[rows, lab] = float("inf")
    b = others.min(1).values
    s = ((b - a) / torch.maximum(a, b).clamp_min(1e-12)).masked_fill(own <= 1, 0.0)
    return float(s.mean())
