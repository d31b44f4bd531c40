"""Node anomaly scores and the trivial baselines every table must show next to them.

* ``nll``: negative log-likelihood of the node's embedding under the GMM (unusual embeddings);
* ``nll+neighbor``: plus how far the embedding is from its neighbours' mean (z-scores summed);
* ``combined``: Fisher's combination of three channels' empirical tail p-values, so a node
  extreme in one channel, or unusual in several at once, stands out: the GMM NLL; *contextual* --
  raw features unlike the neighbourhood's mean (1 - cosine, both centred on the average node);
  and *structural* -- triangles per unit degree (dense, clique-like neighbourhoods). A channel
  constant on the graph (no triangles at all) is left out. GNN smoothing hides a node whose own
  features disagree with its neighbours, so the contextual channel reads the raw features.
* ``combined_max``: the same channels, a node scored by its most extreme one (Tippett's method,
  the max of ranks): right when each outlier is of one kind only, but every inlier's noisiest
  channel then sets its score.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import Tensor
from torch_geometric.utils import degree

from gnngmm.errors import InputError

log = logging.getLogger(__name__)

COMBINATION_RULES = {"combined": "fisher", "combined_max": "max"}  # score -> combine_channels rule
SCORES = ("nll", "nll+neighbor", "neighbor", *COMBINATION_RULES)


def _standardize(v: Tensor) -> Tensor:
    return (v - v.mean()) / v.std().clamp_min(1e-12)


def neighbor_mean(z: Tensor, edge_index: Tensor) -> tuple[Tensor, Tensor]:
    """``(mean of z over each node's in-neighbours, in-degree)`` by one sparse product on the
    int32 CSR of :func:`~gnngmm.encoders.propagation.mean_adjacency`: no (E, d) tensor of
    per-edge rows and no COO copy of the edge list (at ogbn-products' 124M edges the COO route
    held ~6 GB more at the run's peak)."""
    from gnngmm.encoders.propagation import csr_tensor, mean_adjacency, propagate

    n = z.shape[0]
    adj = mean_adjacency(edge_index.cpu(), n)
    crow = adj.crow_indices()
    count = (crow[1:] - crow[:-1]).to(z.dtype)
    adj = csr_tensor(crow, adj.col_indices(), adj.values().to(z.dtype), (n, n)).to(z.device)
    return propagate(adj, z), count.to(z.device)


def neighbor_inconsistency(
    z: Tensor, edge_index: Tensor, center: bool = False, chunk_cols: int | None = None
) -> Tensor:
    """1 - cosine(z_i, mean of z over i's neighbours), in float64; isolated nodes score 0. With
    ``center``, both are taken relative to the average node. Read ``chunk_cols`` feature columns
    at a time (the dot products and norms are sums over columns; default: ~256 MB of float64 per
    block), so wide or long features never exist as a whole float64 copy."""
    from gnngmm.encoders.propagation import csr_tensor, mean_adjacency, propagate

    n, d = z.shape
    chunk_cols = chunk_cols or max(1, (1 << 25) // max(1, n))
    adj = mean_adjacency(edge_index.cpu(), n)
    crow = adj.crow_indices()
    count = (crow[1:] - crow[:-1]).to(z.device)
    adj = csr_tensor(crow, adj.col_indices(), adj.values().double(), (n, n)).to(z.device)
    # the average node, in float64 (a float32 mean drifts at millions of rows), by column blocks too
    offset = torch.cat([z[:, c : c + chunk_cols].double().mean(0) for c in range(0, d, chunk_cols)]) if center else None
    dot = torch.zeros(n, dtype=torch.float64, device=z.device)
    own, theirs = torch.zeros_like(dot), torch.zeros_like(dot)
    for c in range(0, d, chunk_cols):
        block = z[:, c : c + chunk_cols].double()  # the caller's own columns when z is float64
        if offset is not None:
            block = block - offset[c : c + chunk_cols]
        mean = propagate(adj, block)
        dot += (block * mean).sum(1)
        own += block.square().sum(1)
        theirs += mean.square().sum(1)
        del block, mean
    eps = 1e-8  # torch.nn.functional.cosine_similarity's
    cos = dot / (own.sqrt().clamp_min(eps) * theirs.sqrt().clamp_min(eps))
    return torch.where(count > 0, 1.0 - cos, torch.zeros_like(cos))


def triangle_counts(edge_index: Tensor, num_nodes: int, block: int = 4096) -> Tensor:
    """Triangles through each node of an undirected graph, by sparse products over row blocks."""
    edge_index = torch.unique(edge_index, dim=1)  # a duplicated edge is still one edge
    ones = torch.ones(edge_index.shape[1], dtype=torch.float32, device=edge_index.device)
    adj = torch.sparse_coo_tensor(edge_index, ones, (num_nodes, num_nodes)).coalesce()
    src = adj.indices()[0]
    out = torch.zeros(num_nodes, device=edge_index.device)
    for start in range(0, num_nodes, block):
        keep = (src >= start) & (src < start + block)
        idx = adj.indices()[:, keep].clone()
        idx[0] -= start
        rows = torch.sparse_coo_tensor(idx, adj.values()[keep], (min(block, num_nodes - start), num_nodes)).coalesce()
        common = torch.sparse.mm(rows, adj).coalesce() * rows  # paths i-k-j closed by an edge i-j
        out[start : start + rows.shape[0]] = torch.sparse.sum(common, dim=1).to_dense() if common._nnz() else 0.0
    return out / 2


def _average_ranks(v: Tensor) -> Tensor:
    """0-based ascending ranks (float64), tied values sharing their average rank: a tie must not
    be broken by node order (which would smuggle the file's ordering into the score)."""
    _, inverse, counts = torch.unique(v.double(), sorted=True, return_inverse=True, return_counts=True)
    upper = counts.cumsum(0).double() - 1  # last 0-based position of each distinct value
    return (upper - (counts.double() - 1) / 2)[inverse]


def tail_p_values(v: Tensor) -> Tensor:
    """Empirical upper-tail p-value of each node's score within its own channel: the share of
    nodes scoring at least as high (ties averaged), so the top node gets 1/n and the lowest 1."""
    return (v.numel() - _average_ranks(v)) / v.numel()


def combine_channels(channels: list[Tensor], rule: str = "fisher") -> Tensor:
    """Combine the channels' tail p-values: ``fisher`` sums -log p, so channels on different
    scales become comparable and a node stands out when one channel is extreme or several are
    high together; ``max`` keeps the smallest p (Tippett; the same order as a max of ranks).
    A constant channel (e.g. triangles in a triangle-free graph) says nothing and is left out.
    ``channels``: ``(N,)`` scores each, higher = more anomalous; returns ``(N,)``."""
    if rule not in ("fisher", "max"):
        raise InputError(f"combination rule {rule!r} is not one of fisher, max")
    informative = [c for c in channels if c.numel() and bool((c != c.flatten()[0]).any())]
    if not informative:
        return torch.zeros(channels[0].numel(), dtype=torch.float64)
    surprise = torch.stack([-tail_p_values(c.cpu()).log() for c in informative])
    return surprise.sum(0) if rule == "fisher" else surprise.max(0).values


def contextual_inconsistency(raw_x: Tensor, edge_index: Tensor) -> Tensor:
    """1 - cosine between a node's raw features and the mean raw features of its neighbours,
    both taken relative to the average node: features sharing a large common offset (BOND
    reddit's rows are near-uniform distributions) would otherwise all have cosine ~1."""
    return neighbor_inconsistency(raw_x, edge_index, center=True)


MAX_WEDGES = 2e9  # sum of squared degrees above which exact triangle counting is skipped


def structural_density(edge_index: Tensor, num_nodes: int, max_wedges: float = MAX_WEDGES) -> Tensor | None:
    """Triangles per unit degree; None (channel left out, with a logged line) when the graph has
    more than ``max_wedges`` two-paths: counting would take hours (a Reddit-size graph has ~10^11)."""
    deg = degree(edge_index[0], num_nodes)
    wedges = float((deg.double() ** 2).sum())
    if wedges > max_wedges:
        log.warning(
            "anomaly score: %.3g two-paths (sum of squared degrees) exceed %.3g; the structural "
            "(triangle) channel is left out",
            wedges,
            max_wedges,
        )
        return None
    return triangle_counts(edge_index, num_nodes) / deg.clamp_min(1)


def check_score(method: str) -> None:
    if method not in SCORES:
        raise InputError(f"anomaly_score={method!r} is not one of {', '.join(SCORES)}")


@torch.no_grad()
def anomaly_scores(method: str, nll: Tensor, graph, z: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """``(score, channels)`` for every node of ``graph``, higher = more anomalous. ``nll``: the
    nodes' negative log-density under the GMM; ``z``: their GMM input (for ``neighbor`` scores).
    ``channels`` holds each ingredient of the score by name (``nll``, ``contextual``,
    ``structural``, ``neighbor``), for export. No label is read."""
    check_score(method)
    nll = nll.detach().double().cpu()
    channels = {"nll": nll}
    if method == "nll":
        return nll, channels
    edge_index = graph.edge_index.cpu()
    if method in COMBINATION_RULES:
        raw = getattr(graph, "raw_x", None)
        channels["contextual"] = contextual_inconsistency((raw if raw is not None else graph.x).cpu(), edge_index)
        structural = structural_density(edge_index, graph.num_nodes)
        if structural is not None:
            channels["structural"] = structural.double()
        return combine_channels(list(channels.values()), COMBINATION_RULES[method]), channels
    channels["neighbor"] = neighbor_inconsistency(z.detach().double().cpu(), edge_index)
    if method == "neighbor":
        return channels["neighbor"], channels
    return _standardize(nll) + _standardize(channels["neighbor"]), channels


def outlier_threshold(scores: Tensor, contamination: float) -> float:
    """The score above which a ``contamination`` share of the nodes lies (PyGOD's ``threshold_``:
    the (1 - contamination) percentile, linear interpolation)."""
    return float(np.percentile(scores.double().cpu().numpy(), 100.0 * (1.0 - contamination)))


def baseline_scores(data) -> dict[str, Tensor]:
    """Degree and raw-feature L2 norm: injected outliers are known to leak through both."""
    x_norm = getattr(data, "raw_feature_norm", None)
    if x_norm is None:
        x_norm = data.x.norm(dim=1)
    return {"degree": degree(data.edge_index[0], data.num_nodes), "feature_norm": x_norm}
