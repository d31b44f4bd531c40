"""Mini-batches in plain PyTorch: which nodes each process takes (``ShardSampler``), sampled
neighbourhoods (``data.loader=neighbor`` without pyg-lib or torch-sparse) and induced subgraphs of
random node sets (``data.loader=random_nodes``).

PyG's ``NeighborLoader`` needs one of those compiled extensions (neither is a PyPI wheel). This
sampler builds the same kind of batch -- the seed nodes first (``batch_size`` of them), then up to
``num_neighbors[h]`` neighbours per node drawn uniformly without replacement at hop ``h``, and only
the sampled edges, pointing from neighbour to target -- with vectorised tensor operations.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.utils.data import Sampler
from torch_geometric.data import Data


class ShardSampler(Sampler):
    """Node ids 0..n-1 in a new order every epoch, this process's share only.

    The order is drawn from ``seed`` and the epoch alone (Lightning calls ``set_epoch``), so every
    DDP rank draws the same one and keeps every ``world_size``-th id from position ``rank``: the
    ranks divide each epoch's nodes without overlap, and a resumed run draws the same orders as an
    uninterrupted one.
    """

    def __init__(self, n: int, rank: int = 0, world_size: int = 1, seed: int = 0, shuffle: bool = True):
        self.n, self.rank, self.world_size = int(n), int(rank), max(1, int(world_size))
        self.seed, self.shuffle, self.epoch = int(seed), shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        if self.shuffle:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch))
        else:
            order = torch.arange(self.n)
        return iter(order[self.rank :: self.world_size].tolist())

    def __len__(self) -> int:
        return max(0, math.ceil((self.n - self.rank) / self.world_size))


class FullDegree:
    """``transform`` for PyG's ``NeighborLoader``: adds each batch node's in-degree in the whole
    graph (``full_degree``), as :class:`NeighborSampler` does, for the views' drop rate."""

    def __init__(self, data: Data):
        self.degree = torch.bincount(data.edge_index[1], minlength=data.num_nodes)

    def __call__(self, batch: Data) -> Data:
        batch.full_degree = self.degree[batch.n_id]
        return batch


class InducedSubgraph:
    """``collate_fn``: a list of node ids -> the subgraph they induce (every node a seed)."""

    def __init__(self, data: Data):
        self.data = data

    def __call__(self, ids) -> Data:
        ids = torch.as_tensor(ids, dtype=torch.long)
        batch = self.data.subgraph(ids)
        batch.n_id = ids
        return batch


class NeighborSampler:
    """``collate_fn`` for a ``DataLoader`` over node ids: a list of seed ids -> a sampled ``Data``."""

    def __init__(self, data: Data, num_neighbors: list[int], undirected: bool = False):
        n = data.num_nodes
        src, dst = data.edge_index
        self.rowptr = torch.zeros(n + 1, dtype=torch.long)
        if undirected and (src.numel() < 2 or bool((src[1:] >= src[:-1]).all())):
            # symmetric and sorted by source (the data module's edges): a node's in-neighbours are
            # its out-neighbours, already grouped -- a view, no sort and no copy of 10^8 edges
            self.col = dst
            self.rowptr[1:] = torch.bincount(src, minlength=n).cumsum(0)
        else:
            order = torch.argsort(dst, stable=True)
            self.col = src[order]  # in-neighbours of each node, grouped by target
            self.rowptr[1:] = torch.bincount(dst, minlength=n).cumsum(0)
        self.num_neighbors = [int(k) for k in num_neighbors]
        self.data, self.num_nodes = data, n

    def _sample(self, targets: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """(neighbour, target) pairs: up to ``k`` per target (all of them when ``k < 0``)."""
        start, deg = self.rowptr[targets], self.rowptr[targets + 1] - self.rowptr[targets]
        owner = torch.repeat_interleave(torch.arange(len(targets)), deg)  # candidates, grouped by target
        first = (deg.cumsum(0) - deg)[owner]  # index of the owner's first candidate
        position = start[owner] + torch.arange(len(owner)) - first
        if k >= 0:  # a random key per candidate; keep the k smallest keys of each target
            ranked = torch.argsort(owner.to(torch.float64) + torch.rand(len(owner), dtype=torch.float64))
            rank = torch.empty_like(ranked)
            rank[ranked] = torch.arange(len(ranked)) - first[ranked]
            owner, position = owner[rank < k], position[rank < k]
        return self.col[position], targets[owner]

    def __call__(self, ids) -> Data:
        seeds = torch.as_tensor(ids, dtype=torch.long)
        local = torch.full((self.num_nodes,), -1, dtype=torch.long)
        local[seeds] = torch.arange(len(seeds))
        nodes, frontier, edges = [seeds], seeds, []
        for k in self.num_neighbors:
            neighbour, target = self._sample(frontier, k)
            new = torch.unique(neighbour[local[neighbour] < 0])
            local[new] = torch.arange(len(new)) + sum(len(part) for part in nodes)
            nodes.append(new)
            edges.append(torch.stack([local[neighbour], local[target]]))
            frontier = new
            if not len(frontier):
                break
        n_id = torch.cat(nodes)
        batch = Data(
            x=self.data.x[n_id],
            edge_index=torch.cat(edges, dim=1) if edges else torch.zeros(2, 0, dtype=torch.long),
            num_nodes=len(n_id),
            n_id=n_id,
            batch_size=len(seeds),
            full_degree=self.rowptr[n_id + 1] - self.rowptr[n_id],  # in the graph, not the sample
        )
        if getattr(self.data, "y", None) is not None:
            batch.y = self.data.y[n_id]
        return batch
