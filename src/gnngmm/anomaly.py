"""Node anomaly scores and the trivial baselines every table must show next to them.

* ``nll``: negative log-likelihood of the node's embedding under the GMM (unusual embeddings);
* ``nll+neighbor``: plus how far the embedding is from its neighbours' mean (z-scores summed);
* ``combined``: a node is flagged when any of three channels is extreme (max of their ranks):
  the GMM NLL; *contextual* -- raw features unlike the neighbourhood's mean (1 - cosine, both
  centred on the average node); and
  *structural* -- triangles per unit degree (dense, clique-like neighbourhoods); a channel that is
  constant on the graph (no triangles at all) is left out. GNN smoothing
  hides a node whose own features disagree with its neighbours, so the contextual channel reads
  the raw features.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.utils import degree

from gnngmm.errors import InputError
from gnngmm.metrics import anomaly_metrics

SCORES = ("nll", "nll+neighbor", "neighbor", "combined")


def _standardize(v: Tensor) -> Tensor:
    return (v - v.mean()) / v.std().clamp_min(1e-12)


def neighbor_inconsistency(z: Tensor, edge_index: Tensor) -> Tensor:
    """1 - cosine(z_i, mean of z over i's neighbours); isolated nodes score 0."""
    n = z.shape[0]
    src, dst = edge_index
    total = torch.zeros_like(z).index_add_(0, dst, z[src])
    count = degree(dst, n, dtype=z.dtype).clamp_min(1)[:, None]
    mean = total / count
    cos = torch.nn.functional.cosine_similarity(z, mean, dim=1)
    return torch.where(count[:, 0] > 0, 1.0 - cos, torch.zeros_like(cos))


def triangle_counts(edge_index: Tensor, num_nodes: int, block: int = 4096) -> Tensor:
    """Triangles through each node of an undirected graph, by sparse products over row blocks."""
    ones = torch.ones(edge_index.shape[1], dtype=torch.float32, device=edge_index.device)
    adj = torch.sparse_coo_tensor(edge_index, ones, (num_nodes, num_nodes), check_invariants=False).coalesce()
    adj = torch.sparse_coo_tensor(adj.indices(), torch.ones_like(adj.values()), adj.shape).coalesce()
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


def rank_fraction(v: Tensor) -> Tensor:
    """Ranks scaled to [0, 1], ties sharing their average rank: a tie must not be broken by
    node order (which would smuggle the file's ordering into the score)."""
    v = v.double()
    _, inverse, counts = torch.unique(v, sorted=True, return_inverse=True, return_counts=True)
    upper = counts.cumsum(0).double() - 1  # last 0-based position of each distinct value
    average = upper - (counts.double() - 1) / 2
    return average[inverse] / max(1, v.numel() - 1)


def combine_ranks(channels: list[Tensor]) -> Tensor:
    """Max over channels of their rank fractions; a constant channel (e.g. triangles in a
    triangle-free graph) says nothing and is left out."""
    informative = [c for c in channels if c.numel() and bool((c != c.flatten()[0]).any())]
    if not informative:
        return torch.zeros(channels[0].numel(), dtype=torch.float64)
    return torch.stack([rank_fraction(c.cpu()) for c in informative]).max(0).values


def contextual_inconsistency(raw_x: Tensor, edge_index: Tensor) -> Tensor:
    """1 - cosine between a node's raw features and the mean raw features of its neighbours,
    both taken relative to the average node: features sharing a large common offset (BOND
    reddit's rows are near-uniform distributions) would otherwise all have cosine ~1."""
    raw_x = raw_x.double()
    return neighbor_inconsistency(raw_x - raw_x.mean(0), edge_index)


def structural_density(edge_index: Tensor, num_nodes: int) -> Tensor:
    return triangle_counts(edge_index, num_nodes) / degree(edge_index[0], num_nodes).clamp_min(1)


@torch.no_grad()
def node_scores(module, data, method: str = "nll", z: Tensor | None = None) -> Tensor:
    """Higher = more anomalous. ``z``: every node's GMM input, when the caller already has it."""
    if method not in SCORES:
        raise InputError(f"anomaly.score={method!r} is not one of {', '.join(SCORES)}")
    z = module.gmm_input(data) if z is None else z
    nll = -module.gmm.score_samples(z)
    if method == "nll":
        return nll
    if method == "combined":
        raw = getattr(data, "raw_x", None)
        raw = raw if raw is not None else data.x
        return combine_ranks([
            nll,
            contextual_inconsistency(raw, data.edge_index),
            structural_density(data.edge_index, data.num_nodes),
        ])
    inconsistency = neighbor_inconsistency(z, data.edge_index.to(z.device))
    if method == "neighbor":
        return inconsistency
    return _standardize(nll) + _standardize(inconsistency)


def baseline_scores(data) -> dict[str, Tensor]:
    """Degree and raw-feature L2 norm: injected outliers are known to leak through both."""
    x_norm = getattr(data, "raw_feature_norm", None)
    if x_norm is None:
        x_norm = data.x.norm(dim=1)
    return {"degree": degree(data.edge_index[0], data.num_nodes), "feature_norm": x_norm}


def anomaly_report(module, data, method: str, z: Tensor | None = None) -> dict[str, float]:
    """``auroc``/``average_precision``/``recall_at_k`` of the chosen score, and the same metrics
    for each baseline (``degree_auroc``, ...)."""
    out = anomaly_metrics(data.outlier, node_scores(module, data, method, z).cpu())
    for name, score in baseline_scores(data).items():
        out.update({f"{name}_{k}": v for k, v in anomaly_metrics(data.outlier, score).items()})
    return out
