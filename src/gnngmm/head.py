"""The GMM head's algorithm: embed the whole graph, refit the transform and the mixture by EM.

``refit`` runs at epoch ends (scheduled by :class:`gnngmm.callbacks.EMRefit`) and once after
training (by the estimator). Per epoch the mixture is warm-started from the previous epoch's
responsibilities (one M-step on the new embedding, then EM), which stays valid however the
embedding moved. Under DDP every rank embeds the graph, fits the transform identically (rank 0's
copy is broadcast), and runs EM on its own shard of nodes with the sufficient statistics summed
across ranks, so all ranks end with the same mixture.

Everything here is unsupervised: labels are never passed in. Evaluating a result against labels
is :func:`gnngmm.metrics.evaluate`, called by whoever reports.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor

from gnngmm.metrics import cluster_sizes
from gnngmm.mixture import GaussianMixture, default_communicator, select_k

log = logging.getLogger(__name__)


@dataclass
class HeadResult:
    """What one refit found, for every node of the graph (``pred``, ``z``, ``log_prob``)."""

    k: int
    log_likelihood: float  # mean per node (scikit-learn's lower_bound_)
    bic: float
    cluster_sizes: list[int]
    pred: Tensor  # (N,) cluster of each node, on the CPU
    z: Tensor  # (N, d) the GMM input: transformed embedding, float64
    log_prob: Tensor  # (N, K) log w_k + log N(z | k)
    bic_table: list[dict] | None = None  # one row per K tried, when K was selected

    @property
    def score_samples(self) -> Tensor:
        """(N,) log-density of every node under the mixture."""
        return torch.logsumexp(self.log_prob, dim=1)


@contextmanager
def overrides(gmm: GaussianMixture, **values):
    """Temporarily change fit settings (``max_iter``, ``warm_start``, ...) of a mixture."""
    saved = {name: getattr(gmm, name) for name in values}
    gmm.set_params(**values)
    try:
        yield gmm
    finally:
        gmm.set_params(**saved)


def _broadcast_transform(transform, comm) -> None:
    if comm.world_size == 1:
        return
    for name in ("mean_", "components_", "scale_", "spread_"):
        value = getattr(transform, name)
        if value is not None:
            setattr(transform, name, comm.broadcast_from_zero(value))


def shard(t: Tensor, comm) -> Tensor:
    """This rank's rows: EM statistics are summed over ranks, so each node must count once."""
    return t[comm.rank :: comm.world_size]


def embed_for_gmm(module, data, comm) -> tuple[Tensor, Tensor]:
    """``(z_all, z_local)``: the GMM input for every node after refitting the transform on the
    current embedding, and this rank's shard of it."""
    h = module.embed(data)
    if not bool(torch.isfinite(h).all()):
        raise FloatingPointError(
            "the encoder produced NaN/inf embeddings (training diverged); lower the learning rate "
            "or gmm.loss_weight"
        )
    module.transform.fit(h)
    _broadcast_transform(module.transform, comm)
    z = module.transform.transform_rows(h)
    return z, shard(z, comm)


def summarise(gmm: GaussianMixture, z_all: Tensor, comm) -> tuple[HeadResult, Tensor]:
    """One pass over every node's log-probabilities: assignments, mean log-likelihood and BIC (of
    this rank's shard, summed over ranks); returns the result and this rank's responsibilities."""
    log_prob = gmm.log_prob_table(z_all)
    log_norm = torch.logsumexp(log_prob, dim=1)
    pred = log_prob.argmax(1)
    log_likelihood, bic = gmm.score_and_bic(shard(log_norm, comm))
    result = HeadResult(
        k=gmm.n_components, log_likelihood=log_likelihood, bic=bic,
        cluster_sizes=cluster_sizes(pred, gmm.n_components), pred=pred.cpu(), z=z_all, log_prob=log_prob,
    )
    resp = shard((log_prob - log_norm[:, None]).exp_(), comm)  # one (N, K) temporary, not two
    return result, resp


def row_summaries(log_prob: Tensor, rows: int = 1 << 16) -> tuple[Tensor, ...]:
    """``(N,)`` most responsible component, its responsibility, the responsibilities' entropy and
    the log-density of every row of an ``(N, K)`` table of ``log(weight_k p_k(z_i))``, a block of
    rows at a time: no ``(N, K)`` temporary (ogbn-products: 0.9 GB each, in float64)."""
    parts = []
    for block in log_prob.split(rows):
        log_norm = torch.logsumexp(block, 1)
        log_resp = block - log_norm[:, None]
        best, cluster = log_resp.max(1)
        parts.append((cluster, best.exp(), -(log_resp.exp() * log_resp).sum(1), log_norm))
    return tuple(torch.cat(column) for column in zip(*parts))


def select_components(
    gmm: GaussianMixture, z_local: Tensor, k_range, criterion: str = "bic"
) -> tuple[GaussianMixture, list[dict]]:
    """Fit every K in ``k_range`` (a [low, high] pair or a list) with ``gmm``'s settings and keep
    the one ``criterion`` picks (lowest BIC, or the knee of the BIC curve)."""
    ks = range(int(k_range[0]), int(k_range[1]) + 1) if len(k_range) == 2 else [int(k) for k in k_range]
    best, rows = select_k(z_local, ks, lambda k: gmm.clone(n_components=k, warm_start=False), criterion)
    log.info("%s picks K=%d among %s", criterion, best.n_components, [r["k"] for r in rows])
    return best, rows


def refit(
    module, data, *, max_iter: int, fresh_inits: int = 0, warm: bool = True, k_range=None, k_criterion: str = "bic",
    comm=None,
) -> HeadResult:
    """One EM refit of ``module.gmm`` on the current embedding of ``data``.

    Candidates: the warm start (one M-step from ``module.resp`` on the new embedding, then EM for
    up to ``max_iter`` iterations) when ``warm`` and it matches, and a fresh fit with
    ``max(fresh_inits, gmm.n_init)`` initialisations (k-means, or ``init_params``); the best lower
    bound wins.
    With no usable warm start a fresh fit always runs. With ``k_range`` (``n_clusters="auto"``)
    and no warm start or fresh initialisations requested, K is first chosen by ``k_criterion``.
    """
    comm = comm or module.gmm.comm
    if comm.world_size == 1:
        comm = default_communicator()
    module.gmm.comm = comm
    z_all, z_local = embed_for_gmm(module, data, comm)
    gmm = module.gmm
    bic_table = None
    warm = warm and module.resp is not None
    if k_range is not None and (not warm or fresh_inits > 0):
        chosen, bic_table = select_components(gmm, z_local, k_range, k_criterion)
        module.bic_table = bic_table
        gmm.n_components = chosen.n_components
        gmm.load_state_dict(chosen.state_dict())
        module.resp, warm, fresh_inits = None, False, 0
    candidates = []
    if warm and tuple(module.resp.shape) == (z_local.shape[0], gmm.n_components):
        gmm.initialize_from_responsibilities(z_local, module.resp.to(z_local.device))
        module.resp = None  # consumed: the (N, K) table is not kept alive through EM and summarise
        with overrides(gmm, warm_start=True, max_iter=max_iter):
            gmm.fit(z_local)
        candidates.append(gmm.state_dict())
    if bic_table is None and (fresh_inits > 0 or not candidates):
        fresh = gmm.clone(max_iter=max_iter, n_init=max(1, fresh_inits, gmm.n_init), warm_start=False, comm=comm).fit(z_local)
        candidates.append(fresh.state_dict())
    if candidates:
        gmm.load_state_dict(max(candidates, key=lambda s: s["lower_bound_"]))
    gmm.to(z_local.device)
    check_ranks_agree(gmm, comm)
    result, module.resp = summarise(gmm, z_all, comm)
    result.bic_table = bic_table
    return result


@torch.no_grad()
def restore_responsibilities(module, data, comm=None) -> None:
    """``module.resp`` recomputed from the module's own encoder, transform and mixture (a restored
    state): the same responsibilities the refit that made that state left behind."""
    comm = comm or module.gmm.comm
    z = module.gmm_input(data)
    module.gmm.to(z.device)
    _, module.resp = summarise(module.gmm, z, comm if comm.world_size > 1 else default_communicator())


def check_ranks_agree(gmm: GaussianMixture, comm) -> None:
    """Under DDP every rank must hold the same mixture; a mismatch is a bug, not noise."""
    if comm.world_size == 1:
        return
    flat = torch.cat([gmm.weights_.reshape(-1), gmm.means_.reshape(-1), gmm.covariances_.reshape(-1)])
    spread = (comm.all_reduce_sum(flat) / comm.world_size - flat).abs().max()
    disagree = comm.all_reduce_sum((spread > 1e-9 * flat.abs().max().clamp_min(1.0)).double().reshape(1))
    if float(disagree) > 0:
        raise RuntimeError(f"GMM parameters differ across DDP ranks (max deviation {float(spread):.3g})")
