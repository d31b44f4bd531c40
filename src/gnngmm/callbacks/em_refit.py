"""The EM refit: embed the whole graph, refit the transform and the GMM, log what it found.

Runs at every training-epoch end (``EMRefit``) and once more after training (``final_refit``).
Per epoch the GMM is warm-started from the previous epoch's responsibilities (one M-step on the
new embedding, then EM), which stays valid however the embedding moved. Under DDP every rank
embeds the graph, fits the transform identically (rank 0's copy is broadcast), and runs EM on its
own shard of nodes with the sufficient statistics summed across ranks, so all ranks end with the
same GMM. Labels, where present, are only reported.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager

import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor

from gnngmm.metrics import anomaly_metrics, cluster_sizes, clustering_metrics
from gnngmm.mixture import GaussianMixture, default_communicator, select_k

log = logging.getLogger(__name__)


@contextmanager
def overrides(gmm: GaussianMixture, **values):
    """Temporarily change fit settings (``max_iter``, ``warm_start``, ...) of a mixture."""
    saved = {name: getattr(gmm, name) for name in values}
    for name, value in values.items():
        setattr(gmm, name, value)
    try:
        yield gmm
    finally:
        for name, value in saved.items():
            setattr(gmm, name, value)


def _broadcast_transform(transform, comm) -> None:
    if comm.world_size == 1:
        return
    for name in ("mean_", "components_", "scale_"):
        value = getattr(transform, name)
        if value is not None:
            setattr(transform, name, comm.broadcast_from_zero(value))


def _shard(t: Tensor, comm) -> Tensor:
    """This rank's rows: EM statistics are summed over ranks, so each node must count once."""
    return t[comm.rank :: comm.world_size]


def embed_for_gmm(module, data, comm, refit_transform: bool = True) -> tuple[Tensor, Tensor]:
    """``(z_all, z_local)``: the GMM input for every node, and this rank's shard of it."""
    h = module.embed(data)
    if not bool(torch.isfinite(h).all()):
        raise FloatingPointError(
            "the encoder produced NaN/inf embeddings (training diverged); lower the learning rate "
            "or gmm.loss_weight"
        )
    if refit_transform or not module.transform.is_fitted:
        module.transform.fit(h)
        _broadcast_transform(module.transform, comm)
    z = module.transform(h.double())
    return z, _shard(z, comm)


def _summarise(gmm: GaussianMixture, z_all: Tensor, comm, data) -> tuple[dict, Tensor, Tensor]:
    """One pass over every node's log-probabilities: assignments, mean log-likelihood and BIC (of
    this rank's shard, summed over ranks), anomaly scores; returns this rank's responsibilities
    and the (N, K) table itself."""
    log_prob = gmm.log_prob_table(z_all)
    log_norm = torch.logsumexp(log_prob, dim=1)
    pred = log_prob.argmax(1)
    log_likelihood, bic = gmm.score_and_bic(_shard(log_norm, comm))
    result = {
        "k": gmm.n_components,
        "log_likelihood": log_likelihood,
        "bic": bic,
        "cluster_sizes": cluster_sizes(pred, gmm.n_components),
        "pred": pred.cpu(),
    }
    if getattr(data, "y", None) is not None:
        result.update(clustering_metrics(data.y, pred))
    if getattr(data, "outlier", None) is not None:
        result.update(anomaly_metrics(data.outlier, -log_norm))
    resp = _shard(torch.exp(log_prob - log_norm[:, None]), comm)
    return result, resp, log_prob


def select_components(
    gmm: GaussianMixture, z_local: Tensor, k_range, criterion: str = "bic"
) -> tuple[GaussianMixture, list[dict]]:
    """Fit every K in ``k_range`` (a [low, high] pair or a list) and keep the one ``criterion``
    picks (lowest BIC, or the knee of the BIC curve)."""
    ks = range(int(k_range[0]), int(k_range[1]) + 1) if len(k_range) == 2 else [int(k) for k in k_range]

    def make(k: int) -> GaussianMixture:
        return GaussianMixture(
            k, covariance_type=gmm.covariance_type, tol=gmm.tol, reg_covar=gmm.reg_covar, max_iter=gmm.max_iter,
            n_init=gmm.n_init, init_params=gmm.init_params, random_state=gmm.random_state, comm=gmm.comm,
            min_component_size=gmm.min_component_size, kmeans_n_init=gmm.kmeans_n_init,
        )

    best, rows = select_k(z_local, ks, make, criterion)
    log.info("%s picks K=%d among %s", criterion, best.n_components, [r["k"] for r in rows])
    return best, rows


def refit(
    module, data, *, max_iter: int, fresh_inits: int = 0, warm: bool = True, k_range=None, k_criterion: str = "bic",
    comm=None,
) -> dict:
    """One EM refit of ``module.gmm`` on the current embedding; returns the summary dict (its
    ``z`` is every node's GMM input and ``log_prob`` their ``log w_k + log N(z | k)`` table, for the
    scores, predictions and pictures that follow a final refit).

    Candidates: the warm start (one M-step from ``module.resp`` on the new embedding, then EM for
    up to ``max_iter`` iterations) when ``warm`` and it matches, and a fresh fit with
    ``fresh_inits`` initialisations (k-means, or ``init_params``); the best lower bound wins.
    With no usable warm start a fresh fit always runs. With ``k_range`` (``gmm.k=auto``) and no
    warm start or fresh initialisations requested, K is first chosen by ``k_criterion``.
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
        with overrides(gmm, warm_start=True, max_iter=max_iter):
            gmm.fit(z_local)
        candidates.append(gmm.state_dict())
    if bic_table is None and (fresh_inits > 0 or not candidates):
        fresh = GaussianMixture(
            gmm.n_components, covariance_type=gmm.covariance_type, tol=gmm.tol, reg_covar=gmm.reg_covar,
            max_iter=max_iter, n_init=max(1, fresh_inits), init_params=gmm.init_params,
            random_state=gmm.random_state, comm=comm, min_component_size=gmm.min_component_size,
            kmeans_n_init=gmm.kmeans_n_init,
        ).fit(z_local)
        candidates.append(fresh.state_dict())
    if candidates:
        gmm.load_state_dict(max(candidates, key=lambda s: s["lower_bound_"]))
    gmm.to(z_local.device)
    check_ranks_agree(gmm, comm)
    result, module.resp, log_prob = _summarise(gmm, z_all, comm, data)
    result["bic_table"] = bic_table
    result["z"] = z_all
    result["log_prob"] = log_prob
    return result


def check_ranks_agree(gmm: GaussianMixture, comm) -> None:
    """Under DDP every rank must hold the same mixture; a mismatch is a bug, not noise."""
    if comm.world_size == 1:
        return
    flat = torch.cat([gmm.weights_.reshape(-1), gmm.means_.reshape(-1), gmm.covariances_.reshape(-1)])
    spread = (comm.all_reduce_sum(flat) / comm.world_size - flat).abs().max()
    disagree = comm.all_reduce_sum((spread > 1e-9 * flat.abs().max().clamp_min(1.0)).double().reshape(1))
    if float(disagree) > 0:
        raise RuntimeError(f"GMM parameters differ across DDP ranks (max deviation {float(spread):.3g})")


class EMRefit(Callback):
    """Refit the GMM by EM at the end of every ``every_n_epochs``-th training epoch and log
    ``gmm/log_likelihood``, ``gmm/bic``, cluster sizes and (reported only) nmi/ari/acc."""

    def __init__(
        self, every_n_epochs: int = 1, max_iter: int = 20, k_range=None, history_path=None,
        loss_start_epoch: int | None = None, reseed_at_loss_start: bool = False, k_criterion: str = "bic",
    ):
        self.every_n_epochs = max(1, int(every_n_epochs))
        self.max_iter = max_iter
        self.k_range = k_range
        self.k_criterion = k_criterion
        self.history_path = history_path  # history.csv, rewritten by rank 0 after every refit
        # Once the GMM term is on, the mixture is refreshed after every epoch; with
        # reseed_at_loss_start the refit just before it starts is fresh (basin by k-means inertia).
        self.loss_start_epoch = loss_start_epoch
        self.reseed_at_loss_start = reseed_at_loss_start
        self._epoch_start = None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._epoch_start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        epoch = trainer.current_epoch
        epoch_seconds = time.perf_counter() - (self._epoch_start or time.perf_counter())
        last = epoch + 1 >= (trainer.max_epochs or 0)
        term_on = self.loss_start_epoch is not None and epoch + 1 >= self.loss_start_epoch
        if (epoch + 1) % self.every_n_epochs and not last and not term_on:
            return
        reseed = self.reseed_at_loss_start and self.loss_start_epoch is not None and epoch + 1 == self.loss_start_epoch
        start = time.perf_counter()
        result = refit(
            pl_module, trainer.datamodule.data, max_iter=self.max_iter, k_range=self.k_range, k_criterion=self.k_criterion,
            warm=not reseed, fresh_inits=1 if reseed else 0,
        )
        sizes = result["cluster_sizes"]
        metrics = {
            "time/epoch_seconds": epoch_seconds,
            "time/em_refit_seconds": time.perf_counter() - start,
            "gmm/log_likelihood": result["log_likelihood"],
            "gmm/bic": result["bic"],
            "gmm/k": float(result["k"]),
            "gmm/min_cluster_size": float(min(sizes)),
            "gmm/max_cluster_size": float(max(sizes)),
        }
        for name in ("nmi", "ari", "acc", "auroc", "average_precision"):
            if name in result:
                metrics[name] = result[name]
        pl_module.log_dict(metrics, on_step=False, on_epoch=True, batch_size=1, rank_zero_only=True)
        pl_module.history.append({"epoch": epoch, "cluster_sizes": sizes, **metrics})
        if self.history_path is not None and trainer.is_global_zero:
            from gnngmm.reporting import write_history

            write_history(self.history_path, pl_module.history)
