"""The GMM head: the mixture over the encoder's embedding, its state, and how EM refits it.

:class:`GMMHead` owns every piece of head state: the mixture, the embedding transform, the
warm-start responsibilities, the last K-selection table, the per-refit history and the epoch a
safeguard went back to. A refit embeds the whole graph (the caller passes the encoder's output),
refits the transform, then the mixture by EM: warm-started from the previous responsibilities
(one M-step on the new embedding, then EM), which stays valid however the embedding moved, or
fresh. Under DDP every rank holds the whole embedding, fits the transform identically (rank 0's
copy is broadcast), and runs EM on its own shard of nodes with the sufficient statistics summed
across ranks, so all ranks end with the same mixture.

Everything here is unsupervised: labels are never passed in. Evaluating a result against labels
is :func:`gnngmm.metrics.evaluate`, called by whoever reports.
"""

from __future__ import annotations

import copy
import logging
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from sklearn.exceptions import ConvergenceWarning
from torch import Tensor

from gnngmm.embedding import EmbeddingTransform
from gnngmm.metrics import cluster_sizes
from gnngmm.mixture import GaussianMixture, default_communicator, select_k
from gnngmm.quality import modularity

log = logging.getLogger(__name__)


@dataclass
class HeadResult:
    """What one refit found, for every node of the graph.

    Attributes:
        k: the number of components.
        log_likelihood: mean log-likelihood per node (scikit-learn's ``lower_bound_``).
        bic: the mixture's BIC on the embedding.
        cluster_sizes: nodes per component, ``K`` ints.
        pred: ``(N,)`` most responsible component of each node, on the CPU.
        z: ``(N, d)`` the mixture's input (transformed embedding, float64).
        log_prob: ``(N, K)`` ``log w_k + log N(z | k)``.
        bic_table: one row per K tried, when K was selected.
        metrics: label-free numbers about this refit added by safeguards (e.g. its silhouette).
        restored_from: the epoch a safeguard went back from, when this refit follows a restore.
    """

    k: int
    log_likelihood: float
    bic: float
    cluster_sizes: list[int]
    pred: Tensor
    z: Tensor
    log_prob: Tensor
    bic_table: list[dict] | None = None
    metrics: dict = field(default_factory=dict)
    restored_from: int | None = None

    @property
    def score_samples(self) -> Tensor:
        """``(N,)`` log-density of every node under the mixture."""
        return torch.logsumexp(self.log_prob, dim=1)


class GMMHead:
    """The mixture over the encoder's embedding (refit by EM, never by gradient).

    Args:
        mixture (GaussianMixture): the engine, with its settings (``max_iter`` is the final
            refit's, ``n_init`` a fresh fit's restarts); refit in place.
        transform (EmbeddingTransform): encoder output -> mixture input, refit at every refit.
        k_range (list[int], optional): with ``n_clusters="auto"``, a ``[low, high]`` pair or a
            list of K, chosen by ``k_criterion`` at every fresh fit. (default: ``None``)
        k_criterion (str): ``"bic"`` or ``"bic_knee"``. (default: ``"bic"``)
        refit_max_iter (int): EM iterations of an epoch-end refit. (default: ``3``)
        final_fresh_fit (bool): the final refit also tries ``mixture.n_init`` fresh fits against
            the warm start. (default: ``False``)

    Its state (:meth:`state_dict`) is everything a checkpoint needs besides the encoder.
    """

    def __init__(
        self,
        mixture: GaussianMixture,
        transform: EmbeddingTransform,
        *,
        k_range=None,
        k_criterion: str = "bic",
        refit_max_iter: int = 3,
        final_fresh_fit: bool = False,
    ):
        self.mixture = mixture
        self.transform = transform
        self.k_range = list(k_range) if k_range is not None else None
        self.k_criterion = k_criterion
        self.refit_max_iter = int(refit_max_iter)
        self.final_fresh_fit = bool(final_fresh_fit)
        self.resp: Tensor | None = None  # this rank's responsibilities at the last refit (the warm start)
        self.bic_table: list[dict] | None = None  # the last K selection (n_clusters="auto")
        self.history: list[dict] = []  # one row per epoch-end refit
        self.restored_epoch: int | None = None  # the refit a safeguard went back to

    @property
    def is_fitted(self) -> bool:
        return self.mixture.is_fitted and self.transform.is_fitted

    # ------------------------------------------------------------------ refits
    def refit(self, h: Tensor, *, fresh: bool = False) -> HeadResult:
        """An epoch-end refit on the encoder's output ``h`` ``(N, D)`` for every node: warm from
        the last responsibilities (``refit_max_iter`` EM iterations), or ``fresh`` (one
        initialisation, the basin by k-means inertia)."""
        return self._refit(h, max_iter=self.refit_max_iter, warm=not fresh, fresh_inits=1 if fresh else 0)

    def final_refit(self, h: Tensor) -> HeadResult:
        """The refit after training: warm, up to ``mixture.max_iter`` EM iterations (and
        ``mixture.n_init`` fresh fits with ``final_fresh_fit``)."""
        fresh_inits = self.mixture.n_init if self.final_fresh_fit else 0
        return self._refit(h, max_iter=self.mixture.max_iter, warm=True, fresh_inits=fresh_inits)

    def _refit(self, h: Tensor, *, max_iter: int, warm: bool, fresh_inits: int) -> HeadResult:
        """Candidates: the warm start when ``warm`` and it matches, and a fresh fit with
        ``max(fresh_inits, n_init)`` initialisations; the best lower bound wins. With no usable
        warm start a fresh fit always runs. With ``k_range`` and no warm start or fresh
        initialisations requested, K is first chosen by ``k_criterion``."""
        comm = self._communicator()
        z_all, z_local = self._embed(h, comm)
        gmm = self.mixture
        bic_table = None
        warm = warm and self.resp is not None
        if self.k_range is not None and (not warm or fresh_inits > 0):
            chosen, bic_table = select_components(gmm, z_local, self.k_range, self.k_criterion)
            self.bic_table = bic_table
            gmm.n_components = chosen.n_components
            gmm.load_state_dict(chosen.state_dict())
            self.resp, warm, fresh_inits = None, False, 0
        candidates = []
        with _quiet(max_iter < gmm.max_iter):
            if warm and tuple(self.resp.shape) == (z_local.shape[0], gmm.n_components):
                gmm.initialize_from_responsibilities(z_local, self.resp.to(z_local.device))
                self.resp = None  # consumed: the (N, K) table is not kept alive through EM and summarise
                with overrides(gmm, warm_start=True, max_iter=max_iter):
                    gmm.fit(z_local)
                candidates.append(gmm.state_dict())
            if bic_table is None and (fresh_inits > 0 or not candidates):
                n_init = max(1, fresh_inits, gmm.n_init)
                fresh = gmm.clone(max_iter=max_iter, n_init=n_init, warm_start=False, comm=comm).fit(z_local)
                candidates.append(fresh.state_dict())
        if candidates:
            gmm.load_state_dict(max(candidates, key=lambda s: s["lower_bound_"]))
        gmm.to(z_local.device)
        check_ranks_agree(gmm, comm)
        result, self.resp = summarise(gmm, z_all, comm)
        result.bic_table = bic_table
        return result

    def _communicator(self):
        comm = self.mixture.comm
        if comm.world_size == 1:
            comm = default_communicator()
        self.mixture.comm = comm
        return comm

    def _embed(self, h: Tensor, comm) -> tuple[Tensor, Tensor]:
        """``(z_all, z_local)``: the mixture's input for every node after refitting the transform
        on ``h``, and this rank's shard of it."""
        if not bool(torch.isfinite(h).all()):
            raise FloatingPointError(
                "the encoder produced NaN/inf embeddings (training diverged); lower the learning rate or loss.weight"
            )
        self.transform.fit(h)
        _broadcast_transform(self.transform, comm)
        z = self.transform.transform_rows(h)
        return z, shard(z, comm)

    @torch.no_grad()
    def adopt_partition(self, h: Tensor, labels: Tensor) -> HeadResult:
        """Refit the mixture to a given partition of the nodes (one M-step from its one-hot
        responsibilities, no EM) on the encoder's output ``h`` ``(N, D)``: component ``j`` is the
        Gaussian of the nodes labelled ``j``. The result's ``pred`` is ``labels`` ``(N,)``, whatever
        the mixture's own argmax (its densities and responsibilities stay the mixture's)."""
        z = self.transform.transform_rows(h)
        labels = torch.as_tensor(labels).long().cpu()
        one_hot = torch.nn.functional.one_hot(labels, self.mixture.n_components).to(z.dtype)
        self.mixture.initialize_from_responsibilities(z, one_hot.to(z.device))
        self.mixture.to(z.device)
        result, self.resp = summarise(self.mixture, z, self._communicator())
        result.pred = labels
        result.cluster_sizes = cluster_sizes(labels, self.mixture.n_components)
        return result

    def recompute_responsibilities(self, h: Tensor) -> None:
        """The warm start recomputed from the current transform and mixture on the encoder's
        output ``h``: what the refit that made this state left behind."""
        z = self.transform.transform_rows(h)
        self.mixture.to(z.device)
        _, self.resp = summarise(self.mixture, z, self._communicator())

    # ------------------------------------------------------------------ what the fixed head gives
    def gmm_input(self, h: Tensor) -> Tensor:
        """``(N, d)`` float64: the mixture's input for encoder outputs ``h`` ``(N, D)``, no gradient."""
        return self.transform.transform_rows(h)

    def responsibilities(self, h: Tensor) -> Tensor:
        """``(n, K)`` posterior of each component for encoder outputs ``h`` ``(n, D)`` through the
        fixed transform and mixture; differentiable in ``h``, in ``h``'s dtype."""
        self.mixture.to(h.device)
        log_prob = self.mixture.weighted_log_prob(self.transform(h.double()))
        return torch.softmax(log_prob, dim=1).to(h.dtype)

    def nll(self, h: Tensor) -> Tensor:
        """Mean negative log-likelihood of encoder outputs ``h`` ``(n, D)`` under the fixed head;
        differentiable in ``h``. Returns a scalar."""
        self.mixture.to(h.device)
        return -self.mixture.score_samples(self.transform(h)).mean()

    def variance_scale(self) -> float:
        """The mixture's mean variance in the encoder's units (the scale-free GMM term's factor)."""
        return self.mixture.mean_variance() * self.transform.variance_factor

    # ------------------------------------------------------------------ history and restores
    def record(self, row: dict) -> None:
        """Append one refit's row (epoch, label-free numbers, reported metrics) to the history."""
        self.history.append(row)

    def snapshot(self) -> dict:
        """Copies of the mixture and the transform (the responsibilities follow from them)."""
        state = self.state_dict()
        return copy.deepcopy({key: state[key] for key in ("mixture", "transform")})

    def restore(self, snapshot: dict, h: Tensor, epoch: int) -> None:
        """Go back to a :meth:`snapshot` taken at ``epoch``; ``h`` is the restored encoder's output
        for every node (the responsibilities are recomputed from it)."""
        if snapshot["mixture"] is not None:
            self.mixture.load_state_dict(snapshot["mixture"])
        if snapshot["transform"] is not None:
            self.transform.load_state_dict(snapshot["transform"])
        self.recompute_responsibilities(h)
        self.restored_epoch = int(epoch)

    def note_restored(self, epoch: int) -> None:
        """Record that training went back to the encoder of ``epoch``."""
        self.restored_epoch = int(epoch)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """Everything the head holds: mixture, transform, warm start, K table, history, restore."""
        return {
            "mixture": self.mixture.state_dict() if self.mixture.is_fitted else None,
            "transform": self.transform.state_dict() if self.transform.is_fitted else None,
            "resp": None if self.resp is None else self.resp.cpu(),
            "bic_table": self.bic_table,
            "history": list(self.history),
            "restored_epoch": self.restored_epoch,
        }

    def load_state_dict(self, state: dict) -> GMMHead:
        if state["mixture"] is not None:
            self.mixture.load_state_dict(state["mixture"])
        if state["transform"] is not None:
            self.transform.load_state_dict(state["transform"])
        self.resp = state["resp"]
        self.bic_table = state.get("bic_table")
        self.history = list(state.get("history") or [])
        self.restored_epoch = state.get("restored_epoch")
        return self


def refit_metrics(result: HeadResult, edge_index: Tensor) -> dict:
    """The label-free numbers every refit logs: log-likelihood, BIC, K, the smallest and largest
    cluster, and the partition's modularity on the input graph ``edge_index`` (comparable across
    epochs: the graph never changes)."""
    sizes = result.cluster_sizes
    return {
        "gmm/log_likelihood": result.log_likelihood,
        "gmm/bic": result.bic,
        "gmm/k": float(result.k),
        "gmm/min_cluster_size": float(min(sizes)),
        "gmm/max_cluster_size": float(max(sizes)),
        "gmm/modularity": modularity(edge_index, result.pred, result.pred.numel()),
    }


@contextmanager
def _quiet(short: bool):
    """An epoch-end refit stops after a few EM iterations by design: no ConvergenceWarning for it."""
    with warnings.catch_warnings():
        if short:
            warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@contextmanager
def overrides(gmm: GaussianMixture, **values):
    """Temporarily change fit settings (``max_iter``, ``warm_start``, ...) of a mixture."""
    saved = {name: getattr(gmm, name) for name in values}
    gmm.set_params(**values)
    try:
        yield gmm
    finally:
        gmm.set_params(**saved)


def _broadcast_transform(transform: EmbeddingTransform, comm) -> None:
    if comm.world_size == 1:
        return
    for name in ("mean_", "components_", "scale_", "spread_"):
        value = getattr(transform, name)
        if value is not None:
            setattr(transform, name, comm.broadcast_from_zero(value))


def shard(t: Tensor, comm) -> Tensor:
    """This rank's rows: EM statistics are summed over ranks, so each node must count once."""
    return t[comm.rank :: comm.world_size]


def summarise(gmm: GaussianMixture, z_all: Tensor, comm) -> tuple[HeadResult, Tensor]:
    """One pass over every node's log-probabilities: assignments, mean log-likelihood and BIC (of
    this rank's shard, summed over ranks); returns the result and this rank's responsibilities."""
    log_prob = gmm.log_prob_table(z_all)
    log_norm = torch.logsumexp(log_prob, dim=1)
    pred = log_prob.argmax(1)
    log_likelihood, bic = gmm.score_and_bic(shard(log_norm, comm))
    result = HeadResult(
        k=gmm.n_components,
        log_likelihood=log_likelihood,
        bic=bic,
        cluster_sizes=cluster_sizes(pred, gmm.n_components),
        pred=pred.cpu(),
        z=z_all,
        log_prob=log_prob,
    )
    resp = shard((log_prob - log_norm[:, None]).exp_(), comm)  # one (N, K) temporary, not two
    return result, resp


def row_summaries(log_prob: Tensor, rows: int = 1 << 16) -> tuple[Tensor, ...]:
    """``(N,)`` most responsible component, its responsibility, the responsibilities' entropy and
    the log-density of every row of an ``(N, K)`` table of ``log(weight_k p_k(z_i))``, a block of
    rows at a time: no ``(N, K)`` temporary."""
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


def check_ranks_agree(gmm: GaussianMixture, comm) -> None:
    """Under DDP every rank must hold the same mixture; a mismatch is a bug, not noise."""
    if comm.world_size == 1:
        return
    flat = torch.cat([gmm.weights_.reshape(-1), gmm.means_.reshape(-1), gmm.covariances_.reshape(-1)])
    spread = (comm.all_reduce_sum(flat) / comm.world_size - flat).abs().max()
    disagree = comm.all_reduce_sum((spread > 1e-9 * flat.abs().max().clamp_min(1.0)).double().reshape(1))
    if float(disagree) > 0:
        raise RuntimeError(f"GMM parameters differ across DDP ranks (max deviation {float(spread):.3g})")
