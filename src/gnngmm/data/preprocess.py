"""What every graph goes through before fitting, from the CLI and from Python alike.

``split_labels`` sets ``y`` and ``outlier`` aside (only :func:`gnngmm.metrics.evaluate` reads
them); ``preprocess`` makes edges undirected, drops stored self-loops, keeps what the anomaly
channels need from the raw features, normalises the features and optionally pre-propagates them.
Neither modifies the ``Data`` it is given.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.utils import degree, remove_self_loops, to_undirected

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


def clean_edges(data: Data, name: str = "graph") -> Data:
    """Undirected edges without stored self-loops (BOND reddit has one on every node: they would
    count as triangles and as neighbours of themselves; encoders that want them add their own)."""
    out = copy.copy(data)  # a new Data sharing the tensors: the caller's object is left as it was
    if out.edge_index.numel():
        out.edge_index = to_undirected(out.edge_index, num_nodes=out.num_nodes)
        loops = int((out.edge_index[0] == out.edge_index[1]).sum())
        if loops:
            out.edge_index, _ = remove_self_loops(out.edge_index)
            log.info("%s: removed %d stored self-loop(s)", name, loops)
    return out


def precompute_features(x: Tensor, edge_index: Tensor, hops: int, mode: str) -> Tensor:
    """``sign``: ``[x, Sx, ..., S^hops x]`` side by side (SIGN); ``ssgc``: their average. Sparse
    products in plain PyTorch, chunked by rows: no sampler, no compiled extension."""
    from gnngmm.encoders.propagation import normalized_adjacency, propagate

    adj = normalized_adjacency(edge_index, x.shape[0])
    parts, h = [x], x
    for _ in range(hops):
        h = propagate(adj, h)
        parts.append(h)
    return torch.cat(parts, dim=1) if mode == "sign" else torch.stack(parts).mean(0)


def preprocess(
    data: Data,
    normalize: str | None = "row",
    *,
    clean: bool = True,
    keep_raw_features: bool = False,
    precompute: str = "none",
    precompute_hops: int = 2,
    name: str = "graph",
) -> Data:
    """The graph as the model sees it. ``clean``: undirected edges, no self-loops. The raw
    features' row norms are kept (``raw_feature_norm``, a baseline anomaly score), and with
    ``keep_raw_features`` the raw features themselves (``raw_x``, for the contextual anomaly
    channel, which must see features as given). ``normalize``: ``row`` | ``standard`` | ``l2`` |
    ``none``. ``precompute``: ``none`` | ``sign`` | ``ssgc`` over ``precompute_hops`` hops."""
    if precompute not in PRECOMPUTE:
        raise InputError(f"data.precompute={precompute!r} is not one of {', '.join(PRECOMPUTE)}")
    graph, _ = split_labels(validate_graph(data, name))
    if clean:
        graph = clean_edges(graph, name)
    graph.raw_feature_norm = graph.x.float().norm(dim=1)
    if keep_raw_features:
        graph.raw_x = graph.x
    graph.x = normalize_features(graph.x, normalize or "none")
    if precompute != "none" and precompute_hops > 0:
        graph.x = precompute_features(graph.x, graph.edge_index, precompute_hops, precompute)
    if graph.edge_index.numel():
        isolated = int((degree(graph.edge_index[0], graph.num_nodes) == 0).sum())
    else:
        isolated = graph.num_nodes
    if isolated:
        log.info("%s: %d isolated node(s); they are embedded from their own features only", name, isolated)
    log.info("%s: %d nodes, %d edges, %d features", name, graph.num_nodes, graph.edge_index.shape[1], graph.num_features)
    return graph
