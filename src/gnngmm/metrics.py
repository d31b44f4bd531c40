"""Clustering metrics (NMI, ARI via torchmetrics; ACC by Hungarian matching) and anomaly metrics.

:func:`evaluate` is where a run's results meet its labels: the numbers are reported, never used
to choose anything (epochs, checkpoints, K, hyperparameters).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor
from torchmetrics.functional.classification import binary_auroc, binary_average_precision


def hungarian_accuracy(y_true: Tensor, y_pred: Tensor) -> float:
    """Accuracy after the best one-to-one matching of predicted clusters to classes."""
    y_true = torch.as_tensor(y_true).cpu().long()
    y_pred = torch.as_tensor(y_pred).cpu().long()
    _, t = torch.unique(y_true, return_inverse=True)
    _, p = torch.unique(y_pred, return_inverse=True)
    size = max(int(t.max()), int(p.max())) + 1
    counts = torch.zeros(size, size, dtype=torch.long)
    counts.index_put_((p, t), torch.ones_like(p), accumulate=True)
    rows, cols = linear_sum_assignment(counts.numpy(), maximize=True)
    return float(counts.numpy()[rows, cols].sum() / len(y_true))


def clustering_metrics(y_true: Tensor, y_pred: Tensor) -> dict[str, float]:
    """NMI / ARI / ACC over the labelled nodes (``y_true >= 0``; ogbn-papers100M labels ~1.5%)."""
    y_true = torch.as_tensor(y_true).cpu().long()
    y_pred = torch.as_tensor(y_pred).cpu().long()
    labelled = y_true >= 0
    if not bool(labelled.all()):
        y_true, y_pred = y_true[labelled], y_pred[labelled]
    nmi, ari = nmi_ari(y_true, y_pred)
    return {"nmi": nmi, "ari": ari, "acc": hungarian_accuracy(y_true, y_pred)}


def nmi_ari(y_true: Tensor, y_pred: Tensor) -> tuple[float, float]:
    """NMI (arithmetic normalisation) and ARI from the contingency table in float64, as
    scikit-learn defines them (torchmetrics' versions count pairs in float32, which breaks at
    10^5 nodes)."""
    _, t = torch.unique(y_true, return_inverse=True)
    _, p = torch.unique(y_pred, return_inverse=True)
    n = t.numel()
    table = torch.zeros(int(t.max()) + 1, int(p.max()) + 1, dtype=torch.float64)
    table.index_put_((t, p), torch.ones(n, dtype=torch.float64), accumulate=True)
    a, b = table.sum(1), table.sum(0)

    def entropy(counts):
        q = counts[counts > 0] / n
        return float(-(q * q.log()).sum())

    nz = table > 0
    mi = float((table[nz] / n * (table[nz] * n / (a[:, None] * b[None, :]).expand_as(table)[nz]).log()).sum())
    h_true, h_pred = entropy(a), entropy(b)
    denominator = (h_true + h_pred) / 2
    nmi = 1.0 if h_true == h_pred == 0 else (mi / denominator if denominator > 0 else 0.0)

    def pairs(x):
        return (x * (x - 1) / 2).sum()

    index, rows, cols = float(pairs(table)), float(pairs(a)), float(pairs(b))
    expected = rows * cols / (n * (n - 1) / 2) if n > 1 else 0.0
    span = (rows + cols) / 2 - expected
    ari = 1.0 if span == 0 else (index - expected) / span
    return max(0.0, min(1.0, nmi)), ari


def anomaly_metrics(is_outlier: Tensor, score: Tensor) -> dict[str, float]:
    """AUROC, average precision and recall@k (k = number of true outliers); higher score = more
    anomalous."""
    target = torch.as_tensor(is_outlier).cpu().long()
    score = torch.as_tensor(score).detach().cpu().double()
    # torchmetrics reads scores outside [0, 1] as logits and applies a sigmoid, which saturates
    # (ties) for large NLLs; min-max scaling keeps the order exactly.
    span = (score.max() - score.min()).clamp_min(1e-300)
    score = (score - score.min()) / span
    k = int(target.sum())
    top = torch.topk(score, k).indices if k else torch.empty(0, dtype=torch.long)
    return {
        "auroc": float(binary_auroc(score, target)),
        "average_precision": float(binary_average_precision(score, target)),
        "recall_at_k": float(target[top].sum() / max(k, 1)),
    }


def evaluate(labels, pred: Tensor | None = None, scores: Tensor | None = None) -> dict[str, float]:
    """Report ``pred`` (clusters) against ``labels.y`` (NMI/ARI/ACC) and ``scores`` (higher = more
    anomalous) against ``labels.outlier`` (AUROC/AP/recall@k), for whichever labels exist."""
    out: dict[str, float] = {}
    if labels is None:
        return out
    if pred is not None and getattr(labels, "y", None) is not None:
        known = torch.as_tensor(labels.y) >= 0  # -1: a node without a label (files may label a subset)
        out.update(clustering_metrics(torch.as_tensor(labels.y)[known], torch.as_tensor(pred).cpu()[known]))
    if scores is not None and getattr(labels, "outlier", None) is not None:
        out.update(anomaly_metrics(labels.outlier, scores))
    return out


def cluster_sizes(labels: Tensor, k: int) -> list[int]:
    return np.bincount(torch.as_tensor(labels).cpu().numpy(), minlength=k).tolist()
