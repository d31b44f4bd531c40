"""``BaseMixture``: what a mixture fitted by EM over chunks shares, as scikit-learn's ``_base.py``.

The estimator side of :class:`gnngmm.mixture.GaussianMixture`: parameter and input checks, the
row blocks (:mod:`gnngmm.mixture.chunks`), ``fit`` (``n_init`` initialisations of EM, the best
lower bound kept, a failed fit rolled back), the scoring API (``predict``, ``predict_proba``,
``score_samples``, ``score``, ``bic``, ``aic``) and arrays out of the same type as arrays in. The
subclass holds the parameters and the model; it provides:

* ``_parameter_names``: the fitted parameters' attribute names (what ``fit`` keeps, exports and moves);
* ``_caches``: private attributes a fit sets (rolled back with the fitted ones, moved by :meth:`to`);
* ``_begin_fit(chunks) -> init``: checks what ``fit`` needs once and resets per-fit state;
* ``_initialize(chunks, n_total, generator, init)``: sets initial parameters;
* ``_em_step(chunks) -> float``: one E-step and M-step, returning the E-step's mean log-likelihood;
* ``_estimate_log_prob(chunks)``: the ``(n_i, K)`` tables ``log w_k + log p(x | k)`` per chunk;
* ``_chunk_rows(d)``: rows per chunk; and ``n_parameters()``.

The constructor's parameters used here: ``n_components``, ``tol``, ``max_iter``, ``n_init``,
``random_state``, ``warm_start``, ``verbose``, ``verbose_interval``, ``dtype``, ``device``, ``comm``.
"""

from __future__ import annotations

import math
import warnings
from typing import ClassVar, NamedTuple

import torch
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.validation import check_is_fitted
from torch import Tensor

from gnngmm.mixture.chunks import count_rows, split_rows
from gnngmm.mixture.distributed import LOCAL, Communicator
from gnngmm.mixture.initialization import torch_generator
from gnngmm.mixture.validation import ArrayKind, check_input
from gnngmm.mixture.verbose import Progress

DTYPES = {"float64": torch.float64, "float32": torch.float32}
NOT_CONVERGED = (
    "Best performing initialization did not converge. Try different init parameters, or increase max_iter, "
    "tol, or check for degenerate data."
)


class EMRun(NamedTuple):
    """What one initialisation's EM ended with."""

    parameters: dict  # the fitted attributes, by name
    lower_bound: float  # the last mean log-likelihood (-inf when max_iter=0)
    lower_bounds: list  # every iteration's
    n_iter: int
    converged: bool


class BaseMixture(DensityMixin, BaseEstimator):
    """Base of the mixtures fitted by EM over row chunks; see the module docstring for the subclass's part."""

    _parameter_names: ClassVar[tuple[str, ...]] = ()
    _caches: ClassVar[tuple[str, ...]] = ()

    def clone(self, **overrides):
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

    def fit(self, X, y=None):
        """Estimate the parameters by EM from ``n_init`` initialisations; keep the best lower bound.

        With ``warm_start`` a fitted mixture runs one EM from its parameters. A failed fit leaves
        the mixture as it was.

        Args:
            X (array-like or torch.Tensor or list of torch.Tensor): ``(n_samples, n_features)``;
                a list holds row blocks (under DDP: this rank's rows).
            y: ignored.

        Returns:
            BaseMixture: ``self``.

        Raises:
            ValueError: invalid parameters or input (scikit-learn's messages), fewer samples than
                components, or (``degenerate="raise"``) an ill-defined covariance.
            TypeError: sparse input or parameters of the wrong type.
        """
        self._check_params()
        saved = {name: vars(self)[name] for name in self._fit_state()}
        try:
            with torch.no_grad():
                self._fit(X)
        except Exception:
            for name in self._fit_state():
                delattr(self, name)
            for name, value in saved.items():
                setattr(self, name, value)
            raise
        if not self.converged_ and self.max_iter > 0:
            warnings.warn(NOT_CONVERGED, ConvergenceWarning, stacklevel=2)
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

    def to(self, device):
        """Compute on ``device`` from now on, and move tensor parameters there (NumPy ones stay)."""
        self.device = torch.device(device)
        if self.is_fitted:
            for name in self._parameter_names:
                value = getattr(self, name)
                if isinstance(value, Tensor):
                    setattr(self, name, value.to(self.device))
        for name in self._caches:  # e.g. the quadratic-feature path's centre: it must travel too
            if getattr(self, name, None) is not None:
                setattr(self, name, getattr(self, name).to(self.device))
        return self

    # ------------------------------------------------------------------ fitting
    def _fit(self, X) -> None:
        """EM from ``n_init`` initialisations (one when warm-started), the best lower bound kept
        (the last initialisation when ``max_iter=0``); the fitted attributes take ``X``'s array type."""
        chunks, kind, n_total = self._fit_input(X)
        device = chunks[0].device
        init = self._begin_fit(chunks)
        do_init = not (self.warm_start and self.is_fitted)
        if not do_init:
            for name, value in zip(self._parameter_names, self._parameters(device)):
                setattr(self, name, value)
        generator = self._torch_generator(device) if do_init else None
        progress = Progress(self.verbose, self.verbose_interval, active=self.verbose and self._comm.rank == 0)
        best = None
        for i in range(self.n_init if do_init else 1):
            progress.init_begin(i)
            if do_init:
                self._initialize(chunks, n_total, generator, init)
            if self.max_iter == 0:  # scikit-learn keeps the last initialisation, unscored
                best = EMRun(self._snapshot(), -math.inf, [], 0, False)
                continue
            run = self._run_em(chunks, -math.inf if do_init else self.lower_bound_, progress)
            if best is None or run.lower_bound > best.lower_bound or best.lower_bound == -math.inf:
                best = run
        for name, value in best.parameters.items():
            setattr(self, name, value)
        self.converged_ = best.converged
        self.n_iter_ = best.n_iter
        self.lower_bound_ = best.lower_bound
        self.lower_bounds_ = best.lower_bounds
        self._export(kind)

    def _fit_input(self, X) -> tuple[list[Tensor], ArrayKind, int]:
        """``X`` checked for ``fit`` (``n_features_in_`` set): its chunks, kind and row count over all ranks.

        Raises:
            ValueError: fewer than 2 samples, or fewer samples than components (scikit-learn's messages).
        """
        parts, kind = self._check_input(X, reset=True, min_samples=2)
        chunks = self._split(parts)
        n_total = count_rows(chunks, self._comm)
        d = chunks[0].shape[1]
        if n_total < 2:
            raise ValueError(
                f"Found array with {n_total} sample(s) (shape=({n_total}, {d})) while a minimum of 2 is required "
                f"by {type(self).__name__}."
            )
        if n_total < self.n_components:
            raise ValueError(
                f"Expected n_samples >= n_components but got n_components = {self.n_components}, n_samples = {n_total}"
            )
        return chunks, kind, n_total

    def _run_em(self, chunks: list[Tensor], lower_bound: float, progress: Progress) -> EMRun:
        """EM from the current parameters until the lower bound changes by less than ``tol`` or
        ``max_iter`` iterations (at least one); ``lower_bound`` is the one before the first."""
        history, converged = [], False
        for n_iter in range(1, self.max_iter + 1):
            previous = lower_bound
            lower_bound = self._em_step(chunks)
            history.append(lower_bound)
            change = lower_bound - previous
            progress.iteration(n_iter, change)
            if abs(change) < self.tol:
                converged = True
                break
        progress.init_end(converged, lower_bound)
        return EMRun(self._snapshot(), lower_bound, history, n_iter, converged)

    def _snapshot(self) -> dict:
        return {name: getattr(self, name) for name in self._parameter_names}

    def _fit_state(self) -> list[str]:
        """Names of what a fit sets: the fitted attributes (trailing underscore) and ``_caches``."""
        return [name for name in vars(self) if name.endswith("_") or name in self._caches]

    # ------------------------------------------------------------------ checks and conversions
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
        dtype = DTYPES.get(self.dtype, self.dtype)
        if dtype not in (torch.float64, torch.float32):
            raise ValueError(f"dtype must be float64 or float32, got {self.dtype!r}")
        return dtype

    def _torch_generator(self, device: torch.device) -> torch.Generator:
        """The initialisation's generator (:func:`gnngmm.mixture.initialization.torch_generator`)."""
        return torch_generator(self.random_state, self._comm, device)

    def _parameters(self, device: torch.device) -> tuple[Tensor, ...]:
        """The fitted parameters as compute-dtype tensors on ``device`` (the attributes themselves
        when they already are)."""
        dtype = self._compute_dtype()
        return tuple(torch.as_tensor(getattr(self, n)).to(device=device, dtype=dtype) for n in self._parameter_names)

    def _export(self, kind: ArrayKind) -> None:
        """Fitted parameters as NumPy arrays after a fit on NumPy input (tensors otherwise)."""
        if not kind.torch:
            for name in self._parameter_names:
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

    def _split(self, parts: list[Tensor]) -> list[Tensor]:
        return split_rows(parts, self._chunk_rows, type(self).__name__)

    def _check_fitted(self) -> None:
        check_is_fitted(self)

    # ------------------------------------------------------------------ scoring
    def _log_prob_map(self, X, fn) -> tuple[Tensor, ArrayKind]:
        """``fn`` of the (chunk, K) log-probability tables, concatenated, and ``X``'s kind.
        Non-finite rows are rejected as ``fit`` rejects them: a NaN row would otherwise get a
        real-looking cluster."""
        parts, kind = self._check_input(X, reset=False)
        chunks = self._split(parts)
        return torch.cat([fn(lp) for lp in self._estimate_log_prob(chunks)]), kind

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
