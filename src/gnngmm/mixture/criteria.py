"""Choosing the number of components without labels: fit each K, then keep the lowest BIC
(``criterion="bic"``), or with ``criterion="bic_knee"`` the lowest BIC when it lies inside the
range and the knee of the BIC curve when BIC still falls at the largest K tried.

On embeddings trained for clustering, BIC often keeps falling up to the largest K tried: each
extra component still buys likelihood on non-Gaussian clusters, so the minimum is just the range's
end. The knee (the K farthest below the chord joining the curve's ends, as in Kneedle) finds where
that gain drops off instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from gnngmm.mixture.gaussian_mixture import GaussianMixture

CRITERIA = ("bic", "bic_knee")


def knee(ks: Sequence[int], values: Sequence[float]) -> int:
    """The K of a decreasing curve farthest below the straight line joining its end points (both
    axes scaled to [0, 1]); the first K when the curve is no lower than that line anywhere."""
    if len(ks) < 3:
        return ks[min(range(len(ks)), key=lambda i: values[i])]
    x0, x1 = ks[0], ks[-1]
    y0, y1 = values[0], values[-1]
    if y0 == y1:
        return ks[0]
    below = [(1 - (k - x0) / (x1 - x0)) - (v - y1) / (y0 - y1) for k, v in zip(ks, values)]
    best = max(range(len(ks)), key=lambda i: below[i])
    return ks[best] if below[best] > 0 else ks[0]


def select_k(
    X, k_values: Iterable[int], make_gmm: Callable[[int], GaussianMixture], criterion: str = "bic"
) -> tuple[GaussianMixture, list[dict]]:
    """Fit ``make_gmm(k)`` on ``X`` for every k; return the mixture the criterion picks and one row
    per k (``k``, ``bic``, ``aic``, ``log_likelihood``, ``converged``). K larger than the sample
    count is skipped."""
    if criterion not in CRITERIA:
        raise ValueError(f"gmm.k_criterion={criterion!r} is not one of {', '.join(CRITERIA)}")
    rows, fitted = [], {}
    for k in k_values:
        gmm = make_gmm(int(k))
        try:
            gmm.fit(X)
        except ValueError as err:
            if "Expected n_samples >= n_components" in str(err):
                continue
            raise
        rows.append(
            dict(k=int(k), bic=gmm.bic(X), aic=gmm.aic(X), log_likelihood=gmm.score(X), converged=bool(gmm.converged_))
        )
        fitted[int(k)] = gmm
    if not rows:
        raise ValueError(f"no K in {list(k_values)} could be fitted")
    chosen = min(rows, key=lambda r: r["bic"])["k"]
    if criterion == "bic_knee" and chosen == rows[-1]["k"]:  # no minimum inside the range
        chosen = knee([r["k"] for r in rows], [r["bic"] for r in rows])
    return fitted[chosen], rows
