"""Planted-partition attributed graphs: known clusters, any size (tests, the scale benchmark)."""

from __future__ import annotations

import torch
from torch_geometric.data import Data
from torch_geometric.utils import coalesce, remove_self_loops, to_undirected


def planted_partition(
    num_nodes: int,
    num_blocks: int,
    num_features: int,
    *,
    num_edges: int | None = None,
    avg_degree: float = 10.0,
    homophily: float = 0.8,
    feature_signal: float = 1.0,
    binary_features: bool = False,
    seed: int = 0,
) -> Data:
    """Undirected graph whose nodes fall in ``num_blocks`` blocks (``y``).

    Each edge joins two nodes of one block with probability ``homophily``, otherwise two uniform
    nodes. Features are ``feature_signal * center[block] + N(0, 1)`` (``binary_features``: each
    block switches on its own feature subset with higher probability). ``num_edges`` counts
    undirected edges (default ``num_nodes * avg_degree / 2``); duplicates are merged.
    """
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(num_blocks, (num_nodes,), generator=g)
    y[:num_blocks] = torch.arange(num_blocks)  # every block is present
    m = int(num_edges if num_edges is not None else num_nodes * avg_degree / 2)
    src = torch.randint(num_nodes, (m,), generator=g)
    dst = torch.randint(num_nodes, (m,), generator=g)
    same = torch.rand(m, generator=g) < homophily
    if bool(same.any()):
        order = torch.argsort(y)
        counts = torch.bincount(y, minlength=num_blocks)
        starts = torch.cumsum(counts, 0) - counts
        block = y[src[same]]
        offset = (torch.rand(int(same.sum()), generator=g) * counts[block]).long()
        dst[same] = order[starts[block] + offset]
    edge_index = torch.stack([src, dst])
    edge_index, _ = remove_self_loops(edge_index)
    edge_index = coalesce(to_undirected(edge_index, num_nodes=num_nodes), num_nodes=num_nodes)
    if binary_features:
        owner = torch.randint(num_blocks, (num_features,), generator=g)
        p = torch.where(owner[None, :] == y[:, None], 0.05 + 0.25 * feature_signal, 0.05)
        x = (torch.rand(num_nodes, num_features, generator=g) < p).float()
    else:
        centers = torch.randn(num_blocks, num_features, generator=g)
        x = feature_signal * centers[y] + torch.randn(num_nodes, num_features, generator=g)
    return Data(x=x, edge_index=edge_index, y=y, num_nodes=num_nodes)
