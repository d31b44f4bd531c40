"""EM as sums: the E-step accumulates sufficient statistics chunk by chunk, the M-step reads them.

Because every statistic is a plain sum over samples, statistics of chunks (or of DDP ranks) add up
exactly to those of the whole data set; one ``all_reduce(SUM)`` makes distributed EM identical to
single-process EM. Second moments are accumulated around a per-component ``shift`` (the previous
means) rather than the origin, so ``E[x x^T] - mu mu^T`` never cancels catastrophically.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

from gnngmm.mixture.gaussian import add_to_diagonal


@dataclass
class SufficientStats:
    """Sums over samples under the responsibilities of one E-step.

    ``sx`` and ``sxx`` are centred on ``shift`` (K, d): ``sx[k] = sum_n r_nk (x_n - shift_k)``;
    ``sxx`` is ``sum_n r_nk (x_n - shift_k)(x_n - shift_k)^T`` for full, its diagonal for diag and
    spherical, and ``sum_n (x_n - shift_0)(x_n - shift_0)^T`` for tied (rows of r sum to one).
    """

    count: Tensor  # () number of samples
    log_likelihood: Tensor  # () sum_n log p(x_n) under the E-step's parameters
    nk: Tensor  # (K,)
    sx: Tensor  # (K, d)
    sxx: Tensor  # (K, d, d) | (d, d) | (K, d)

    def __add__(self, other: SufficientStats) -> SufficientStats:
        return SufficientStats(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def all_reduce(self, reduce_sum) -> SufficientStats:
        """Sum every statistic across processes with one call of ``reduce_sum``."""
        parts = [getattr(self, f.name) for f in fields(self)]
        flat = reduce_sum(torch.cat([p.reshape(-1) for p in parts]))
        out, offset = {}, 0
        for f, p in zip(fields(self), parts):
            out[f.name] = flat[offset : offset + p.numel()].reshape(p.shape)
            offset += p.numel()
        return SufficientStats(**out)


def accumulate(x: Tensor, resp: Tensor, shift: Tensor, covariance_type: str) -> SufficientStats:
    """Statistics of one chunk ``x`` (n, d) with responsibilities ``resp`` (n, K)."""
    nk = resp.sum(0)
    sx = resp.T @ x - nk[:, None] * shift
    if covariance_type == "tied":
        xc = x - shift[0]
        sxx = xc.T @ xc
    elif covariance_type == "full":
        xc = x[:, None, :] - shift[None]  # (n, K, d)
        weighted = (xc * resp[:, :, None]).permute(1, 2, 0)  # (K, d, n)
        sxx = torch.bmm(weighted, xc.permute(1, 0, 2))  # (K, d, d)
    else:
        # sum_n r_nk (x_n - shift_k)^2 per feature, expanded into GEMMs around the shifts' mean
        # (no (n, K, d) tensor; see log_gaussian_prob for the numerics)
        c = shift.mean(0)
        xc, sc = x - c, shift - c
        sxx = (resp.T @ xc.square() - 2.0 * sc * (resp.T @ xc) + nk[:, None] * sc.square()).clamp_min_(0.0)
    zero = x.new_zeros(())
    return SufficientStats(count=zero + x.shape[0], log_likelihood=zero, nk=nk, sx=sx, sxx=sxx)


def m_step(
    stats: SufficientStats, shift: Tensor, covariance_type: str, reg_covar: float
) -> tuple[Tensor, Tensor, Tensor]:
    """``(nk, means, covariances)`` exactly as scikit-learn's ``_estimate_gaussian_parameters``.

    ``nk`` carries scikit-learn's ``+ 10 * eps`` so that empty components give finite means.
    """
    eps = torch.finfo(stats.nk.dtype).eps
    nk = stats.nk + 10 * eps
    means = (stats.sx + stats.nk[:, None] * shift) / nk[:, None]
    dev = means - shift  # mean minus shift, per component
    sx, n = stats.sx, stats.nk
    if covariance_type == "full":
        cross = sx[:, :, None] * dev[:, None, :]
        cov = stats.sxx - cross - cross.transpose(1, 2) + n[:, None, None] * dev[:, :, None] * dev[:, None, :]
        cov = add_to_diagonal(cov / nk[:, None, None], reg_covar)
        cov = 0.5 * (cov + cov.transpose(1, 2))
    elif covariance_type == "tied":
        cross = sx.T @ dev  # sum_k sx_k dev_k^T
        cov = stats.sxx - cross - cross.T + (dev * n[:, None]).T @ dev
        cov = add_to_diagonal(cov / nk.sum(), reg_covar)
        cov = 0.5 * (cov + cov.T)
    else:
        total = (stats.sxx - 2.0 * sx * dev + n[:, None] * dev.square()).clamp_min(0.0)
        if covariance_type == "isotropic":  # one variance: all squared deviations / (N d)
            shared = total.sum() / (nk.sum() * total.shape[1]) + reg_covar
            return nk, means, shared.expand(nk.shape[0]).clone()
        cov = total / nk[:, None] + reg_covar
        if covariance_type == "spherical":
            cov = cov.mean(1)
    return nk, means, cov
