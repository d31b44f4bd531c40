"""``GaussianMixture``: scikit-learn's estimator, in PyTorch, chunked, DDP-exact and NaN-proof.

The API and the numbers are scikit-learn's (``fit``, ``predict``, ``predict_proba``,
``score_samples``, ``score``, ``bic``, ``aic``; ``weights_``, ``means_``, ``covariances_``,
``precisions_cholesky_``, ``lower_bound_`` = mean log-likelihood, ...): from the same initial
parameters the fitted parameters agree to round-off in float64. Differences, all deliberate:

* EM runs over chunks of rows through :mod:`gnngmm.mixture.stats`, so memory is
  O(N*K + chunk*K*d) and data may come as a list of tensors (one shard per DDP rank, with
  ``comm`` summing the statistics across ranks).
* EM runs in ``dtype`` (float64 by default) whatever the input dtype; float32 input is upcast.
  ``dtype=torch.float32`` is allowed for speed but loses about 7 digits on covariances.
* A component whose responsibility mass falls below ``min_component_size`` samples is re-seeded
  at the worst-explained sample (highest negative log-likelihood) with a logged warning, instead
  of collapsing; a covariance whose Cholesky factorisation fails gets 10x more ``reg_covar``
  per retry, and past the bound a :class:`GMMNumericalError` names the component.
"""

from __future__ import annotations

import inspect
import logging
import math
import secrets
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from gnngmm.mixture import kmeans as km
from gnngmm.mixture.distributed import LOCAL, Communicator
from gnngmm.mixture.gaussian import (
    check_covariance_type,
    covariances_from_precision_cholesky,
    log_gaussian_prob,
    precision_cholesky,
    precision_cholesky_from_precisions,
    precisions_from_cholesky,
)
from gnngmm.mixture.gram import MAX_GRAM_FEATURES, FullCovarianceStep
from gnngmm.mixture.stats import SufficientStats, accumulate, m_step

log = logging.getLogger(__name__)

INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")
_PARAMS = ("weights_", "means_", "covariances_", "precisions_cholesky_")


class GaussianMixture:
    """Gaussian mixture fitted by EM; see the module docstring for what differs from sklearn."""

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: str = "full",
        tol: float = 1e-3,
        reg_covar: float = 1e-6,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state: int | torch.Generator | None = None,
        warm_start: bool = False,
        dtype: torch.dtype = torch.float64,
        device: str | torch.device | None = None,
        chunk_size: int | None = None,
        comm: Communicator | None = None,
        max_reg_covar: float = 1.0,
        min_component_size: float = 1.0,
        seeding_sample_size: int = 100_000,
        gram: bool | None = None,
        screen: bool = True,
        kmeans_n_init: int = 1,
    ):
        if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)) or n_components < 1:
            raise ValueError(f"n_components (gmm.k) must be an integer >= 1, got {n_components!r}")
        if init_params not in INIT_PARAMS:
            raise ValueError(f"init_params={init_params!r} is not one of {', '.join(INIT_PARAMS)}")
        if reg_covar < 0:
            raise ValueError(f"reg_covar must be >= 0, got {reg_covar!r}")
        if max_iter < 0 or n_init < 1:
            raise ValueError(f"need max_iter >= 0 and n_init >= 1, got {max_iter!r}, {n_init!r}")
        self.n_components = int(n_components)
        self.covariance_type = check_covariance_type(covariance_type)
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.dtype = dtype
        self.device = torch.device(device) if device is not None else None
        self.chunk_size = chunk_size
        self.comm = comm or LOCAL
        self.max_reg_covar = max_reg_covar
        self.min_component_size = min_component_size
        self.seeding_sample_size = seeding_sample_size
        self.gram = gram  # full covariances through quadratic features; None: when d <= 128
        self.screen = screen  # float32 screening of negligible (row, component) pairs, K > 8
        self.kmeans_n_init = max(1, int(kmeans_n_init))  # k-means restarts inside the kmeans init
        self.n_reseeded_ = 0
        self._generator = None

    # ------------------------------------------------------------------ public API
    def get_params(self, deep: bool = True) -> dict:
        """Every constructor argument by name, as scikit-learn's ``get_params``: what ``clone`` copies."""
        return {name: getattr(self, name) for name in inspect.signature(type(self).__init__).parameters if name != "self"}

    def set_params(self, **params) -> GaussianMixture:
        unknown = sorted(set(params) - set(self.get_params()))
        if unknown:
            raise ValueError(f"unknown GaussianMixture parameter(s) {unknown}; valid: {sorted(self.get_params())}")
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def clone(self, **overrides) -> GaussianMixture:
        """An unfitted mixture with the same settings, some of them overridden (e.g. ``n_components``)."""
        return type(self)(**{**self.get_params(), **overrides})

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "precisions_cholesky_")

    @torch.no_grad()
    def fit(self, X, y=None) -> GaussianMixture:
        """EM from ``n_init`` initialisations (one when warm-starting); keep the best lower bound."""
        chunks = self._chunks(X, validate=True)
        n_total = self._count(chunks)
        if n_total < self.n_components:
            raise ValueError(
                f"gmm.k={self.n_components} exceeds the number of samples ({n_total}); "
                f"use gmm.k <= {n_total}"
            )
        if n_total < 2:
            raise ValueError("a Gaussian mixture needs at least 2 samples, got 1")
        self.n_features_in_ = chunks[0].shape[1]
        self._center = None  # data mean, recomputed per fit (the quadratic-feature path centres on it)
        do_init = not (self.warm_start and self.is_fitted)
        n_init = self.n_init if do_init else 1
        generator = self._rng()
        best, best_bound, best_history, best_n_iter, best_converged = None, -math.inf, [], 0, False
        for _ in range(n_init):
            if do_init:
                self._initialize(chunks, n_total, generator)
            bound = -math.inf if do_init else self.lower_bound_
            history, converged, n_iter = [], False, 0
            for n_iter in range(1, self.max_iter + 1):
                previous = bound
                stats, worst = self._e_step(chunks)
                bound = float(stats.log_likelihood / stats.count)
                self._m_step(stats, worst)
                history.append(bound)
                if abs(bound - previous) < self.tol:
                    converged = True
                    break
            if best is None or bound > best_bound:
                best = {name: getattr(self, name) for name in _PARAMS}
                best_bound, best_history, best_n_iter, best_converged = bound, history, n_iter, converged
        for name, value in best.items():
            setattr(self, name, value)
        self.converged_ = best_converged
        self.n_iter_ = best_n_iter
        self.lower_bound_ = best_bound
        self.lower_bounds_ = best_history
        if not self.converged_ and self.max_iter > 0:
            # A warm-started refit takes a few iterations by design: only a cold fit is worth a line.
            level = logging.DEBUG if self.warm_start else logging.INFO
            log.log(level, "EM stopped after max_iter=%d iterations before converging (tol=%g)", self.max_iter, self.tol)
        return self

    @torch.no_grad()
    def initialize_from_responsibilities(self, X, resp) -> GaussianMixture:
        """Set the parameters by one M-step from given responsibilities (rows sum to one).

        This warm-starts a mixture on data whose coordinates changed (a new embedding of the same
        nodes): the previous assignments carry over, whatever the new basis. A following ``fit``
        with ``warm_start=True`` continues EM from here.
        """
        chunks = self._chunks(X, validate=True)
        resp_all = self._to_compute(resp)
        if resp_all.dim() != 2 or resp_all.shape[0] != sum(c.shape[0] for c in chunks):
            raise ValueError(f"resp must have one row per sample of X, got shape {tuple(resp_all.shape)}")
        if resp_all.shape[1] != self.n_components:
            raise ValueError(f"resp has {resp_all.shape[1]} columns, the mixture {self.n_components} components")
        self.n_features_in_ = chunks[0].shape[1]
        resp_chunks = list(resp_all.split([c.shape[0] for c in chunks]))
        center = self.comm.all_reduce_sum(sum(c.sum(0) for c in chunks)) / self._count(chunks)
        shift = center.expand(self.n_components, -1).contiguous()
        nk, means, cov = m_step(self._resp_stats(chunks, resp_chunks, shift), shift, self.covariance_type, self.reg_covar)
        # A second pass centred on these means keeps the covariances free of cancellation.
        shift = means if self.covariance_type != "tied" else means.mean(0).expand_as(means)
        nk, means, cov = m_step(self._resp_stats(chunks, resp_chunks, shift), shift, self.covariance_type, self.reg_covar)
        self._set_covariances(nk / nk.sum(), means, cov)
        self.lower_bound_ = -math.inf
        self.converged_ = False
        self.n_iter_ = 0
        return self

    def fit_predict(self, X, y=None) -> Tensor:
        return self.fit(X).predict(X)

    def predict(self, X) -> Tensor:
        return self._map(X, lambda lp: lp.argmax(1))

    def predict_proba(self, X) -> Tensor:
        return self._map(X, lambda lp: torch.softmax(lp, dim=1))

    def score_samples(self, X) -> Tensor:
        """Per-sample log-likelihood ``log p(x)``; differentiable with respect to ``X``."""
        return self._map(X, lambda lp: torch.logsumexp(lp, dim=1), grad=True)

    def score(self, X, y=None) -> float:
        """Mean log-likelihood over all samples (all ranks when distributed)."""
        total, count = self._total_log_likelihood(X)
        return float(total / count)

    def bic(self, X) -> float:
        return self._bic(*self._total_log_likelihood(X))

    def aic(self, X) -> float:
        total, _ = self._total_log_likelihood(X)
        return float(-2.0 * total + 2.0 * self.n_parameters())

    def log_prob_table(self, X) -> Tensor:
        """``log w_k + log N(x | k)`` for every sample and component, chunked, for evaluation (no
        gradient): one pass from which assignments, responsibilities and ``log p(x)`` all follow."""
        return self._map(X, lambda lp: lp)

    def score_and_bic(self, sample_log_likelihood: Tensor) -> tuple[float, float]:
        """Mean log-likelihood and BIC from this rank's per-sample ``log p(x)`` (summed over ranks),
        for callers that already hold them: the data is not scored again."""
        total, count = self._reduce_log_likelihood(sample_log_likelihood)
        return float(total / count), self._bic(total, count)

    def weighted_log_prob(self, X) -> Tensor:
        """``log w_k + log N(x | k)`` for each sample and component, differentiable in ``X``."""
        self._check_fitted()
        x = self._to_compute(X)
        return log_gaussian_prob(x, self.means_, self.precisions_cholesky_, self.covariance_type) + self.weights_.log()

    def n_parameters(self) -> int:
        k, d = self.means_.shape
        cov = {
            "full": k * d * (d + 1) / 2.0,
            "diag": k * d,
            "tied": d * (d + 1) / 2.0,
            "spherical": k,
            "isotropic": 1,
        }[self.covariance_type]
        return int(cov + d * k + k - 1)

    def mean_variance(self) -> float:
        """Average variance per dimension over components: the mixture's length scale squared."""
        self._check_fitted()
        cov = self.covariances_
        if self.covariance_type in ("full", "tied"):
            cov = cov.diagonal(dim1=-2, dim2=-1)
        return float(cov.mean())

    @property
    def precisions_(self) -> Tensor:
        return precisions_from_cholesky(self.precisions_cholesky_, self.covariance_type)

    def state_dict(self) -> dict:
        """Fitted parameters and fit diagnostics, for checkpoints (tensors on CPU)."""
        self._check_fitted()
        state = {name: getattr(self, name).detach().cpu() for name in _PARAMS}
        state.update(
            n_components=self.n_components,
            covariance_type=self.covariance_type,
            converged_=bool(self.converged_),
            n_iter_=int(self.n_iter_),
            lower_bound_=float(self.lower_bound_),
        )
        return state

    def load_state_dict(self, state: dict) -> GaussianMixture:
        if state["covariance_type"] != self.covariance_type:
            raise ValueError(
                f"checkpoint GMM has covariance_type={state['covariance_type']!r}, "
                f"this one {self.covariance_type!r}"
            )
        self.n_components = int(state["n_components"])
        device = self.device or torch.device("cpu")
        for name in _PARAMS:
            setattr(self, name, state[name].to(device=device, dtype=self.dtype))
        self.n_features_in_ = self.means_.shape[1]
        self.converged_ = state["converged_"]
        self.n_iter_ = state["n_iter_"]
        self.lower_bound_ = state["lower_bound_"]
        return self

    def to(self, device) -> GaussianMixture:
        self.device = torch.device(device)
        if self.is_fitted:
            for name in _PARAMS:
                setattr(self, name, getattr(self, name).to(self.device))
        if getattr(self, "_center", None) is not None:  # the quadratic-feature path's centre must travel too
            self._center = self._center.to(self.device)
        return self

    # ------------------------------------------------------------------ EM internals
    def _e_step(self, chunks: Sequence[Tensor]) -> tuple[SufficientStats, Tensor]:
        """Statistics under the current parameters, summed over chunks and ranks, and the
        worst-explained samples (highest NLL, up to K of them, all ranks) for re-seeding."""
        shift = self._shift()
        log_weights = self.weights_.log()
        full_step = self._full_step(chunks, log_weights)
        total, worst_nll, worst_x = None, [], []
        for x in chunks:
            if full_step is not None:
                stats, log_norm = full_step.chunk(x, shift)
            else:
                log_prob = log_gaussian_prob(x, self.means_, self.precisions_cholesky_, self.covariance_type)
                log_prob = log_prob + log_weights
                log_norm = torch.logsumexp(log_prob, dim=1)
                resp = torch.exp(log_prob - log_norm[:, None])
                stats = accumulate(x, resp, shift, self.covariance_type)
            stats.log_likelihood = log_norm.sum()
            total = stats if total is None else total + stats
            top = torch.topk(-log_norm, min(self.n_components, x.shape[0]))
            worst_nll.append(top.values)
            worst_x.append(x[top.indices])
        total = total.all_reduce(self.comm.all_reduce_sum)
        nll = self.comm.all_gather_rows(torch.cat(worst_nll))
        rows = self.comm.all_gather_rows(torch.cat(worst_x))
        order = torch.argsort(nll, descending=True, stable=True)[: self.n_components]
        return total, rows[order]

    def _full_step(self, chunks, log_weights) -> FullCovarianceStep | None:
        """The quadratic-feature path (full covariances, d <= 128 unless ``gram`` says otherwise)."""
        d = chunks[0].shape[1]
        use = self.gram if self.gram is not None else d <= MAX_GRAM_FEATURES
        if self.covariance_type != "full" or not use:
            return None
        center = getattr(self, "_center", None)
        if center is None or center.shape[0] != d or center.device != chunks[0].device:
            self._center = self.comm.all_reduce_sum(sum(c.sum(0) for c in chunks)) / self._count(chunks)
        screen = self.dtype == torch.float64 and self.screen
        return FullCovarianceStep(self.means_, self.precisions_cholesky_, log_weights, self._center, screen)

    def _m_step(self, stats: SufficientStats, worst: Tensor | None) -> None:
        nk, means, cov = m_step(stats, self._shift(), self.covariance_type, self.reg_covar)
        weights = nk / nk.sum()
        if worst is not None and self.n_components > 1:
            weights, means, cov = self._reseed(stats.nk, weights, means, cov, worst)
        self._set_covariances(weights, means, cov)

    def _reseed(self, nk, weights, means, cov, worst):
        empty = torch.nonzero(nk < self.min_component_size).flatten().tolist()
        if not empty or len(empty) == self.n_components:
            return weights, means, cov
        keep = torch.ones_like(weights, dtype=torch.bool)
        keep[empty] = False
        w = weights[keep] / weights[keep].sum()
        means, weights, cov = means.clone(), weights.clone(), cov.clone()
        for j, k in enumerate(empty):
            means[k] = worst[j % worst.shape[0]]
            weights[k] = 1.0 / self.n_components
            if self.covariance_type != "tied":
                shape = (-1,) + (1,) * (cov.dim() - 1)
                cov[k] = (w.reshape(shape) * cov[keep]).sum(0)
        self.n_reseeded_ += len(empty)
        log.warning(
            "GMM: component(s) %s held fewer than %g samples; re-seeded at the worst-explained points",
            empty,
            self.min_component_size,
        )
        return weights / weights.sum(), means, cov

    def _set_covariances(self, weights, means, cov) -> None:
        def escalated(k, added):
            log.warning(
                "GMM: covariance of component %d was singular; added %.3g to its diagonal", k, added
            )

        scale = cov.diagonal(dim1=-2, dim2=-1).mean() if cov.dim() >= 2 and self.covariance_type != "diag" else cov.mean()
        limit = max(self.max_reg_covar, 1e-3 * float(scale.abs())) if torch.isfinite(scale) else self.max_reg_covar
        prec_chol, cov = precision_cholesky(
            cov, self.covariance_type, reg_covar=self.reg_covar, max_reg_covar=limit, on_escalate=escalated
        )
        self.weights_, self.means_, self.covariances_, self.precisions_cholesky_ = weights, means, cov, prec_chol

    def _shift(self) -> Tensor:
        """Centre for the second moments: the current means (tied: their weighted average)."""
        if self.covariance_type == "tied":
            center = self.weights_ @ self.means_
            return center.expand_as(self.means_)
        return self.means_

    def _initialize(self, chunks: Sequence[Tensor], n_total: int, generator: torch.Generator) -> None:
        k, d = self.n_components, chunks[0].shape[1]
        device = chunks[0].device
        if any(v is None for v in (self.weights_init, self.means_init, self.precisions_init)):
            stats, shift = self._initial_stats(chunks, generator)
            nk, means, cov = m_step(stats, shift, self.covariance_type, self.reg_covar)
            self._set_covariances(nk / n_total, means, cov)
        if self.weights_init is not None:
            weights = self._param(self.weights_init, (k,), "weights_init", device)
            if bool((weights < 0).any()) or abs(float(weights.sum()) - 1.0) > 1e-6:
                raise ValueError("weights_init must be non-negative and sum to 1")
            self.weights_ = weights
        if self.means_init is not None:
            self.means_ = self._param(self.means_init, (k, d), "means_init", device)
        if self.precisions_init is not None:
            shape = {"full": (k, d, d), "tied": (d, d), "diag": (k, d)}.get(self.covariance_type, (k,))
            precisions = self._param(self.precisions_init, shape, "precisions_init", device)
            self.precisions_cholesky_ = precision_cholesky_from_precisions(precisions, self.covariance_type)
            self.covariances_ = covariances_from_precision_cholesky(self.precisions_cholesky_, self.covariance_type)

    def _resp_stats(self, chunks, resp_chunks, shift) -> SufficientStats:
        total = None
        for x, r in zip(chunks, resp_chunks):
            s = accumulate(x, r, shift, self.covariance_type)
            total = s if total is None else total + s
        return total.all_reduce(self.comm.all_reduce_sum)

    def _initial_stats(self, chunks, generator) -> tuple[SufficientStats, Tensor]:
        """Statistics of the initial responsibilities, computed as scikit-learn defines them."""
        k = self.n_components
        if self.init_params == "random":
            center = self.comm.all_reduce_sum(sum(c.sum(0) for c in chunks)) / self._count(chunks)
            shift = center.expand(k, -1).contiguous()
            resp = [torch.rand(x.shape[0], k, generator=generator, dtype=x.dtype).to(x.device) for x in chunks]
            resp = [r / r.sum(1, keepdim=True) for r in resp]
            return self._resp_stats(chunks, resp, shift), shift
        sample = km.seeding_sample(chunks, self.seeding_sample_size, generator, self.comm)
        if self.init_params == "random_from_data":
            seeds = sample[torch.randperm(sample.shape[0], generator=generator)[:k].to(sample.device)]
        else:
            seeds = sample[km.kmeans_plusplus(sample, k, generator)]
        if self.init_params in ("random_from_data", "k-means++"):
            # One-hot responsibilities on the k seed points: each component is one sample.
            zeros = seeds.new_zeros(())
            sxx_shape = {"full": (k,) + seeds.shape[1:] * 2, "tied": seeds.shape[1:] * 2}.get(
                self.covariance_type, seeds.shape
            )
            stats = SufficientStats(
                count=zeros + k, log_likelihood=zeros, nk=seeds.new_ones(k),
                sx=torch.zeros_like(seeds), sxx=seeds.new_zeros(sxx_shape),
            )
            return stats, seeds
        if self.kmeans_n_init > 1 and sample.shape[0] < self._count(chunks):
            # More rows than the sample: the restarts compete on the sample (identical on every
            # rank, so no all-reduce) and only the winner converges on every row. Ten full-data
            # restarts took over 15 minutes at 2.4M rows on one CPU thread.
            centers, inertia = km.lloyd([sample], seeds)
            for _ in range(self.kmeans_n_init - 1):
                other, other_inertia = km.lloyd([sample], sample[km.kmeans_plusplus(sample, k, generator)])
                if other_inertia < inertia:
                    centers, inertia = other, other_inertia
            centers, inertia = km.lloyd(chunks, centers, self.comm)
        else:
            centers, inertia = km.lloyd(chunks, seeds, self.comm)
            for _ in range(self.kmeans_n_init - 1):  # more k-means restarts: keep the lowest inertia
                seeds = sample[km.kmeans_plusplus(sample, k, generator)]
                other, other_inertia = km.lloyd(chunks, seeds, self.comm)
                if other_inertia < inertia:
                    centers, inertia = other, other_inertia
        shift = centers if self.covariance_type != "tied" else centers.mean(0).expand_as(centers)
        resp = [torch.nn.functional.one_hot(km.assign(x, centers), k).to(x.dtype) for x in chunks]
        return self._resp_stats(chunks, resp, shift), shift

    # ------------------------------------------------------------------ helpers
    def _rng(self) -> torch.Generator:
        if isinstance(self.random_state, torch.Generator):
            return self.random_state
        if self._generator is None or not self.warm_start:
            # no random_state: fresh OS entropy; torch.seed() would reseed the global RNG as a side effect
            seed = self.random_state if self.random_state is not None else secrets.randbits(63)
            self._generator = torch.Generator().manual_seed(int(seed))
        return self._generator

    def _param(self, value, shape, name, device) -> Tensor:
        t = torch.as_tensor(np.asarray(value) if not isinstance(value, Tensor) else value)
        if tuple(t.shape) != tuple(shape):
            raise ValueError(f"{name} has shape {tuple(t.shape)}, expected {tuple(shape)}")
        return t.to(dtype=self.dtype, device=device)

    def _device_for(self, X) -> torch.device:
        if self.device is not None:
            return self.device
        if isinstance(X, Tensor):
            return X.device
        if isinstance(X, (list, tuple)) and X and isinstance(X[0], Tensor):
            return X[0].device
        return torch.device("cpu")

    def _default_chunk(self, d: int) -> int:
        """Rows per chunk so that the per-chunk temporaries stay near 256 MB."""
        if self.chunk_size:
            return int(self.chunk_size)
        k = max(1, self.n_components)
        if self.covariance_type == "full" and (self.gram if self.gram is not None else d <= MAX_GRAM_FEATURES):
            per_row = 12 * d * (d + 1) // 2 + 8 * 6 * k  # quadratic features (float32 + float64)
        else:
            per_row = 8 * 4 * k * max(1, d)  # (n, K, d) tensors
        return int(min(65536, max(256, (256 * 2**20) // per_row)))

    def _to_compute(self, X) -> Tensor:
        if not isinstance(X, Tensor):
            X = torch.as_tensor(np.asarray(X))
        return X.to(device=self._device_for(X), dtype=self.dtype)

    def _chunks(self, X, validate: bool = False) -> list[Tensor]:
        parts = list(X) if isinstance(X, (list, tuple)) else [X]
        parts = [self._to_compute(p) for p in parts]
        out = []
        for i, p in enumerate(parts):
            if p.dim() != 2:
                raise ValueError(f"GMM input must be 2-D (n_samples, n_features), got shape {tuple(p.shape)}")
            if validate:
                _check_finite(p, i if len(parts) > 1 else None)
            out.extend(p.split(self._default_chunk(p.shape[1])) if p.shape[0] else [])
        if not out:
            raise ValueError("GMM input is empty (0 samples)")
        if self.is_fitted and out[0].shape[1] != self.means_.shape[1]:
            raise ValueError(f"GMM input has {out[0].shape[1]} features, the mixture {self.means_.shape[1]}")
        return out

    def _count(self, chunks) -> int:
        local = chunks[0].new_tensor([float(sum(c.shape[0] for c in chunks))])
        return int(self.comm.all_reduce_sum(local).item())

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise RuntimeError("this GaussianMixture is not fitted yet; call fit() first")

    def _map(self, X, fn, grad: bool = False) -> Tensor:
        """``fn`` of the (chunk, K) log-probability tables. Non-finite rows are rejected as ``fit``
        rejects them: a NaN row would otherwise get a real-looking cluster."""
        self._check_fitted()
        with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
            chunks = self._chunks(X, validate=True)
            if not torch.is_grad_enabled():  # evaluation only: the quadratic-feature path when it applies
                step = self._full_step(chunks, self.weights_.log())
                if step is not None:
                    return torch.cat([fn(step.log_prob(x)) for x in chunks])
            return torch.cat([fn(self.weighted_log_prob(x)) for x in chunks])

    def _total_log_likelihood(self, X) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            return self._reduce_log_likelihood(self.score_samples(X))

    def _reduce_log_likelihood(self, ll: Tensor) -> tuple[Tensor, Tensor]:
        """``(sum of log p(x), sample count)`` over all ranks."""
        packed = self.comm.all_reduce_sum(torch.stack([ll.sum(), ll.new_tensor(float(ll.shape[0]))]))
        return packed[0], packed[1]

    def _bic(self, total: Tensor, count: Tensor) -> float:
        return float(-2.0 * total + self.n_parameters() * math.log(float(count)))


def _check_finite(x: Tensor, part: int | None) -> None:
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        rows = torch.nonzero(bad.any(1)).flatten()
        where = f" (chunk {part})" if part is not None else ""
        raise ValueError(
            f"GMM input contains {int(bad.sum())} non-finite values (NaN or inf) in "
            f"{rows.numel()} rows{where}, first at row {int(rows[0])}"
        )
