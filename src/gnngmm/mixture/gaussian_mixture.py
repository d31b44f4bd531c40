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

import math
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions
from torch import Tensor

from gnngmm.mixture.base import DTYPES
from gnngmm.mixture.distributed import LOCAL, Communicator
from gnngmm.mixture.em import DEGENERATE
from gnngmm.mixture.gaussian import (
    COVARIANCE_TYPES,
    EXTRA_COVARIANCE_TYPES,
    log_gaussian_prob,
    precisions_from_cholesky,
)
from gnngmm.mixture.gaussian_em import PARAMETERS, GaussianEM
from gnngmm.mixture.initialization import INIT_PARAMS, parameters_from_responsibilities
from gnngmm.mixture.sampling import numpy_rng, sample_mixture
from gnngmm.mixture.validation import ArrayKind, check_tensor, to_numpy


class GaussianMixture(GaussianEM):
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
        "dtype": [StrOptions(set(DTYPES)), torch.dtype],
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
        resp_chunks = list(resp_all.split([c.shape[0] for c in chunks]))
        nk, means, cov = parameters_from_responsibilities(
            chunks, resp_chunks, self.covariance_type, self.reg_covar, self._comm
        )
        self._set_covariances(nk / nk.sum(), means, cov)
        self._export(kind)
        self.lower_bound_ = -math.inf
        self.lower_bounds_ = []
        self.converged_ = False
        self.n_iter_ = 0
        return self

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
            raise ValueError(f"Invalid value for 'n_samples': {n_samples} . The sampling requires at least one sample.")
        x, y = sample_mixture(
            numpy_rng(self.random_state),
            int(n_samples),
            *(np.asarray(to_numpy(getattr(self, name)), dtype=np.float64) for name in PARAMETERS[:3]),
            self.covariance_type,
        )
        if isinstance(self.means_, np.ndarray):
            return x, y
        return torch.from_numpy(x).to(self.means_.device), torch.from_numpy(y).to(self.means_.device)

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
        state = {name: torch.as_tensor(getattr(self, name)).detach().cpu() for name in PARAMETERS}
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
                f"checkpoint GMM has covariance_type={state['covariance_type']!r}, this one {self.covariance_type!r}"
            )
        self.n_components = int(state["n_components"])
        device = torch.device(self.device) if self.device is not None else torch.device("cpu")
        for name in PARAMETERS:
            setattr(self, name, state[name].to(device=device, dtype=self._compute_dtype()))
        self.n_features_in_ = self.means_.shape[1]
        self.converged_ = state["converged_"]
        self.n_iter_ = state["n_iter_"]
        self.lower_bound_ = state["lower_bound_"]
        return self
