"""What every graph goes through before fitting, from the CLI and from Python alike.

``split_labels`` sets ``y`` and ``outlier`` aside (only :func:`gnngmm.metrics.evaluate` reads
them); ``preprocess`` makes edges undirected, drops stored self-loops, keeps what the anomaly
channels need from the raw features, normalises the features and optionally pre-propagates them.
Neither modifies the ``Data`` it is given.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.utils import remove_self_loops, to_undirected

from gnngmm.data.datasets import validate_graph
from gnngmm.data.transforms import normalize_features
from gnngmm.errors import InputError

log = logging.getLogger(__name__)

PRECOMPUTE = ("none", "sign", "ssgc")


@dataclass
class GraphLabels:
    """Labels kept apart from the graph that is fitted: cluster classes ``y`` and the boolean
    ``outlier`` marks, each optional. Only reports read them."""

    y: Tensor | None = None
    outlier: Tensor | None = None

    def __bool__(self) -> bool:
        return self.y is not None or self.outlier is not None


def split_labels(data: Data) -> tuple[Data, GraphLabels]:
    """A new ``Data`` with the graph alone (``x``, ``edge_index``), and its labels. Anything else
    the caller's object carries (masks, ``node_ids`` from files) stays with the caller."""
    graph = Data(x=data.x, edge_index=data.edge_index, num_nodes=data.num_nodes)
    return graph, GraphLabels(getattr(data, "y", None), getattr(data, "outlier", None))


def is_sorted_undirected(edge_index: Tensor, num_nodes: int, chunk: int = 1 << 24) -> bool:
    """True when ``edge_index`` is sorted by (row, col) without duplicates and holds every edge in
    both directions (what PyG's ``to_undirected`` returns): then it is kept as it is, instead of
    being symmetrised and sorted again (at 10^8 edges that costs minutes and several GB). Exact:
    the sorted reversed keys must equal the keys. Two int64 keys per edge at the peak."""
    e = edge_index.shape[1]
    if e == 0:
        return True
    row, col = edge_index[0].cpu(), edge_index[1].cpu()
    keys = torch.empty(e, dtype=torch.long)
    reverse = torch.empty(e, dtype=torch.long)
    for start in range(0, e, chunk):
        r, c = row[start : start + chunk], col[start : start + chunk]
        torch.add(r * num_nodes, c, out=keys[start : start + chunk])
        torch.add(c * num_nodes, r, out=reverse[start : start + chunk])
    if e > 1 and not bool((keys[1:] > keys[:-1]).all()):
        return False
    reverse.numpy().sort()
    return torch.equal(keys, reverse)


def clean_edges(data: Data, name: str = "graph") -> Data:
    """Undirected edges without stored self-loops (BOND reddit has one on every node: they would
    count as triangles and as neighbours of themselves; encoders that want them add their own).
    Edges already sorted and symmetric are kept as they are."""
    out = copy.copy(data)  # a new Data sharing the tensors: the caller's object is left as it was
    if out.edge_index.numel():
        if not is_sorted_undirected(out.edge_index, out.num_nodes):
            out.edge_index = to_undirected(out.edge_index, num_nodes=out.num_nodes)
        loops = int((out.edge_index[0] == out.edge_index[1]).sum())
        if loops:
            out.edge_index, _ = remove_self_loops(out.edge_index)
            log.info("%s: removed %d stored self-loop(s)", name, loops)
    return out


def precompute_features(x: Tensor, edge_index: Tensor, hops: int, mode: str, norm: str = "none") -> Tensor:
    """``sign``: ``[x, Sx, ..., S^hops x]`` side by side (SIGN); ``ssgc``: their average. Sparse
    products in plain PyTorch (int32 CSR, chunked by rows): no sampler, no compiled extension,
    and no temporary beyond the matrix and two ``N x F`` hops besides the result.

    ``norm="l2"`` scales every hop of every node to unit length before it is stored (the hops
    are still propagated unnormalised): ``S^k x`` grows like ``sqrt(degree)``, so on a graph with
    heavy-tailed degrees the hubs' rows would otherwise dominate every distance and every batch
    statistic (docs/scaling.md)."""
    from gnngmm.encoders.propagation import normalized_adjacency, propagate

    if norm not in ("none", "l2"):
        raise InputError(f"data.precompute_norm={norm!r} is not one of none, l2")
    n, f = x.shape
    adj = normalized_adjacency(edge_index, n)

    def scaled(h):
        return h if norm == "none" else torch.nn.functional.normalize(h, dim=1)

    if mode == "sign":
        out = torch.empty(n, f * (hops + 1), dtype=x.dtype, device=x.device)
        out[:, :f] = scaled(x)
    else:
        out = scaled(x).clone()
    h = x
    for hop in range(1, hops + 1):
        h = propagate(adj, h)
        if mode == "sign":
            out[:, hop * f : (hop + 1) * f] = scaled(h)
        else:
            out += scaled(h)
    return out if mode == "sign" else out / (hops + 1)


def preprocess(
    data: Data,
    normalize: str | None = "row",
    *,
    clean: bool = True,
    keep_raw_features: bool = False,
    precompute: str = "none",
    precompute_hops: int = 2,
    precompute_norm: str = "none",
    name: str = "graph",
    own: bool = False,
    timings: dict | None = None,
) -> Data:
    """The graph as the model sees it. ``clean``: undirected edges, no self-loops. The raw
    features' row norms are kept (``raw_feature_norm``, a baseline anomaly score), and with
    ``keep_raw_features`` the raw features themselves (``raw_x``, for the contextual anomaly
    channel, which must see features as given). ``normalize``: ``row`` | ``standard`` | ``l2`` |
    ``none``. ``precompute``: ``none`` | ``sign`` | ``ssgc`` over ``precompute_hops`` hops.
    ``own``: the caller hands ``data`` over, so its raw features are dropped from it as soon as
    they are not needed (one feature matrix less at the peak on a big graph); otherwise ``data``
    is left as it was. ``timings`` (a dict) receives the precomputation's seconds."""
    if precompute not in PRECOMPUTE:
        raise InputError(f"data.precompute={precompute!r} is not one of {', '.join(PRECOMPUTE)}")
    graph, _ = split_labels(validate_graph(data, name))
    if clean:
        graph = clean_edges(graph, name)
    graph.raw_feature_norm = graph.x.float().norm(dim=1)
    if keep_raw_features:
        graph.raw_x = graph.x
    x = normalize_features(graph.x, normalize or "none")
    graph.x = None
    if own:
        data.x = None
    if precompute != "none" and precompute_hops > 0:
        start = time.perf_counter()
        x = precompute_features(x, graph.edge_index, precompute_hops, precompute, precompute_norm)
        if timings is not None:
            timings["precompute_seconds"] = time.perf_counter() - start
    graph.x = x
    if graph.edge_index.numel():
        isolated = int((torch.bincount(graph.edge_index[0], minlength=graph.num_nodes) == 0).sum())
    else:
        isolated = graph.num_nodes
    if isolated:
        log.info("%s: %d isolated node(s); they are embedded from their own features only", name, isolated)
    log.info(
        "%s: %d nodes, %d edges, %d features", name, graph.num_nodes, graph.edge_index.shape[1], graph.num_features
    )
    return graph
