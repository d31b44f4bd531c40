"""One EM iteration of a Gaussian mixture as functions of tensors.

The E-step sums sufficient statistics over chunks and ranks (and, for ``degenerate="recover"``,
gathers the worst-explained rows); the M-step's parameters come from :func:`gnngmm.mixture.stats.m_step`,
then :func:`reseed` moves components that lost their mass and :func:`factorise` turns the
covariances into precision Cholesky factors under the ``degenerate`` policy. Shapes: ``K``
components, ``d`` features, chunks of ``n`` rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from gnngmm.mixture.distributed import Communicator
from gnngmm.mixture.gaussian import log_gaussian_prob, precision_cholesky
from gnngmm.mixture.stats import SufficientStats, accumulate

log = logging.getLogger(__name__)

DEGENERATE = ("raise", "recover")
ChunkStep = Callable[[Tensor], tuple[SufficientStats, Tensor]]


def covariance_shift(weights: Tensor, means: Tensor, covariance_type: str) -> Tensor:
    """``(K, d)`` centre of the second moments: the means, or for tied their weighted average on every row."""
    if covariance_type == "tied":
        center = weights @ means
        return center.expand_as(means)
    return means


def chunk_stats(
    x: Tensor, log_weights: Tensor, means: Tensor, prec_chol: Tensor, covariance_type: str, shift: Tensor
) -> tuple[SufficientStats, Tensor]:
    """Statistics of one chunk ``x`` ``(n, d)`` under the given parameters, and its ``(n,)`` ``log p(x)``.

    The direct path (every covariance type): ``(n, K)`` log-probabilities, responsibilities, then
    :func:`gnngmm.mixture.stats.accumulate` around ``shift`` ``(K, d)``. ``log_likelihood`` is
    left to the caller.
    """
    log_prob = log_gaussian_prob(x, means, prec_chol, covariance_type)
    log_prob = log_prob + log_weights
    log_norm = torch.logsumexp(log_prob, dim=1)
    resp = torch.exp(log_prob - log_norm[:, None])
    return accumulate(x, resp, shift, covariance_type), log_norm


def e_step(
    chunks: Sequence[Tensor], step: ChunkStep, comm: Communicator, n_worst: int = 0
) -> tuple[SufficientStats, Tensor | None]:
    """The E-step's statistics summed over chunks and ranks, and the rows that re-seeding may use.

    Args:
        chunks (sequence of torch.Tensor): this rank's ``(n_i, d)`` row blocks.
        step (callable): one chunk's ``(statistics, (n,) log p(x))`` (:func:`chunk_stats` or the
            quadratic-feature path).
        comm (Communicator): sums over ranks.
        n_worst (int, optional): how many worst-explained rows (highest negative log-likelihood over
            all ranks) to return; ``0`` returns none. (default: ``0``)

    Returns:
        (SufficientStats, torch.Tensor or None): the statistics, with ``log_likelihood`` the total
        ``sum log p(x)``; and ``(min(n_worst, N), d)`` rows, worst first (``None`` when ``n_worst=0``).
    """
    total, worst_nll, worst_x = None, [], []
    for x in chunks:
        stats, log_norm = step(x)
        stats.log_likelihood = log_norm.sum()
        total = stats if total is None else total + stats
        if n_worst:
            top = torch.topk(-log_norm, min(n_worst, x.shape[0]))
            worst_nll.append(top.values)
            worst_x.append(x[top.indices])
    total = total.all_reduce(comm.all_reduce_sum)
    if not n_worst:
        return total, None
    nll = comm.all_gather_rows(torch.cat(worst_nll))
    rows = comm.all_gather_rows(torch.cat(worst_x))
    order = torch.argsort(nll, descending=True, stable=True)[:n_worst]
    return total, rows[order]


def reseed(
    nk: Tensor,
    weights: Tensor,
    means: Tensor,
    cov: Tensor,
    worst: Tensor,
    *,
    n_components: int,
    min_size: float,
    covariance_type: str,
) -> tuple[Tensor, Tensor, Tensor, list[int]]:
    """Move the components lighter than ``min_size`` onto the worst-explained rows (logged as a warning).

    A moved component gets the mean of a worst row (in turn), weight ``1 / n_components`` and the
    weight-averaged covariance of the others (tied: the shared one is kept); the weights are then
    renormalised. When no component, or every one, is light nothing changes.

    Args:
        nk (torch.Tensor): ``(K,)`` responsibility mass of the E-step.
        weights, means, cov (torch.Tensor): the M-step's ``(K,)``, ``(K, d)`` and covariances.
        worst (torch.Tensor): ``(m, d)`` rows, worst first (:func:`e_step`).
        n_components (int): K.
        min_size (float): the lightest mass a component keeps its place with.
        covariance_type (str): the covariances' type.

    Returns:
        (torch.Tensor, torch.Tensor, torch.Tensor, list of int): weights, means, covariances (new
        tensors when changed) and the moved components.
    """
    empty = torch.nonzero(nk < min_size).flatten().tolist()
    if not empty or len(empty) == n_components:
        return weights, means, cov, []
    keep = torch.ones_like(weights, dtype=torch.bool)
    keep[empty] = False
    w = weights[keep] / weights[keep].sum()
    means, weights, cov = means.clone(), weights.clone(), cov.clone()
    for j, k in enumerate(empty):
        means[k] = worst[j % worst.shape[0]]
        weights[k] = 1.0 / n_components
        if covariance_type != "tied":
            shape = (-1,) + (1,) * (cov.dim() - 1)
            cov[k] = (w.reshape(shape) * cov[keep]).sum(0)
    log.warning(
        "GMM: component(s) %s held fewer than %g samples; re-seeded at the worst-explained points",
        empty,
        min_size,
    )
    return weights / weights.sum(), means, cov, empty


def _log_escalation(k: int, added: float) -> None:
    log.warning("GMM: covariance of component %d was singular; added %.3g to its diagonal", k, added)


def factorise(
    cov: Tensor, covariance_type: str, *, recover: bool, reg_covar: float, max_reg_covar: float
) -> tuple[Tensor, Tensor]:
    """``(precisions_cholesky, covariances)`` of the M-step's covariances under the ``degenerate`` policy.

    Without ``recover`` an ill-defined covariance raises scikit-learn's ``ValueError``
    (:class:`gnngmm.mixture.gaussian.GMMNumericalError`). With it a singular covariance gets more
    diagonal regularisation (logged) up to ``max(max_reg_covar, 1e-3 * mean variance)``, and the
    returned covariances include what was added.
    """
    if not recover:
        return precision_cholesky(cov, covariance_type, max_reg_covar=None)
    scale = cov.diagonal(dim1=-2, dim2=-1).mean() if cov.dim() >= 2 and covariance_type != "diag" else cov.mean()
    limit = max(max_reg_covar, 1e-3 * float(scale.abs())) if torch.isfinite(scale) else max_reg_covar
    return precision_cholesky(
        cov, covariance_type, reg_covar=reg_covar, max_reg_covar=limit, on_escalate=_log_escalation
    )
