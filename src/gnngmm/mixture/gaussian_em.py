"""``GaussianEM``: the Gaussian components' side of EM, the hooks :class:`~gnngmm.mixture.base.BaseMixture` calls.

Initialisation (:mod:`gnngmm.mixture.initialization`), the E-step and M-step with re-seeding and
the covariance factorisation (:mod:`gnngmm.mixture.em`), and the log-probability tables, either
direct (:func:`gnngmm.mixture.gaussian.log_gaussian_prob`) or for full covariances through quadratic
features (:class:`gnngmm.mixture.gram.FullCovarianceStep`). The parameters are the attributes
``weights_`` ``(K,)``, ``means_`` ``(K, d)``, ``covariances_`` and ``precisions_cholesky_`` (``(K, d, d)``
full, ``(d, d)`` tied, ``(K, d)`` diag, ``(K,)`` spherical and isotropic), compute-dtype tensors
during a fit. :class:`~gnngmm.mixture.GaussianMixture` adds the constructor and the public API.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import partial
from typing import ClassVar

import torch
from torch import Tensor

from gnngmm.mixture.base import BaseMixture
from gnngmm.mixture.chunks import data_mean, default_chunk_rows
from gnngmm.mixture.em import chunk_stats, covariance_shift, e_step, factorise, reseed
from gnngmm.mixture.gaussian import (
    covariances_from_precision_cholesky,
    log_gaussian_prob,
    precision_cholesky_from_precisions,
)
from gnngmm.mixture.gram import MAX_GRAM_FEATURES, FullCovarianceStep
from gnngmm.mixture.initialization import given_parameters, initial_stats
from gnngmm.mixture.stats import SufficientStats, m_step

PARAMETERS = ("weights_", "means_", "covariances_", "precisions_cholesky_")


class GaussianEM(BaseMixture):
    """EM for Gaussian components; reads the settings of :class:`~gnngmm.mixture.GaussianMixture`."""

    _parameter_names: ClassVar[tuple[str, ...]] = PARAMETERS
    _caches: ClassVar[tuple[str, ...]] = ("_center",)  # the data mean the quadratic-feature path centres on

    def _begin_fit(self, chunks: Sequence[Tensor]) -> dict[str, Tensor | None]:
        """The given initial parameters, checked (:func:`~gnngmm.mixture.initialization.given_parameters`);
        the data-mean cache and the re-seeding count reset."""
        init = given_parameters(
            self.weights_init, self.means_init, self.precisions_init, covariance_type=self.covariance_type,
            n_components=self.n_components, n_features=chunks[0].shape[1], dtype=self._compute_dtype(),
            device=chunks[0].device,
        )  # fmt: skip
        self._center = None  # data mean, recomputed per fit (the quadratic-feature path centres on it)
        self.n_reseeded_ = 0
        return init

    def _initialize(self, chunks: Sequence[Tensor], n_total: int, generator: torch.Generator, init: dict) -> None:
        """Initial parameters: from the responsibilities ``init_params`` defines, then any given ones."""
        if any(v is None for v in init.values()):
            stats, shift = initial_stats(
                chunks, init_params=self.init_params, n_components=self.n_components,
                covariance_type=self.covariance_type, generator=generator, comm=self._comm,
                seeding_sample_size=self.seeding_sample_size, kmeans_n_init=self.kmeans_n_init,
            )  # fmt: skip
            nk, means, cov = m_step(stats, shift, self.covariance_type, self.reg_covar)
            if init["precisions"] is None:
                self._set_covariances(nk / n_total, means, cov)
            else:  # as scikit-learn: the given precisions replace these covariances unfactorised
                self.weights_, self.means_ = nk / n_total, means
        if init["weights"] is not None:
            self.weights_ = init["weights"]
        if init["means"] is not None:
            self.means_ = init["means"]
        if init["precisions"] is not None:
            self.precisions_cholesky_ = precision_cholesky_from_precisions(init["precisions"], self.covariance_type)
            self.covariances_ = covariances_from_precision_cholesky(self.precisions_cholesky_, self.covariance_type)

    def _em_step(self, chunks: Sequence[Tensor]) -> float:
        """One E-step and M-step; returns the mean log-likelihood under the parameters the E-step used."""
        stats, worst = self._e_step(chunks)
        lower_bound = float(stats.log_likelihood / stats.count)
        self._m_step(stats, worst)
        return lower_bound

    def _e_step(self, chunks: Sequence[Tensor]) -> tuple[SufficientStats, Tensor | None]:
        """:func:`~gnngmm.mixture.em.e_step` under the current parameters (``recover``: with up to K
        worst-explained rows for re-seeding)."""
        shift = self._shift()
        log_weights = self.weights_.log()
        full_step = self._full_step(chunks, log_weights, self.means_, self.precisions_cholesky_)
        if full_step is not None:
            step = partial(full_step.chunk, shift=shift)
        else:
            step = partial(
                chunk_stats, log_weights=log_weights, means=self.means_, prec_chol=self.precisions_cholesky_,
                covariance_type=self.covariance_type, shift=shift,
            )  # fmt: skip
        n_worst = self.n_components if self.degenerate == "recover" else 0
        return e_step(chunks, step, self._comm, n_worst)

    def _m_step(self, stats: SufficientStats, worst: Tensor | None) -> None:
        """New parameters from the E-step's statistics (re-seeding light components when ``worst`` is given)."""
        nk, means, cov = m_step(stats, self._shift(), self.covariance_type, self.reg_covar)
        weights = nk / nk.sum()
        if worst is not None and self.n_components > 1:
            weights, means, cov, moved = reseed(
                stats.nk, weights, means, cov, worst, n_components=self.n_components,
                min_size=self.min_component_size, covariance_type=self.covariance_type,
            )  # fmt: skip
            if moved:
                self.n_reseeded_ = getattr(self, "n_reseeded_", 0) + len(moved)
        self._set_covariances(weights, means, cov)

    def _set_covariances(self, weights: Tensor, means: Tensor, cov: Tensor) -> None:
        """Set the parameters, the covariances factorised under the ``degenerate`` policy."""
        prec_chol, cov = factorise(
            cov, self.covariance_type, recover=self.degenerate == "recover", reg_covar=self.reg_covar,
            max_reg_covar=self.max_reg_covar,
        )  # fmt: skip
        self.weights_, self.means_, self.covariances_, self.precisions_cholesky_ = weights, means, cov, prec_chol

    def _shift(self) -> Tensor:
        """Centre for the second moments: the current means (tied: their weighted average)."""
        return covariance_shift(self.weights_, self.means_, self.covariance_type)

    def _quadratic(self, d: int) -> bool:
        """Whether full covariances go through quadratic features (``gram``; by default d <= 128)."""
        return self.covariance_type == "full" and bool(self.gram if self.gram is not None else d <= MAX_GRAM_FEATURES)

    def _full_step(self, chunks, log_weights, means, prec_chol) -> FullCovarianceStep | None:
        """The quadratic-feature path (full covariances, d <= 128 unless ``gram`` says otherwise)."""
        d = chunks[0].shape[1]
        if not self._quadratic(d):
            return None
        center = getattr(self, "_center", None)
        if center is None or center.shape[0] != d or center.device != chunks[0].device:
            self._center = data_mean(chunks, self._comm)
        screen = self._compute_dtype() == torch.float64 and self.screen
        return FullCovarianceStep(means, prec_chol, log_weights, self._center, screen)

    def _estimate_log_prob(self, chunks: Sequence[Tensor]) -> Iterator[Tensor]:
        """The ``(n_i, K)`` tables ``log w_k + log N(x | k)``, chunk by chunk (the quadratic-feature
        path when no gradient is needed)."""
        weights, means, _, prec_chol = self._parameters(chunks[0].device)
        log_weights = weights.log()
        if not torch.is_grad_enabled():  # evaluation only: the quadratic-feature path when it applies
            step = self._full_step(chunks, log_weights, means, prec_chol)
            if step is not None:
                return (step.log_prob(x) for x in chunks)
        return (log_gaussian_prob(x, means, prec_chol, self.covariance_type) + log_weights for x in chunks)

    def _chunk_rows(self, d: int) -> int:
        """Rows per chunk: ``chunk_size``, or :func:`~gnngmm.mixture.chunks.default_chunk_rows`."""
        if self.chunk_size:
            return int(self.chunk_size)
        return default_chunk_rows(d, self.n_components, self._quadratic(d))
