"""Gaussian densities and covariance <-> precision-Cholesky conversions.

The formulas follow scikit-learn's ``_gaussian_mixture`` module (same parameterisation by the
Cholesky factor of the precision, same log-determinant) so that results agree to round-off.
Everything here is differentiable with respect to ``x``: the training loss uses it with the
mixture parameters held fixed.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")  # scikit-learn's
# One variance shared by all components and dimensions: soft k-means with learned weights. Stored
# and evaluated like "spherical" (a (K,) vector, all entries equal); only the M-step differs.
EXTRA_COVARIANCE_TYPES = ("isotropic",)
# scikit-learn's message for a covariance that cannot be factorised (``degenerate="raise"``)
ILL_DEFINED_COVARIANCE = (
    "Fitting the mixture model failed because some components have ill-defined empirical covariance "
    "(for instance caused by singleton or collapsed samples). Try to decrease the number of components, "
    "increase reg_covar, or scale the input data."
)


class GMMNumericalError(ValueError):
    """Raised when a covariance is ill-defined: at once with ``degenerate="raise"``, after every
    allowed ``reg_covar`` escalation with ``degenerate="recover"``."""


def check_covariance_type(covariance_type: str) -> str:
    known = COVARIANCE_TYPES + EXTRA_COVARIANCE_TYPES
    if covariance_type not in known:
        raise ValueError(f"covariance_type={covariance_type!r} is not one of {', '.join(known)}")
    return covariance_type


def add_to_diagonal(cov: Tensor, value: float | Tensor) -> Tensor:
    """``cov + value * I`` for a (..., d, d) stack; ``value`` may be per matrix."""
    eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
    value = torch.as_tensor(value, dtype=cov.dtype, device=cov.device)
    return cov + value.reshape(value.shape + (1, 1)) * eye


def precision_cholesky(
    covariances: Tensor,
    covariance_type: str,
    *,
    reg_covar: float = 0.0,
    max_reg_covar: float | None = 1.0,
    on_escalate=None,
) -> tuple[Tensor, Tensor]:
    """Return ``(precisions_cholesky, covariances)``.

    A covariance whose Cholesky factorisation fails (or, for diag/spherical, a non-positive
    variance) gets ``10 x`` more diagonal regularisation per retry, starting from
    ``max(reg_covar, 1e-10 * mean variance)``, until ``max_reg_covar``; beyond that a
    :class:`GMMNumericalError` names the component. ``on_escalate(component, added)`` is called
    for each component that needed extra regularisation, so callers can log it. The returned
    covariances include any extra regularisation that was added.

    With ``max_reg_covar=None`` nothing is added: the first ill-defined covariance raises
    :class:`GMMNumericalError` with scikit-learn's message, as scikit-learn does.
    """
    if covariance_type in ("full", "tied"):
        stack = covariances if covariance_type == "full" else covariances.unsqueeze(0)
        chol, info = torch.linalg.cholesky_ex(stack)
        failed = (info != 0) | ~torch.isfinite(chol).all(dim=(-2, -1))
        if bool(failed.any()) and max_reg_covar is None:
            _raise_ill_defined(int(torch.nonzero(failed).flatten()[0]), covariance_type, stack.dtype)
        if bool(failed.any()):
            stack = stack.clone()
            for k in torch.nonzero(failed).flatten().tolist():
                stack[k], chol[k] = _escalate_full(stack[k], k, reg_covar, max_reg_covar, on_escalate)
        eye = torch.eye(stack.shape[-1], dtype=stack.dtype, device=stack.device)
        prec_chol = torch.linalg.solve_triangular(chol, eye.expand_as(chol), upper=False).transpose(-2, -1)
        if covariance_type == "tied":
            return prec_chol[0], stack[0]
        return prec_chol, stack
    bad = ~(covariances > 0) | ~torch.isfinite(covariances)
    if bool(bad.any()):
        rows = bad if bad.dim() == 1 else bad.any(dim=-1)
        if max_reg_covar is None:
            _raise_ill_defined(int(torch.nonzero(rows).flatten()[0]), covariance_type, covariances.dtype)
        covariances = covariances.clone()
        for k in torch.nonzero(rows).flatten().tolist():
            covariances[k] = _escalate_vector(covariances[k], k, reg_covar, max_reg_covar, on_escalate)
    return covariances.rsqrt(), covariances


def _raise_ill_defined(k: int, covariance_type: str, dtype: torch.dtype) -> None:
    where = "" if covariance_type == "tied" else f" (component {k})"
    hint = " Float64 (dtype='float64') also improves the numerical accuracy." if dtype == torch.float32 else ""
    raise GMMNumericalError(
        f"{ILL_DEFINED_COVARIANCE}{hint} The covariance{where} is not positive-definite; degenerate='recover' "
        "re-seeds such components and adds regularisation instead."
    )


def _start_reg(scale: Tensor, reg_covar: float) -> float:
    scale = float(scale) if torch.isfinite(scale) and scale > 0 else 1.0
    return max(reg_covar, 1e-10 * scale, 1e-12)


def _escalate_full(cov, k, reg_covar, max_reg_covar, on_escalate):
    finite = torch.isfinite(cov).all()
    if not finite:
        raise GMMNumericalError(f"component {k} has a non-finite covariance; the data fed to the GMM must be finite")
    added = _start_reg(cov.diagonal().abs().mean(), reg_covar)
    while added <= max_reg_covar * (1 + 1e-9):
        trial = add_to_diagonal(cov, added)
        chol, info = torch.linalg.cholesky_ex(trial)
        if int(info) == 0 and bool(torch.isfinite(chol).all()):
            if on_escalate is not None:
                on_escalate(k, added)
            return trial, chol
        added *= 10.0
    raise GMMNumericalError(
        f"component {k}: covariance is singular even after adding {max_reg_covar:g} to its "
        "diagonal (its points are identical or its features collinear). Increase gmm.reg_covar, "
        "lower gmm.k, use covariance_type=diag, or standardise the embedding."
    )


def _escalate_vector(var, k, reg_covar, max_reg_covar, on_escalate):
    if not bool(torch.isfinite(var).all()):
        raise GMMNumericalError(f"component {k} has a non-finite variance; the data fed to the GMM must be finite")
    added = _start_reg(var.abs().mean(), reg_covar)
    while added <= max_reg_covar * (1 + 1e-9):
        trial = var + added
        if bool((trial > 0).all()):
            if on_escalate is not None:
                on_escalate(k, added)
            return trial
        added *= 10.0
    raise GMMNumericalError(
        f"component {k}: variance is not positive even after adding {max_reg_covar:g}. "
        "Increase gmm.reg_covar or lower gmm.k."
    )


def precision_cholesky_from_precisions(precisions: Tensor, covariance_type: str) -> Tensor:
    """Cholesky factor of user-given precisions (``precisions_init``), as scikit-learn does."""
    if covariance_type in ("full", "tied"):
        # Upper-triangular U with U U^T = P: factorise the row/column-reversed matrix (#26415).
        flipped = torch.flip(precisions, dims=(-2, -1))
        return torch.flip(torch.linalg.cholesky(flipped), dims=(-2, -1)).contiguous()
    return precisions.sqrt()


def covariances_from_precision_cholesky(prec_chol: Tensor, covariance_type: str) -> Tensor:
    if covariance_type in ("full", "tied"):
        return torch.linalg.inv(prec_chol @ prec_chol.transpose(-2, -1))
    return 1.0 / prec_chol**2


def precisions_from_cholesky(prec_chol: Tensor, covariance_type: str) -> Tensor:
    if covariance_type in ("full", "tied"):
        return prec_chol @ prec_chol.transpose(-2, -1)
    return prec_chol**2


def log_det_cholesky(prec_chol: Tensor, covariance_type: str, n_features: int) -> Tensor:
    """log det of the precision Cholesky factor: per component (K,), or a scalar for tied."""
    if covariance_type == "full":
        return prec_chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    if covariance_type == "tied":
        return prec_chol.diagonal().log().sum()
    if covariance_type == "diag":
        return prec_chol.log().sum(-1)
    return n_features * prec_chol.log()


def log_gaussian_prob(x: Tensor, means: Tensor, prec_chol: Tensor, covariance_type: str) -> Tensor:
    """log N(x | mean_k, cov_k) for every row of ``x`` and component k: shape (n, K).

    Memory is O(n * K * d) for full covariances; callers chunk ``x``.
    """
    n_features = x.shape[1]
    log_det = log_det_cholesky(prec_chol, covariance_type, n_features)
    if covariance_type == "full":
        # y[n, k] = (x_n - mu_k)^T L_k, all components in one matmul.
        k, d, _ = prec_chol.shape
        y = x @ prec_chol.permute(1, 0, 2).reshape(d, k * d)
        y = y.reshape(-1, k, d) - torch.einsum("kd,kde->ke", means, prec_chol)
        maha = y.square().sum(-1)
    elif covariance_type == "tied":
        y = (x @ prec_chol)[:, None, :] - (means @ prec_chol)[None]
        maha = y.square().sum(-1)
    else:
        # Expanded into two GEMMs, as scikit-learn does, but around the components' mean ``c``: the
        # (n, K, d) tensor of centred differences cost ~100x the time at 10^5-10^6 rows (Reddit
        # preset: 13 s per E-step, 0.1 s now) and the cancellation of the expanded form is
        # governed by the data's spread around ``c``, not by their distance from the origin.
        # prec_chol is (K, d) for diag and (K,) for spherical.
        c = means.mean(0)
        xc, mc = x - c, means - c
        if covariance_type == "diag":
            p2 = prec_chol.square()
            maha = xc.square() @ p2.T - 2.0 * (xc @ (mc * p2).T) + (mc.square() * p2).sum(1)
        else:
            p2 = prec_chol.square()
            maha = (xc.square().sum(1, keepdim=True) - 2.0 * (xc @ mc.T) + mc.square().sum(1)) * p2
        maha = maha.clamp_min_(0.0)
    return -0.5 * (n_features * math.log(2 * math.pi) + maha) + log_det
