"""Choosing the number of components without labels: fit each K, keep the lowest BIC."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from gnngmm.mixture.gaussian_mixture import GaussianMixture


def select_k(
    X, k_values: Iterable[int], make_gmm: Callable[[int], GaussianMixture]
) -> tuple[GaussianMixture, list[dict]]:
    """Fit ``make_gmm(k)`` on ``X`` for every k; return the lowest-BIC mixture and one row per k
    (``k``, ``bic``, ``aic``, ``log_likelihood``, ``converged``). K larger than the sample count
    is skipped."""
    rows, best, best_bic = [], None, float("inf")
    for k in k_values:
        gmm = make_gmm(int(k))
        try:
            gmm.fit(X)
        except ValueError as err:
            if "exceeds the number of samples" in str(err):
                continue
            raise
        bic = gmm.bic(X)
        rows.append(
            dict(k=int(k), bic=bic, aic=gmm.aic(X), log_likelihood=gmm.score(X), converged=bool(gmm.converged_))
        )
        if bic < best_bic:
            best, best_bic = gmm, bic
    if best is None:
        raise ValueError(f"no K in {list(k_values)} could be fitted")
    return best, rows
