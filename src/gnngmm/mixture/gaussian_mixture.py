"""``GaussianMixture``: scikit-learn's estimator, in PyTorch, chunked and DDP-exact.

The API, the conventions and the numbers are scikit-learn's (``fit``, ``predict``,
``predict_proba``, ``score_samples``, ``score``, ``bic``, ``aic``, ``sample``; ``weights_``,
``means_``, ``covariances_``, ``precisions_cholesky_``, ``precisions_``, ``lower_bound_`` = mean
log-likelihood, ...): from the same initial parameters the fitted parameters agree to round-off in
float64. Arrays in, the same arrays out: NumPy input gives NumPy results and NumPy fitted
attributes; torch input gives torch results on the input's device. Differences, all deliberate
(``docs/engine.md`` lists them):

* EM runs over chunks of rows through :mod:`gnngmm.mixture.stats`, so memory is
  O(N*K + chunk*K*d) and data may come as a list of tensors (one shard per DDP rank, with
  ``comm`` summing the statistics across ranks).
* EM runs in ``dtype`` (float64 by default) whatever the input dtype: float32 input is upcast and
  the fitted attributes are float64.
* ``degenerate="recover"`` (off by default): a component whose responsibility mass falls below
  ``min_component_size`` samples is re-seeded at the worst-explained sample (highest negative
  log-likelihood) with a logged warning, and a covariance whose Cholesky factorisation fails gets
  10x more ``reg_covar`` per retry up to ``max_reg_covar``. By default (``"raise"``) an ill-defined
  covariance raises scikit-learn's ``ValueError``, as scikit-learn does.
* The k-means initialisation is this package's (chunked, DDP-aware), so a seeded fit draws other
  initial parameters than scikit-learn's with the same seed.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Sequence
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, InvalidParameterError, StrOptions
from sklearn.utils.validation import check_is_fitted
from torch import Tensor

from gnngmm.mixture import kmeans as km
from gnngmm.mixture.distributed import LOCAL, Communicator
from gnngmm.mixture.gaussian import (
    COVARIANCE_TYPES,
    EXTRA_COVARIANCE_TYPES,
    covariances_from_precision_cholesky,
    log_gaussian_prob,
    precision_cholesky,
    precision_cholesky_from_precisions,
    precisions_from_cholesky,
)
from gnngmm.mixture.gram import MAX_GRAM_FEATURES, FullCovarianceStep
from gnngmm.mixture.stats import SufficientStats, accumulate, m_step
from gnngmm.mixture.validation import (
    ArrayKind,
    check_input,
    check_means,
    check_precisions,
    check_tensor,
    check_weights,
)

log = logging.getLogger(__name__)

INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")
DEGENERATE = ("raise", "recover")
_PARAMS = ("weights_", "means_", "covariances_", "precisions_cholesky_")
_DTYPES = {"float64": torch.float64, "float32": torch.float32}
_NOT_CONVERGED = (
    "Best performing initialization did not converge. Try different init parameters, or increase max_iter, "
    "tol, or check for degenerate data."
)


class GaussianMixture(DensityMixin, BaseEstimator):
    """Gaussian mixture fitted by EM, with scikit-learn's API; see the module docstring for what differs.

    ``__init__`` only stores its arguments; they are checked by ``fit``.

    Args:
        n_components (int, optional): number of components K. (default: ``1``)
        covariance_type (str, optional): ``"full"``, ``"tied"``, ``"diag"``, ``"spherical"``
            (scikit-learn's) or ``"isotropic"`` (one variance shared by every component and
            dimension; stored like spherical). (default: ``"full"``)
        tol (float, optional): EM stops when the mean log-likelihood changes by less. (default: ``1e-3``)
        reg_covar (float, optional): added to the covariances' diagonal. (default: ``1e-6``)
        max_iter (int, optional): EM iterations per initialisation; 0 keeps the initialisation.
            (default: ``100``)
        n_init (int, optional): initialisations; the best lower bound is kept. (default: ``1``)
        init_params (str, optional): ``"kmeans"``, ``"k-means++"``, ``"random"`` or
            ``"random_from_data"``. (default: ``"kmeans"``)
        weights_init (array-like, optional): ``(K,)`` initial weights. (default: :obj:`None`)
        means_init (array-like, optional): ``(K, d)`` initial means. (default: :obj:`None`)
        precisions_init (array-like, optional): initial precisions, ``(K, d, d)`` full, ``(d, d)``
            tied, ``(K, d)`` diag, ``(K,)`` spherical and isotropic. (default: :obj:`None`)
        random_state (int or numpy.random.RandomState or torch.Generator, optional): seeds the
            initialisation and :meth:`sample`; :obj:`None` draws from NumPy's global generator.
            (default: :obj:`None`)
        warm_start (bool, optional): a fitted mixture continues EM from its parameters (one
            initialisation). (default: :obj:`False`)
        verbose (int, optional): 1 prints each initialisation and every ``verbose_interval``-th
            iteration, 2 adds timings and log-likelihood changes (rank 0 only). (default: ``0``)
        verbose_interval (int, optional): iterations between verbose lines. (default: ``10``)
        degenerate (str, optional): what an ill-defined covariance does: ``"raise"`` raises
            scikit-learn's ``ValueError`` (:class:`GMMNumericalError`); ``"recover"`` re-seeds
            components lighter than ``min_component_size`` and adds up to ``max_reg_covar`` to a
            singular covariance, so that the fit never returns NaN. (default: ``"raise"``)
        dtype (str or torch.dtype, optional): EM's dtype, ``"float64"`` or ``"float32"``; the fitted
            attributes have it. (default: ``"float64"``)
        device (str or torch.device, optional): where EM and the fitted parameters live;
            :obj:`None` uses a tensor input's device (NumPy input: the CPU). (default: :obj:`None`)
        chunk_size (int, optional): rows per chunk; :obj:`None` keeps the temporaries near 256 MB.
            (default: :obj:`None`)
        comm (Communicator, optional): sums over DDP ranks; each rank passes its own rows.
            (default: ``LOCAL``, one process)
        max_reg_covar (float, optional): ``"recover"`` only: the most regularisation added to a
            singular covariance (at least 1e-3 of the mean variance). (default: ``1.0``)
        min_component_size (float, optional): ``"recover"`` only: components with less
            responsibility mass are re-seeded. (default: ``1.0``)
        seeding_sample_size (int, optional): rows drawn for the k-means++ seeding. (default: ``100000``)
        gram (bool, optional): full covariances through quadratic features; :obj:`None` when
            d <= 128. (default: :obj:`None`)
        screen (bool, optional): float32 screening of negligible (row, component) pairs for full
            covariances with K > 8; exact to float64 round-off. (default: :obj:`True`)
        kmeans_n_init (int, optional): k-means restarts inside the kmeans initialisation (lowest
            inertia wins). (default: ``1``)

    Attributes:
        weights_, means_, covariances_, precisions_cholesky_ (numpy.ndarray or torch.Tensor): the
            fitted parameters, NumPy when fitted on NumPy, else tensors on the compute device.
        precisions_ (numpy.ndarray or torch.Tensor): the precisions, from ``precisions_cholesky_``.
        converged_ (bool), n_iter_ (int), lower_bound_ (float), lower_bounds_ (list of float): as
            scikit-learn's, for the best initialisation.
        n_features_in_ (int), feature_names_in_ (numpy.ndarray): as scikit-learn's.
        n_reseeded_ (int): components re-seeded during the last ``fit`` (``"recover"`` only).
    """

    _parameter_constraints: ClassVar[dict] = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "covariance_type": [StrOptions(set(COVARIANCE_TYPES + EXTRA_COVARIANCE_TYPES))],
        "tol": [Interval(Real, 0.0, None, closed="left")],
        "reg_covar": [Interval(Real, 0.0, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "init_params": [StrOptions(set(INIT_PARAMS))],
        "weights_init": ["array-like", None],
        "means_init": ["array-like", None],
        "precisions_init": ["array-like", None],
        "random_state": ["random_state", torch.Generator],
        "warm_start": ["boolean"],
        "verbose": ["verbose"],
        "verbose_interval": [Interval(Integral, 1, None, closed="left")],
        "degenerate": [StrOptions(set(DEGENERATE))],
        "dtype": [StrOptions(set(_DTYPES)), torch.dtype],
        "device": [str, torch.device, None],
        "chunk_size": [Interval(Integral, 1, None, closed="left"), None],
        "comm": [Communicator, None],
        "max_reg_covar": [Interval(Real, 0.0, None, closed="left")],
        "min_component_size": [Interval(Real, 0.0, None, closed="left")],
        "seeding_sample_size": [Interval(Integral, 1, None, closed="left")],
        "gram": ["boolean", None],
        "screen": ["boolean"],
        "kmeans_n_init": [Interval(Integral, 1, None, closed="left")],
    }

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
        random_state: int | np.random.RandomState | torch.Generator | None = None,
        warm_start: bool = False,
        verbose: int = 0,
        verbose_interval: int = 10,
        degenerate: str = "raise",
        dtype: str | torch.dtype = "float64",
        device: str | torch.device | None = None,
        chunk_size: int | None = None,
        comm: Communicator | None = LOCAL,
        max_reg_covar: float = 1.0,
        min_component_size: float = 1.0,
        seeding_sample_size: int = 100_000,
        gram: bool | None = None,
        screen: bool = True,
        kmeans_n_init: int = 1,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
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
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.degenerate = degenerate
        self.dtype = dtype
        self.device = device
        self.chunk_size = chunk_size
        self.comm = comm
        self.max_reg_covar = max_reg_covar
        self.min_component_size = min_component_size
        self.seeding_sample_size = seeding_sample_size
        self.gram = gram
        self.screen = screen
        self.kmeans_n_init = kmeans_n_init

    # ------------------------------------------------------------------ public API
    def clone(self, **overrides) -> GaussianMixture:
        """An unfitted mixture with the same settings, some of them overridden (e.g. ``n_components``).

        Unlike :func:`sklearn.base.clone` the settings are not deep-copied (``comm``, a generator
        and initial arrays are shared).
        """
        return type(self)(**{**self.get_params(deep=False), **overrides})

    @property
    def is_fitted(self) -> bool:
        """Whether the mixture has parameters (from ``fit``, ``load_state_dict`` or responsibilities)."""
        return hasattr(self, "precisions_cholesky_")

    def __sklearn_is_fitted__(self) -> bool:
        return self.is_fitted

    def fit(self, X, y=None) -> GaussianMixture:
        """Estimate the parameters by EM from ``n_init`` initialisations; keep the best lower bound.

        With ``warm_start`` a fitted mixture runs one EM from its parameters. A failed fit leaves
        the mixture as it was.

        Args:
            X (array-like or torch.Tensor or list of torch.Tensor): ``(n_samples, n_features)``;
                a list holds row blocks (under DDP: this rank's rows).
            y: ignored.

        Returns:
            GaussianMixture: ``self``.

        Raises:
            ValueError: invalid parameters or input (scikit-learn's messages), fewer samples than
                components, or (``degenerate="raise"``) an ill-defined covariance.
            TypeError: sparse input or parameters of the wrong type.
        """
        self._check_params()
        saved = {name: value for name, value in vars(self).items() if name.endswith("_") or name == "_center"}
        try:
            with torch.no_grad():
                self._fit(X)
        except Exception:
            for name in [n for n in vars(self) if n.endswith("_") or n == "_center"]:
                delattr(self, name)
            for name, value in saved.items():
                setattr(self, name, value)
            raise
        if not self.converged_ and self.max_iter > 0:
            warnings.warn(_NOT_CONVERGED, ConvergenceWarning, stacklevel=2)
        return self

    @torch.no_grad()
    def initialize_from_responsibilities(self, X, resp) -> GaussianMixture:
        """Set the parameters by one M-step from given responsibilities (rows sum to one).

        This warm-starts a mixture on data whose coordinates changed (a new embedding of the same
        nodes): the previous assignments carry over, whatever the new basis. A following ``fit``
        with ``warm_start=True`` continues EM from here.

        Args:
            X (array-like or torch.Tensor or list of torch.Tensor): ``(n_samples, n_features)``.
            resp (array-like or torch.Tensor): ``(n_samples, n_components)`` responsibilities.

        Returns:
            GaussianMixture: ``self``, with ``lower_bound_=-inf``, ``converged_=False``, ``n_iter_=0``.

        Raises:
            ValueError: invalid input, or ``resp`` of the wrong shape.
        """
        self._check_params()
        parts, kind = self._check_input(X, reset=True)
        chunks = self._split(parts)
        resp_all = torch.as_tensor(resp).to(device=chunks[0].device, dtype=self._compute_dtype())
        if resp_all.dim() != 2 or resp_all.shape[0] != sum(c.shape[0] for c in chunks):
            raise ValueError(f"resp must have one row per sample of X, got shape {tuple(resp_all.shape)}")
        if resp_all.shape[1] != self.n_components:
            raise ValueError(f"resp has {resp_all.shape[1]} columns, the mixture {self.n_components} components")
        comm = self._comm
        resp_chunks = list(resp_all.split([c.shape[0] for c in chunks]))
        center = comm.all_reduce_sum(sum(c.sum(0) for c in chunks)) / self._count(chunks)
        shift = center.expand(self.n_components, -1).contiguous()
        nk, means, cov = m_step(self._resp_stats(chunks, resp_chunks, shift), shift, self.covariance_type, self.reg_covar)
        # A second pass centred on these means keeps the covariances free of cancellation.
        shift = means if self.covariance_type != "tied" else means.mean(0).expand_as(means)
        nk, means, cov = m_step(self._resp_stats(chunks, resp_chunks, shift), shift, self.covariance_type, self.reg_covar)
        self._set_covariances(nk / nk.sum(), means, cov)
        self._export(kind)
        self.lower_bound_ = -math.inf
        self.lower_bounds_ = []
        self.converged_ = False
        self.n_iter_ = 0
        return self

    def fit_predict(self, X, y=None):
        """``fit(X)`` then ``predict(X)``: ``(n_samples,)`` component labels, int64."""
        return self.fit(X, y).predict(X)

    def predict(self, X):
        """``(n_samples,)`` most probable component of every sample (int64), as ``X``'s array type."""
        return self._map(X, lambda lp: lp.argmax(1))

    def predict_proba(self, X):
        """``(n_samples, n_components)`` responsibilities (rows sum to one), as ``X``'s array type."""
        return self._map(X, lambda lp: torch.softmax(lp, dim=1))

    def score_samples(self, X):
        """``(n_samples,)`` log-likelihood ``log p(x)``; for a tensor, differentiable with respect to ``X``."""
        return self._map(X, lambda lp: torch.logsumexp(lp, dim=1), grad=True)

    def score(self, X, y=None) -> float:
        """Mean log-likelihood over all samples (all ranks when distributed)."""
        total, count = self._total_log_likelihood(X)
        return float(total / count)

    def bic(self, X) -> float:
        """Bayesian information criterion on ``X`` (lower is better)."""
        return self._bic(*self._total_log_likelihood(X))

    def aic(self, X) -> float:
        """Akaike information criterion on ``X`` (lower is better)."""
        total, _ = self._total_log_likelihood(X)
        return float(-2.0 * total + 2.0 * self.n_parameters())

    def sample(self, n_samples: int = 1):
        """Draw from the fitted mixture, as scikit-learn does (same draws for the same parameters and seed).

        Args:
            n_samples (int, optional): how many samples. (default: ``1``)

        Returns:
            (numpy.ndarray or torch.Tensor, numpy.ndarray or torch.Tensor): ``X`` ``(n_samples,
            n_features)`` float64 and ``y`` ``(n_samples,)`` int64 component labels, grouped by
            component; NumPy or torch (on the parameters' device) as the fitted attributes.

        Raises:
            NotFittedError: before ``fit``.
            ValueError: ``n_samples < 1``.
        """
        self._check_fitted()
        if n_samples < 1:
            raise ValueError(
                f"Invalid value for 'n_samples': {n_samples} . The sampling requires at least one sample."
            )
        x, y = sample_mixture(
            self._numpy_rng(),
            int(n_samples),
            *(np.asarray(_to_numpy(getattr(self, name)), dtype=np.float64) for name in _PARAMS[:3]),
            self.covariance_type,
        )
        if isinstance(self.means_, np.ndarray):
            return x, y
        return torch.from_numpy(x).to(self.means_.device), torch.from_numpy(y).to(self.means_.device)

    def log_prob_table(self, X):
        """``(n_samples, K)`` ``log w_k + log N(x | k)`` for every sample and component, chunked, for
        evaluation (no gradient): one pass from which assignments, responsibilities and ``log p(x)``
        all follow."""
        return self._map(X, lambda lp: lp)

    def score_and_bic(self, sample_log_likelihood: Tensor) -> tuple[float, float]:
        """Mean log-likelihood and BIC from this rank's per-sample ``log p(x)`` (summed over ranks),
        for callers that already hold them: the data is not scored again."""
        total, count = self._reduce_log_likelihood(torch.as_tensor(sample_log_likelihood))
        return float(total / count), self._bic(total, count)

    def weighted_log_prob(self, X):
        """``(n_samples, K)`` ``log w_k + log N(x | k)``, differentiable in a tensor ``X`` (no
        chunking, no finiteness check: the training loss calls it on every batch)."""
        self._check_fitted()
        if isinstance(X, Tensor):
            check_tensor(X, type(self).__name__)
            x = X.to(device=self._device_for(X), dtype=self._compute_dtype())
            kind = ArrayKind(torch=True, device=X.device)
        else:
            parts, kind = self._check_input(X, reset=False)
            x = torch.cat(parts)
        weights, means, _, prec_chol = self._parameters(x.device)
        return kind.wrap(log_gaussian_prob(x, means, prec_chol, self.covariance_type) + weights.log())

    def n_parameters(self) -> int:
        """Number of free parameters (scikit-learn's count; isotropic: one variance)."""
        k, d = self.means_.shape
        cov = {
            "full": k * d * (d + 1) / 2.0,
            "diag": k * d,
            "tied": d * (d + 1) / 2.0,
            "spherical": k,
            "isotropic": 1,
        }[self.covariance_type]
        return int(cov + d * k + k - 1)

    def _n_parameters(self) -> int:
        """scikit-learn's name for :meth:`n_parameters`."""
        return self.n_parameters()

    def mean_variance(self) -> float:
        """Average variance per dimension over components: the mixture's length scale squared."""
        self._check_fitted()
        cov = torch.as_tensor(self.covariances_)
        if self.covariance_type in ("full", "tied"):
            cov = cov.diagonal(dim1=-2, dim2=-1)
        return float(cov.mean())

    @property
    def precisions_(self):
        """The precisions (inverse covariances), NumPy or torch as the fitted attributes."""
        prec = precisions_from_cholesky(torch.as_tensor(self.precisions_cholesky_), self.covariance_type)
        return prec.numpy() if isinstance(self.precisions_cholesky_, np.ndarray) else prec

    def state_dict(self) -> dict:
        """Fitted parameters (tensors on the CPU) and fit diagnostics, for checkpoints."""
        self._check_fitted()
        state = {name: torch.as_tensor(getattr(self, name)).detach().cpu() for name in _PARAMS}
        state.update(
            n_components=self.n_components,
            covariance_type=self.covariance_type,
            converged_=bool(self.converged_),
            n_iter_=int(self.n_iter_),
            lower_bound_=float(self.lower_bound_),
        )
        return state

    def load_state_dict(self, state: dict) -> GaussianMixture:
        """Set the parameters from :meth:`state_dict` (as tensors on ``device``, or the CPU).

        Raises:
            ValueError: the state's ``covariance_type`` differs from this mixture's.
        """
        if state["covariance_type"] != self.covariance_type:
            raise ValueError(
                f"checkpoint GMM has covariance_type={state['covariance_type']!r}, "
                f"this one {self.covariance_type!r}"
            )
        self.n_components = int(state["n_components"])
        device = torch.device(self.device) if self.device is not None else torch.device("cpu")
        for name in _PARAMS:
            setattr(self, name, state[name].to(device=device, dtype=self._compute_dtype()))
        self.n_features_in_ = self.means_.shape[1]
        self.converged_ = state["converged_"]
        self.n_iter_ = state["n_iter_"]
        self.lower_bound_ = state["lower_bound_"]
        return self

    def to(self, device) -> GaussianMixture:
        """Compute on ``device`` from now on, and move tensor parameters there (NumPy ones stay)."""
        self.device = torch.device(device)
        if self.is_fitted:
            for name in _PARAMS:
                value = getattr(self, name)
                if isinstance(value, Tensor):
                    setattr(self, name, value.to(self.device))
        if getattr(self, "_center", None) is not None:  # the quadratic-feature path's centre must travel too
            self._center = self._center.to(self.device)
        return self

    # ------------------------------------------------------------------ fitting
    def _fit(self, X) -> None:
        comm = self._comm
        parts, kind = self._check_input(X, reset=True, min_samples=2)
        chunks = self._split(parts)
        n_total = self._count(chunks)
        d = chunks[0].shape[1]
        if n_total < 2:
            raise ValueError(
                f"Found array with {n_total} sample(s) (shape=({n_total}, {d})) while a minimum of 2 is required "
                f"by {type(self).__name__}."
            )
        if n_total < self.n_components:
            raise ValueError(
                f"Expected n_samples >= n_components but got n_components = {self.n_components}, "
                f"n_samples = {n_total}"
            )
        device = chunks[0].device
        init = self._initial_parameters(d, device)
        self._center = None  # data mean, recomputed per fit (the quadratic-feature path centres on it)
        self.n_reseeded_ = 0
        do_init = not (self.warm_start and self.is_fitted)
        if not do_init:
            for name, value in zip(_PARAMS, self._parameters(device)):
                setattr(self, name, value)
        n_init = self.n_init if do_init else 1
        generator = self._torch_generator(device) if do_init else None
        recover = self.degenerate == "recover"
        talk = self.verbose and comm.rank == 0
        best, max_lower_bound, best_history, best_n_iter, best_converged = None, -math.inf, [], 0, False
        for i in range(n_init):
            if talk:
                print(f"Initialization {i}")
                init_start = iter_start = time.time()
            if do_init:
                self._initialize(chunks, n_total, generator, init)
            bound = -math.inf if do_init else self.lower_bound_
            if self.max_iter == 0:  # scikit-learn keeps the last initialisation, unscored
                best, best_n_iter = {name: getattr(self, name) for name in _PARAMS}, 0
                continue
            history, converged = [], False
            for n_iter in range(1, self.max_iter + 1):
                previous = bound
                stats, worst = self._e_step(chunks, recover)
                bound = float(stats.log_likelihood / stats.count)
                self._m_step(stats, worst)
                history.append(bound)
                change = bound - previous
                if talk and n_iter % self.verbose_interval == 0:
                    if self.verbose == 1:
                        print(f"  Iteration {n_iter}")
                    else:
                        now = time.time()
                        print(f"  Iteration {n_iter}\t time lapse {now - iter_start:.5f}s\t ll change {change:.5f}")
                        iter_start = now
                if abs(change) < self.tol:
                    converged = True
                    break
            if talk:
                state = "converged" if converged else "did not converge"
                if self.verbose == 1:
                    print(f"Initialization {state}.")
                else:
                    lapse = time.time() - init_start
                    print(f"Initialization {state}. time lapse {lapse:.5f}s\t lower bound {bound:.5f}.")
            if bound > max_lower_bound or max_lower_bound == -math.inf:
                best = {name: getattr(self, name) for name in _PARAMS}
                max_lower_bound, best_history, best_n_iter, best_converged = bound, history, n_iter, converged
        for name, value in best.items():
            setattr(self, name, value)
        self.converged_ = best_converged
        self.n_iter_ = best_n_iter
        self.lower_bound_ = max_lower_bound
        self.lower_bounds_ = best_history
        self._export(kind)

    def _initial_parameters(self, d: int, device: torch.device) -> dict:
        """``weights_init``, ``means_init`` and ``precisions_init`` checked and as tensors (or None)."""
        k, dtype = self.n_components, self._compute_dtype()
        checked = {
            "weights": None if self.weights_init is None else check_weights(self.weights_init, k),
            "means": None if self.means_init is None else check_means(self.means_init, k, d),
            "precisions": None
            if self.precisions_init is None
            else check_precisions(self.precisions_init, self.covariance_type, k, d),
        }
        return {
            name: None if value is None else torch.as_tensor(value).to(device=device, dtype=dtype)
            for name, value in checked.items()
        }

    def _e_step(self, chunks: Sequence[Tensor], recover: bool) -> tuple[SufficientStats, Tensor | None]:
        """Statistics under the current parameters, summed over chunks and ranks, and (``recover``)
        the worst-explained samples (highest NLL, up to K of them, all ranks) for re-seeding."""
        comm = self._comm
        shift = self._shift()
        log_weights = self.weights_.log()
        full_step = self._full_step(chunks, log_weights, self.means_, self.precisions_cholesky_)
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
            if recover:
                top = torch.topk(-log_norm, min(self.n_components, x.shape[0]))
                worst_nll.append(top.values)
                worst_x.append(x[top.indices])
        total = total.all_reduce(comm.all_reduce_sum)
        if not recover:
            return total, None
        nll = comm.all_gather_rows(torch.cat(worst_nll))
        rows = comm.all_gather_rows(torch.cat(worst_x))
        order = torch.argsort(nll, descending=True, stable=True)[: self.n_components]
        return total, rows[order]

    def _full_step(self, chunks, log_weights, means, prec_chol) -> FullCovarianceStep | None:
        """The quadratic-feature path (full covariances, d <= 128 unless ``gram`` says otherwise)."""
        d = chunks[0].shape[1]
        use = self.gram if self.gram is not None else d <= MAX_GRAM_FEATURES
        if self.covariance_type != "full" or not use:
            return None
        center = getattr(self, "_center", None)
        if center is None or center.shape[0] != d or center.device != chunks[0].device:
            self._center = self._comm.all_reduce_sum(sum(c.sum(0) for c in chunks)) / self._count(chunks)
        screen = self._compute_dtype() == torch.float64 and self.screen
        return FullCovarianceStep(means, prec_chol, log_weights, self._center, screen)

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
        self.n_reseeded_ = getattr(self, "n_reseeded_", 0) + len(empty)
        log.warning(
            "GMM: component(s) %s held fewer than %g samples; re-seeded at the worst-explained points",
            empty,
            self.min_component_size,
        )
        return weights / weights.sum(), means, cov

    def _set_covariances(self, weights, means, cov) -> None:
        if self.degenerate != "recover":
            prec_chol, cov = precision_cholesky(cov, self.covariance_type, max_reg_covar=None)
            self.weights_, self.means_, self.covariances_, self.precisions_cholesky_ = weights, means, cov, prec_chol
            return

        def escalated(k, added):
            log.warning("GMM: covariance of component %d was singular; added %.3g to its diagonal", k, added)

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

    def _initialize(self, chunks: Sequence[Tensor], n_total: int, generator: torch.Generator, init: dict) -> None:
        """Initial parameters: from the responsibilities ``init_params`` defines, then any given ones."""
        if any(v is None for v in init.values()):
            stats, shift = self._initial_stats(chunks, generator)
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

    def _resp_stats(self, chunks, resp_chunks, shift) -> SufficientStats:
        total = None
        for x, r in zip(chunks, resp_chunks):
            s = accumulate(x, r, shift, self.covariance_type)
            total = s if total is None else total + s
        return total.all_reduce(self._comm.all_reduce_sum)

    def _initial_stats(self, chunks, generator) -> tuple[SufficientStats, Tensor]:
        """Statistics of the initial responsibilities, computed as scikit-learn defines them."""
        k, comm = self.n_components, self._comm
        if self.init_params == "random":
            center = comm.all_reduce_sum(sum(c.sum(0) for c in chunks)) / self._count(chunks)
            shift = center.expand(k, -1).contiguous()
            resp = [torch.rand(x.shape[0], k, generator=generator, dtype=x.dtype).to(x.device) for x in chunks]
            resp = [r / r.sum(1, keepdim=True) for r in resp]
            return self._resp_stats(chunks, resp, shift), shift
        sample = km.seeding_sample(chunks, self.seeding_sample_size, generator, comm)
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
            )  # fmt: skip
            return stats, seeds
        if self.kmeans_n_init > 1 and sample.shape[0] < self._count(chunks):
            # More rows than the sample: the restarts compete on the sample (identical on every
            # rank, so no all-reduce) and only the winner converges on every row.
            centers, inertia = km.lloyd([sample], seeds)
            for _ in range(self.kmeans_n_init - 1):
                other, other_inertia = km.lloyd([sample], sample[km.kmeans_plusplus(sample, k, generator)])
                if other_inertia < inertia:
                    centers, inertia = other, other_inertia
            centers, inertia = km.lloyd(chunks, centers, comm)
        else:
            centers, inertia = km.lloyd(chunks, seeds, comm)
            for _ in range(self.kmeans_n_init - 1):  # more k-means restarts: keep the lowest inertia
                seeds = sample[km.kmeans_plusplus(sample, k, generator)]
                other, other_inertia = km.lloyd(chunks, seeds, comm)
                if other_inertia < inertia:
                    centers, inertia = other, other_inertia
        shift = centers if self.covariance_type != "tied" else centers.mean(0).expand_as(centers)
        resp = [torch.nn.functional.one_hot(km.assign(x, centers), k).to(x.dtype) for x in chunks]
        return self._resp_stats(chunks, resp, shift), shift

    # ------------------------------------------------------------------ helpers
    def _check_params(self) -> None:
        """scikit-learn's parameter validation (``_parameter_constraints``), and no bool for a count."""
        self._validate_params()
        if isinstance(self.n_components, bool):  # an Integral to scikit-learn's check, not a count
            raise InvalidParameterError(
                f"The 'n_components' parameter of {type(self).__name__} must be an int in the range [1, inf). "
                f"Got {self.n_components!r} instead."
            )
        self._compute_dtype()

    @property
    def _comm(self) -> Communicator:
        return self.comm if self.comm is not None else LOCAL

    def _compute_dtype(self) -> torch.dtype:
        dtype = _DTYPES.get(self.dtype, self.dtype)
        if dtype not in (torch.float64, torch.float32):
            raise ValueError(f"dtype must be float64 or float32, got {self.dtype!r}")
        return dtype

    def _torch_generator(self, device: torch.device) -> torch.Generator:
        """The initialisation's generator: ``random_state`` itself (a torch generator), seeded with it
        (an int), or seeded from NumPy's generator (a ``RandomState``, or the global one for None;
        rank 0's seed under DDP)."""
        if isinstance(self.random_state, torch.Generator):
            return self.random_state
        if isinstance(self.random_state, Integral):
            seed = int(self.random_state)
        else:
            seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
            if self._comm.world_size > 1:
                seed_t = torch.tensor([float(seed)], dtype=torch.float64, device=device)
                seed = int(self._comm.broadcast_from_zero(seed_t).item())
        return torch.Generator().manual_seed(seed)

    def _numpy_rng(self) -> np.random.RandomState:
        """:meth:`sample`'s generator: scikit-learn's ``check_random_state`` (a torch generator seeds one)."""
        if isinstance(self.random_state, torch.Generator):
            seed = torch.randint(np.iinfo(np.int32).max, (1,), generator=self.random_state, device=self.random_state.device)
            return np.random.RandomState(int(seed))
        return check_random_state(self.random_state)

    def _parameters(self, device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``weights_, means_, covariances_, precisions_cholesky_`` as compute-dtype tensors on
        ``device`` (the attributes themselves when they already are)."""
        dtype = self._compute_dtype()
        return tuple(torch.as_tensor(getattr(self, name)).to(device=device, dtype=dtype) for name in _PARAMS)

    def _export(self, kind: ArrayKind) -> None:
        """Fitted parameters as NumPy arrays after a fit on NumPy input (tensors otherwise)."""
        if not kind.torch:
            for name in _PARAMS:
                setattr(self, name, kind.wrap(getattr(self, name)))

    def _device_for(self, X) -> torch.device:
        if self.device is not None:
            return torch.device(self.device)
        if isinstance(X, Tensor):
            return X.device
        return torch.device("cpu")

    def _check_input(self, X, reset: bool, min_samples: int = 1) -> tuple[list[Tensor], ArrayKind]:
        device = torch.device(self.device) if self.device is not None else None
        parts, kind = check_input(
            self, X, reset=reset, dtype=self._compute_dtype(), device=device, min_samples=min_samples
        )
        if not reset and self.is_fitted and parts[0].shape[1] != self.means_.shape[1]:
            raise ValueError(
                f"X has {parts[0].shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.means_.shape[1]} features as input."
            )
        return parts, kind

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

    def _split(self, parts: list[Tensor]) -> list[Tensor]:
        out = []
        for p in parts:
            out.extend(p.split(self._default_chunk(p.shape[1])) if p.shape[0] else [])
        if not out:
            raise ValueError(f"Found array with 0 sample(s) while a minimum of 1 is required by {type(self).__name__}.")
        return out

    def _count(self, chunks) -> int:
        local = chunks[0].new_tensor([float(sum(c.shape[0] for c in chunks))])
        return int(self._comm.all_reduce_sum(local).item())

    def _check_fitted(self) -> None:
        check_is_fitted(self)

    def _log_prob_map(self, X, fn) -> tuple[Tensor, ArrayKind]:
        """``fn`` of the (chunk, K) log-probability tables, concatenated, and ``X``'s kind.
        Non-finite rows are rejected as ``fit`` rejects them: a NaN row would otherwise get a
        real-looking cluster."""
        parts, kind = self._check_input(X, reset=False)
        chunks = self._split(parts)
        weights, means, _, prec_chol = self._parameters(chunks[0].device)
        log_weights = weights.log()
        if not torch.is_grad_enabled():  # evaluation only: the quadratic-feature path when it applies
            step = self._full_step(chunks, log_weights, means, prec_chol)
            if step is not None:
                return torch.cat([fn(step.log_prob(x)) for x in chunks]), kind
        table = (log_gaussian_prob(x, means, prec_chol, self.covariance_type) + log_weights for x in chunks)
        return torch.cat([fn(lp) for lp in table]), kind

    def _map(self, X, fn, grad: bool = False):
        self._check_fitted()
        with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
            out, kind = self._log_prob_map(X, fn)
        return kind.wrap(out)

    def _total_log_likelihood(self, X) -> tuple[Tensor, Tensor]:
        self._check_fitted()
        with torch.no_grad():
            ll, _ = self._log_prob_map(X, lambda lp: torch.logsumexp(lp, dim=1))
            return self._reduce_log_likelihood(ll)

    def _reduce_log_likelihood(self, ll: Tensor) -> tuple[Tensor, Tensor]:
        """``(sum of log p(x), sample count)`` over all ranks."""
        packed = self._comm.all_reduce_sum(torch.stack([ll.sum(), ll.new_tensor(float(ll.shape[0]))]))
        return packed[0], packed[1]

    def _bic(self, total: Tensor, count: Tensor) -> float:
        return float(-2.0 * total + self.n_parameters() * math.log(float(count)))


def _to_numpy(value) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, Tensor) else np.asarray(value)


def sample_mixture(
    rng: np.random.RandomState,
    n_samples: int,
    weights: np.ndarray,
    means: np.ndarray,
    covariances: np.ndarray,
    covariance_type: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Samples of a Gaussian mixture, drawn exactly as scikit-learn's ``BaseMixture.sample`` draws them.

    Args:
        rng (numpy.random.RandomState): the generator.
        n_samples (int): how many.
        weights (numpy.ndarray): ``(K,)``.
        means (numpy.ndarray): ``(K, d)``.
        covariances (numpy.ndarray): ``(K, d, d)`` full, ``(d, d)`` tied, ``(K, d)`` diag,
            ``(K,)`` spherical and isotropic.
        covariance_type (str): which of these.

    Returns:
        (numpy.ndarray, numpy.ndarray): ``(n_samples, d)`` float64 samples grouped by component,
        and their ``(n_samples,)`` int64 components.
    """
    counts = rng.multinomial(n_samples, weights)
    d = means.shape[1]
    if covariance_type == "full":
        blocks = [rng.multivariate_normal(m, c, int(n)) for m, c, n in zip(means, covariances, counts)]
    elif covariance_type == "tied":
        blocks = [rng.multivariate_normal(m, covariances, int(n)) for m, n in zip(means, counts)]
    else:
        blocks = [m + rng.standard_normal(size=(n, d)) * np.sqrt(c) for m, c, n in zip(means, covariances, counts)]
    y = np.concatenate([np.full(int(n), j, dtype=np.int64) for j, n in enumerate(counts)])
    return np.vstack(blocks).astype(np.float64, copy=False), y
