"""Outlier injection as PyGOD documents it (``gen_structural_outlier``, ``gen_contextual_outlier``),
seeded, for benchmarking anomaly scores on any graph.

* structural: ``structural_cliques`` cliques of ``clique_size`` random nodes, fully connected;
* contextual: ``contextual`` random nodes whose features are replaced by those of the farthest
  (Euclidean) of ``candidates`` random nodes.

Marks ``data.outlier`` (bool); nodes drawn by both count once.
"""

from __future__ import annotations

import torch
from torch_geometric.data import Data
from torch_geometric.utils import coalesce

from gnngmm.errors import InputError


def inject_outliers(
    data: Data,
    structural_cliques: int = 0,
    clique_size: int = 15,
    contextual: int = 0,
    candidates: int = 50,
    seed: int = 0,
) -> Data:
    n = data.num_nodes
    if structural_cliques * clique_size > n or contextual > n or candidates > n:
        raise InputError(
            f"cannot inject {structural_cliques} cliques of {clique_size} and {contextual} contextual "
            f"outliers (candidates={candidates}) into a graph of {n} nodes"
        )
    g = torch.Generator().manual_seed(seed)
    data = data.clone()
    outlier = getattr(data, "outlier", None)
    outlier = outlier.clone() if outlier is not None else torch.zeros(n, dtype=torch.bool)
    if structural_cliques > 0 and clique_size > 1:
        members = torch.randperm(n, generator=g)[: structural_cliques * clique_size].view(
            structural_cliques, clique_size
        )
        edges = []
        for clique in members:
            pairs = torch.combinations(clique, r=2).T
            edges += [pairs, pairs.flip(0)]
        data.edge_index = coalesce(torch.cat([data.edge_index, *edges], dim=1), num_nodes=n)
        outlier[members.flatten()] = True
    if contextual > 0:
        x = data.x.clone()
        for node in torch.randperm(n, generator=g)[:contextual].tolist():
            pool = torch.randperm(n, generator=g)[:candidates]
            far = pool[torch.cdist(data.x[node : node + 1], data.x[pool]).argmax()]
            x[node] = data.x[far]
            outlier[node] = True
        data.x = x
    data.outlier = outlier
    return data
