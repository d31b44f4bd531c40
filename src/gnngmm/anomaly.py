"""Node anomaly scores: the GMM's negative log-likelihood, optionally with a neighbourhood
inconsistency term, and the trivial baselines every table must show next to them."""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.utils import degree

from gnngmm.errors import InputError
from gnngmm.metrics import anomaly_metrics

SCORES = ("nll", "nll+neighbor", "neighbor")


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


@torch.no_grad()
def node_scores(module, data, method: str = "nll") -> Tensor:
    """Higher = more anomalous."""
    if method not in SCORES:
        raise InputError(f"anomaly.score={method!r} is not one of {', '.join(SCORES)}")
    z = module.transform(module.embed(data).double())
    nll = -module.gmm.score_samples(z)
    if method == "nll":
        return nll
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


def anomaly_report(module, data, method: str) -> dict[str, float]:
    """``auroc``/``average_precision``/``recall_at_k`` of the chosen score, and the same metrics
    for each baseline (``degree_auroc``, ...)."""
    out = anomaly_metrics(data.outlier, node_scores(module, data, method).cpu())
    for name, score in baseline_scores(data).items():
        out.update({f"{name}_{k}": v for k, v in anomaly_metrics(data.outlier, score).items()})
    return out
