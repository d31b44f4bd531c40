"""Planted-partition attributed graphs: known clusters, any size (tests, the scale benchmark).

Two generators:

* :func:`planted_partition`: uniform degrees, equal-ish blocks (the tests' tiny graphs);
* :func:`planted_graph`: a degree-corrected stochastic block model that looks like a real graph
  -- log-normal (heavy-tailed) degrees, Zipf-like block sizes, a per-node homophily drawn from a
  Beta distribution, Gaussian features with a weak class signal -- generated with an exact
  number of directed edges and little memory: the edge list is built once, symmetric, sorted and
  free of duplicates and self-loops (``data.edge_index`` is what PyG's ``coalesce`` would give),
  so nothing downstream has to sort or symmetrise 10^8 edges again.

``PRESETS`` holds the sizes of the graphs the mission names (PyG Reddit, ogbn-products,
ogbn-arxiv; directed edge counts as PyG stores them).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.utils import coalesce, remove_self_loops, to_undirected

# Sizes of the real graphs (edges: directed count, i.e. each undirected edge twice, as PyG
# stores them) and the planted model's knobs for each (chosen on the planted labels so that
# k-means on the raw features stays at NMI <= 0.3, as on the real features).
PRESETS: dict[str, dict] = {
    "reddit": dict(
        num_nodes=232_965,
        num_edges=114_615_892,
        num_features=602,
        num_blocks=41,
        homophily=0.4,
        feature_signal=0.1,
        degree_sigma=1.3,
        block_size_exponent=1.0,
    ),
    "products": dict(
        num_nodes=2_449_029,
        num_edges=123_718_280,
        num_features=100,
        num_blocks=47,
        homophily=0.6,
        feature_signal=0.22,
        degree_sigma=1.3,
        block_size_exponent=1.2,
    ),
    "arxiv": dict(
        num_nodes=169_343,
        num_edges=2_332_486,
        num_features=128,
        num_blocks=40,
        homophily=0.55,
        feature_signal=0.2,
        degree_sigma=1.0,
        block_size_exponent=1.0,
    ),
}


def preset(name: str, scale: float = 1.0) -> dict:
    """``PRESETS[name]`` with nodes and edges multiplied by ``scale`` (the mean degree is kept;
    the edge count stays even, as a symmetric graph's is)."""
    from gnngmm.errors import InputError

    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    if not 0 < scale <= 1024:
        raise InputError(f"scale must be in (0, 1024], got {scale}")
    p = dict(PRESETS[name])
    p["num_nodes"] = max(p["num_blocks"] * 4, round(p["num_nodes"] * scale))
    p["num_edges"] = 2 * max(1, round(p["num_edges"] * scale / 2))
    return p


DCSBM_ONLY = (
    "degree_sigma",
    "block_size_exponent",
    "homophily_concentration",
    "num_groups",
    "group_affinity",
    "group_feature_share",
)


def make_planted(generator: str = "uniform", seed: int = 0, **params) -> Data:
    """``data=planted``'s entry: ``generator=uniform`` (:func:`planted_partition`) or ``dcsbm``
    (:func:`planted_graph`); ``None`` values take the generator's default."""
    from gnngmm.errors import InputError

    params = {k: v for k, v in params.items() if v is not None}
    if generator == "dcsbm":
        return planted_graph(seed=seed, **params)
    if generator != "uniform":
        raise InputError(f"data.planted.generator={generator!r} is not one of uniform, dcsbm")
    extra = sorted(set(params) & set(DCSBM_ONLY))
    if extra:
        raise InputError(f"data.planted.{extra[0]} needs data.planted.generator=dcsbm")
    return planted_partition(seed=seed, **params)


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


# --------------------------------------------------------------------------- realistic planted graphs
def planted_labels(num_nodes: int, num_blocks: int, block_size_exponent: float, seed: int) -> Tensor:
    """Block of every node: sizes proportional to ``rank ** -block_size_exponent`` (0: equal),
    each block at least 2 nodes, blocks in random order over the node ids."""
    g = torch.Generator().manual_seed(seed)
    weights = torch.arange(1, num_blocks + 1, dtype=torch.float64).pow(-block_size_exponent)
    weights = weights[torch.randperm(num_blocks, generator=g)]
    y = torch.multinomial(weights / weights.sum(), num_nodes, replacement=True, generator=g)
    y[: 2 * num_blocks] = torch.arange(num_blocks).repeat(2)  # every block is present
    return y[torch.randperm(num_nodes, generator=g)]


def block_groups(num_blocks: int, num_groups: int | None = None) -> Tensor:
    """Group of every block (``block % num_groups``; default ``round(sqrt(num_blocks))`` groups):
    related blocks, like neighbouring topics, share edges and part of their feature centre."""
    g = num_groups if num_groups is not None else max(1, round(num_blocks**0.5))
    return torch.arange(num_blocks) % max(1, min(g, num_blocks))


def planted_features(
    y: Tensor,
    num_blocks: int,
    num_features: int,
    feature_signal: float,
    seed: int,
    *,
    num_groups: int | None = None,
    group_feature_share: float = 0.5,
    chunk: int = 1 << 16,
) -> Tensor:
    """``feature_signal * center[block] + N(0, I)``, float32, written chunk by chunk (no
    temporary of the full size). A block's centre is ``sqrt(s) * g[group] + sqrt(1 - s) * u[block]``
    (``s = group_feature_share``, ``g`` and ``u`` standard normal): blocks of one group look alike.
    Depends only on ``y`` and ``seed``: a benchmark can regenerate the raw features without the
    edges."""
    g = torch.Generator().manual_seed(seed + 7919)
    groups = block_groups(num_blocks, num_groups)
    shared = torch.randn(int(groups.max()) + 1, num_features, generator=g)
    own = torch.randn(num_blocks, num_features, generator=g)
    centers = feature_signal * (group_feature_share**0.5 * shared[groups] + (1 - group_feature_share) ** 0.5 * own)
    x = torch.empty(y.shape[0], num_features)
    for start in range(0, y.shape[0], chunk):
        part = x[start : start + chunk]
        torch.randn(part.shape, generator=g, out=part)
        part += centers[y[start : start + chunk]]
    return x


def _degree_weights(num_nodes: int, mean_degree: float, sigma: float, g: torch.Generator) -> Tensor:
    """Log-normal degree propensities, capped so that no node expects more than 5% of the nodes
    (or fewer than all of them when the graph is tiny) as neighbours."""
    theta = torch.exp(sigma * torch.randn(num_nodes, generator=g, dtype=torch.float64))
    theta /= theta.mean()
    cap = max(1.0, 0.05 * num_nodes / max(mean_degree, 1e-9))
    for _ in range(5):  # capping lowers the mean; renormalise and cap again
        theta.clamp_(max=cap)
        theta /= theta.mean()
    return theta


def _draw(cumulative: Tensor, lo: Tensor, hi: Tensor, g: torch.Generator) -> Tensor:
    """Index ``i`` with probability proportional to ``cumulative[i+1] - cumulative[i]`` among
    ``[lo, hi)`` (per row): inverse-CDF sampling by ``searchsorted``."""
    u = torch.rand(lo.shape[0], generator=g, dtype=torch.float64)
    target = cumulative[lo] + u * (cumulative[hi] - cumulative[lo])
    idx = torch.searchsorted(cumulative, target, right=True) - 1
    return torch.minimum(torch.maximum(idx, lo), hi - 1)


class _Sampler:
    """Draws candidate pairs: nodes sorted by (group, block), one cumulative sum of the degree
    propensities over that order, so a block's or a group's nodes are one contiguous range."""

    def __init__(self, y, groups, theta, h, group_affinity, g):
        n = y.shape[0]
        self.n, self.y, self.h, self.affinity, self.g = n, y, h, group_affinity, g
        self.node_group = groups[y]
        self.order = torch.argsort(self.node_group * (int(y.max()) + 1) + y, stable=True)
        self.cum = torch.zeros(n + 1, dtype=torch.float64)
        torch.cumsum(theta[self.order], 0, out=self.cum[1:])
        self.block_start, self.block_end = self._ranges(y[self.order])
        self.group_start, self.group_end = self._ranges(self.node_group[self.order])

    @staticmethod
    def _ranges(ids):
        """``[start, end)`` of every id's contiguous run in ``ids``."""
        positions = torch.arange(ids.shape[0])
        size = int(ids.max()) + 1
        start = torch.full((size,), ids.shape[0], dtype=torch.long).scatter_reduce(0, ids, positions, "amin")
        end = torch.zeros(size, dtype=torch.long).scatter_reduce(0, ids, positions + 1, "amax")
        return start, end

    def pairs(self, count: int) -> Tensor:
        """``count`` random undirected pairs as keys ``min * n + max`` (self-loops dropped)."""
        g, n = self.g, self.n
        zeros = torch.zeros(count, dtype=torch.long)
        full = torch.full((count,), n, dtype=torch.long)
        u = self.order[_draw(self.cum, zeros, full, g)]  # one end by degree propensity
        v = self.order[_draw(self.cum, zeros, full, g)]  # the other anywhere, or:
        r = torch.rand(count, generator=g, dtype=torch.float64)
        hu = self.h[u]
        same = r < hu  # with u's own homophily, inside u's block
        b = self.y[u[same]]
        v[same] = self.order[_draw(self.cum, self.block_start[b], self.block_end[b], g)]
        related = (~same) & (r < hu + (1 - hu) * self.affinity)  # else, with the affinity, in u's group
        c = self.node_group[u[related]]
        v[related] = self.order[_draw(self.cum, self.group_start[c], self.group_end[c], g)]
        keep = u != v
        u, v = u[keep], v[keep]
        return torch.minimum(u, v) * n + torch.maximum(u, v)


def planted_graph(
    num_nodes: int,
    num_blocks: int,
    num_features: int,
    *,
    num_edges: int | None = None,
    avg_degree: float = 10.0,
    homophily: float = 0.6,
    homophily_concentration: float = 2.0,
    degree_sigma: float = 1.2,
    block_size_exponent: float = 1.0,
    num_groups: int | None = None,
    group_affinity: float = 0.5,
    group_feature_share: float = 0.5,
    feature_signal: float = 0.2,
    seed: int = 0,
    chunk: int = 1 << 23,
) -> Data:
    """A degree-corrected planted partition shaped like a real graph.

    * Blocks (``y``): ``num_blocks`` of Zipf-like sizes (:func:`planted_labels`), in
      ``num_groups`` groups of related blocks (:func:`block_groups`).
    * Degrees: every node has a log-normal propensity ``theta`` (``degree_sigma``; 1.2 gives a
      median degree about half the mean and hubs two orders of magnitude above it). An edge picks
      its first end ``u`` with probability proportional to ``theta``; with probability ``h_u``
      (the node's own homophily, ``Beta`` with mean ``homophily`` and concentration
      ``homophily_concentration``: many nodes are far more or far less homophilous than the
      mean) the other end is drawn by ``theta`` inside ``u``'s block, otherwise, with probability
      ``group_affinity``, inside ``u``'s group, else anywhere.
    * Edges: exactly ``num_edges`` directed edges (``num_edges / 2`` undirected pairs, both
      directions stored; default ``num_nodes * avg_degree``), no duplicates, no self-loops,
      sorted by (row, col): duplicates drawn are merged and the shortfall drawn again, then a
      random surplus is dropped. Memory: about 40 bytes per undirected edge at the peak; the
      result holds 16 bytes per directed edge (int64 ``edge_index``).
    * Features: ``feature_signal * center[block] + N(0, I)``, centres of one group sharing
      ``group_feature_share`` of their variance (:func:`planted_features`).
    """
    from gnngmm.errors import InputError

    n = int(num_nodes)
    target = int(num_edges if num_edges is not None else round(num_nodes * avg_degree))
    pairs = target // 2
    if target % 2:
        raise InputError(f"num_edges counts directed edges of an undirected graph: must be even, got {target}")
    if pairs > n * (n - 1) // 4:
        raise InputError(f"{target} directed edges are too many for {n} nodes (at most half of all pairs)")
    g = torch.Generator().manual_seed(seed)
    y = planted_labels(n, num_blocks, block_size_exponent, seed)
    theta = _degree_weights(n, target / n, degree_sigma, g)
    a = homophily * homophily_concentration
    b = (1 - homophily) * homophily_concentration
    h = torch.from_numpy(np.random.default_rng(seed).beta(max(a, 1e-3), max(b, 1e-3), n))
    sampler = _Sampler(y, block_groups(num_blocks, num_groups), theta, h, group_affinity, g)
    del theta

    edge_index = draw_edges(sampler, pairs, n, g, chunk)
    x = planted_features(
        y,
        num_blocks,
        num_features,
        feature_signal,
        seed,
        num_groups=num_groups,
        group_feature_share=group_feature_share,
    )
    return Data(x=x, edge_index=edge_index, y=y, num_nodes=n)


def draw_edges(sampler: _Sampler, pairs: int, n: int, g: torch.Generator, chunk: int = 1 << 23) -> Tensor:
    """Exactly ``pairs`` distinct undirected pairs from ``sampler`` as a symmetric ``edge_index``
    sorted by (row, col): duplicates drawn are merged and the shortfall drawn again, then a random
    surplus is dropped (``g`` draws it)."""
    from gnngmm.errors import InputError

    keys = torch.empty(0, dtype=torch.long)
    for _ in range(50):
        missing = pairs - keys.numel()
        if missing <= 0:
            break
        draw = int(missing * 1.05) + 1024
        parts = [keys]
        for start in range(0, draw, chunk):
            parts.append(sampler.pairs(min(chunk, draw - start)))
        merged = torch.cat(parts).numpy()
        del parts
        keys = torch.from_numpy(_sorted_unique(merged))  # sorted, duplicates merged
        del merged
    else:
        raise InputError(f"could not draw {pairs} distinct pairs among {n} nodes; lower num_edges")
    if keys.numel() > pairs:  # drop a random surplus
        drop = torch.randperm(keys.numel(), generator=g)[: keys.numel() - pairs]
        keep = torch.ones(keys.numel(), dtype=torch.bool)
        keep[drop] = False
        keys = keys[keep]
        del drop, keep
    return _symmetric_from_keys(keys, n)


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique`` by one in-place sort (numpy 2's default hashes, ~10x slower here)."""
    values.sort()
    keep = np.empty(values.shape[0], dtype=bool)
    keep[:1] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]


def _symmetric_from_keys(keys: Tensor, n: int, chunk: int = 1 << 24) -> Tensor:
    """Undirected pairs ``min * n + max`` -> both directions as an ``edge_index`` sorted by
    (row, col), built with one in-place sort (numpy's, no index array)."""
    m = keys.numel()
    both = torch.empty(2 * m, dtype=torch.long)
    both[:m] = keys
    lo, hi = keys // n, keys % n
    torch.add(hi * n, lo, out=both[m:])
    del lo, hi
    both.numpy().sort()
    edge_index = torch.empty(2, 2 * m, dtype=torch.long)
    for start in range(0, 2 * m, chunk):
        part = both[start : start + chunk]
        torch.div(part, n, rounding_mode="floor", out=edge_index[0, start : start + chunk])
        torch.remainder(part, n, out=edge_index[1, start : start + chunk])
    return edge_index
