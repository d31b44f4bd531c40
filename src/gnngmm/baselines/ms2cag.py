"""MS2CAG-class training-free clustering: modularity-based spectral subspace clustering of an
attributed graph (M-S2CAG; Lin, Yang, Zheng and Ke, "Spectral Subspace Clustering for Attributed
Graphs", KDD 2025).

Three steps, none of them trained:

1. **Multi-scale propagation** (the paper's normalised smoothed representation):
   ``Z = sum_{t=0..T} w_t P^t X^``, with ``P = D^-1 (A + I)`` the random walk on the graph with
   one self-loop per node, ``X^`` the feature rows scaled to unit L2 norm and
   ``w_t = (1 - alpha) alpha^t / (1 - alpha^(T+1))`` (``alpha > 1`` weighs the far hops more);
   ``Z^`` is ``Z`` with its rows scaled to unit norm.
2. **Subspace step**: the modularity matrix of the cosine affinity ``Z^ Z^T``,
   ``M = Z^ Z^T - gamma w w^T / (1^T w)`` with ``w = Z^ Z^T 1`` (its "degrees"), and its top-``k``
   eigenvectors, by block subspace iteration (as the paper; here with an oversampled block and a
   final Rayleigh-Ritz step, so that fewer iterations reach the same subspace).
3. **Clustering step**: the rows of the ``(N, k)`` eigenvector block scaled to unit norm, then
   k-means with restarts, the best judged by the sum of (plain, not squared) distances
   (:func:`kmeans_by_distance`).

Nothing ``N x N`` and nothing ``N x F`` dense is built: ``M`` is applied to an ``(N, r)`` block as
``Z^ (Z^T y)`` through the sparse graph and the (sparse, when mostly zero) feature matrix, and
``Z``'s row norms are accumulated over blocks of feature columns. Memory is O(E + nnz(X) + N r)
plus one ``(N, c)`` column block; time is O(T (E + N) F) once for the norms and
O(n_iter T (E + N) r + n_iter nnz(X) r) for the iteration.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from torch import Tensor

from gnngmm.encoders.propagation import csr_from_keys, csr_tensor, propagate
from gnngmm.errors import InputError

# PyAGC's published settings for the development graphs it benchmarks (hops T, alpha; gamma 1):
# its MS2CAG configuration file. Reported beside the one setting every graph gets by default.
PYAGC_SETTINGS: dict[str, dict] = {
    "cora": {"hops": 16, "alpha": 1.2, "gamma": 1.0},
    "photo": {"hops": 4, "alpha": 1.5, "gamma": 1.0},
    "physics": {"hops": 50, "alpha": 1.2, "gamma": 1.0},
}
# The one setting every graph gets: PyAGC's default block (T, alpha, gamma), which no graph of
# this project was used to choose
DEFAULT_HOPS = 10
DEFAULT_ALPHA = 0.9
DEFAULT_GAMMA = 0.9


def hop_weights(hops: int, alpha: float) -> list[float]:
    """``w_t = (1 - alpha) alpha^t / (1 - alpha^(T+1))`` for ``t = 0..T`` (they sum to 1;
    ``alpha = 1``: all ``1 / (T + 1)``)."""
    if hops < 0:
        raise InputError(f"ms2cag: hops must be >= 0, got {hops}")
    if not alpha > 0:
        raise InputError(f"ms2cag: alpha must be > 0, got {alpha}")
    if math.isclose(alpha, 1.0):
        return [1.0 / (hops + 1)] * (hops + 1)
    raw = [alpha**t for t in range(hops + 1)]
    total = sum(raw)
    return [r / total for r in raw]


def _walk_adjacency(edge_index: Tensor, n: int, chunk: int = 1 << 24) -> tuple[Tensor, Tensor]:
    """``(A + I, 1 / deg)``: the graph made undirected, duplicates merged, one self-loop per node,
    as a binary float32 CSR matrix; ``deg`` its row sums (>= 1)."""
    ei = edge_index.cpu()
    parts = [torch.arange(n, dtype=torch.long) * (n + 1)]
    for start in range(0, ei.shape[1], chunk):
        s, d = ei[0, start : start + chunk], ei[1, start : start + chunk]
        keep = s != d
        s, d = s[keep], d[keep]
        parts += [s * n + d, d * n + s]
    keys = torch.cat(parts).numpy()
    keys.sort()
    unique = np.empty(keys.shape[0], dtype=bool)
    unique[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=unique[1:])
    keys = torch.from_numpy(keys[unique])
    crow, col = csr_from_keys(keys, n)
    del keys
    adj = csr_tensor(crow, col, torch.ones(col.numel()), (n, n))
    deg = (crow[1:] - crow[:-1]).float()
    return adj, 1.0 / deg


def _unit_rows(x: Tensor) -> Tensor:
    """``x`` (dense or sparse CSR) with every nonzero row scaled to unit L2 norm, as float32 CSR
    when at most a quarter of its entries are nonzero (bag-of-words), else dense."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        if x.layout != torch.strided:
            x = x.to_sparse_csr().float().cpu()
        else:
            x = x.float().cpu()
            if x.numel() and float((x != 0).sum()) <= 0.25 * x.numel():
                x = x.to_sparse_csr()
        if x.layout == torch.sparse_csr:
            crow, col, val = x.crow_indices(), x.col_indices(), x.values()
            rows = torch.repeat_interleave(torch.arange(x.shape[0]), crow[1:] - crow[:-1])
            norm = torch.zeros(x.shape[0]).index_add_(0, rows, val.square()).sqrt_()
            scale = torch.where(norm > 0, 1.0 / norm, torch.zeros_like(norm))
            return csr_tensor(crow, col, val * scale[rows], x.shape)
        norm = x.norm(dim=1, keepdim=True)
        return x / torch.where(norm > 0, norm, torch.ones_like(norm))


def _transpose(x: Tensor) -> Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        if x.layout == torch.sparse_csr:
            return x.to_sparse_coo().t().coalesce().to_sparse_csr()
        return x.t().contiguous()


def _column_block(x: Tensor, x_t: Tensor, start: int, end: int) -> Tensor:
    """Columns ``start:end`` of ``x`` as a dense ``(N, end - start)`` tensor (read off ``x_t``'s
    rows when sparse)."""
    if x.layout != torch.sparse_csr:
        return x[:, start:end].contiguous()
    crow, col, val = x_t.crow_indices(), x_t.col_indices(), x_t.values()
    lo, hi = int(crow[start]), int(crow[end])
    block = csr_tensor(crow[start : end + 1] - lo, col[lo:hi], val[lo:hi], (end - start, x.shape[0]))
    return block.to_dense().t().contiguous()


class SmoothedGram:
    """The cosine affinity ``Z^ Z^T`` of the smoothed representation ``Z = F X^``,
    ``F = sum_t w_t P^t``, applied to ``(N, r)`` blocks without forming ``Z``.

    Args:
        x: ``(N, F)`` node features, dense or sparse.
        edge_index: ``(2, E)`` edges (either or both directions; made undirected).
        hops: ``T``, the propagation depth.
        alpha: the hop weights' ratio (see :func:`hop_weights`).
        chunk: elements of one ``(N, c)`` dense column block while ``Z``'s row norms are summed.
    """

    def __init__(self, x: Tensor, edge_index: Tensor, hops: int, alpha: float, chunk: int = 1 << 24):
        n = x.shape[0]
        self.weights = hop_weights(hops, alpha)
        self.adj, self.inv_deg = _walk_adjacency(edge_index, n)
        self.x = _unit_rows(x)
        self.x_t = _transpose(self.x)
        squares = torch.zeros(n, dtype=torch.float64)
        width = max(1, min(self.x.shape[1], chunk // max(1, n)))
        for start in range(0, self.x.shape[1], width):
            z = self.smooth(_column_block(self.x, self.x_t, start, min(start + width, self.x.shape[1])))
            squares += z.double().square().sum(1)
            del z
        norm = squares.sqrt()
        self.inv_norm = torch.where(norm > 0, 1.0 / norm, torch.zeros_like(norm)).float()  # (N,)

    def smooth(self, y: Tensor) -> Tensor:
        """``F y = sum_t w_t P^t y`` for ``y`` (N, c), by Horner's rule (T sparse products)."""
        w = self.weights
        out = w[-1] * y
        for weight in reversed(w[:-1]):
            out = self.inv_deg[:, None] * propagate(self.adj, out)
            out.add_(y, alpha=weight)
        return out

    def smooth_t(self, y: Tensor) -> Tensor:
        """``F^T y = sum_t w_t (P^T)^t y``; ``P^T = (A + I) D^-1`` since ``A`` is symmetric."""
        w = self.weights
        out = w[-1] * y
        for weight in reversed(w[:-1]):
            out = propagate(self.adj, self.inv_deg[:, None] * out)
            out.add_(y, alpha=weight)
        return out

    def __call__(self, y: Tensor) -> Tensor:
        """``Z^ Z^T y`` for ``y`` (N, r), float32 in and out."""
        u = self.smooth_t(self.inv_norm[:, None] * y)  # (N, r)
        v = self.x_t @ u  # (F, r)
        return self.inv_norm[:, None] * self.smooth(self.x @ v)

    def degrees(self) -> Tensor:
        """``(N,)`` float64 ``w = Z^ Z^T 1``, the affinity's degrees (computed once)."""
        if getattr(self, "_degrees", None) is None:
            self._degrees = self(torch.ones(self.x.shape[0], 1)).double().flatten()
        return self._degrees

    def modularity(self, labels: Tensor, gamma: float = DEFAULT_GAMMA) -> float:
        """MS2CAG's objective for a partition ``labels`` (N,): the modularity of the cosine
        affinity ``Z^ Z^T`` at resolution ``gamma``,
        ``sum_c [ ||Z^_c^T 1||^2 - gamma (w^T 1_c)^2 / 1^T w ] / 1^T w``, without forming ``Z``."""
        h = torch.nn.functional.one_hot(torch.as_tensor(labels).long().cpu()).float()  # (N, K)
        zt_h = self.x_t @ self.smooth_t(self.inv_norm[:, None] * h)  # Z^^T H: (F, K)
        omega = self.degrees()
        total = float(omega.sum())
        if total <= 0:
            return 0.0
        inside = zt_h.double().square().sum(0) / total
        degree = (omega @ h.double()) / total
        return float((inside - gamma * degree.square()).sum())


@torch.no_grad()
def ms2cag_embedding(
    x: Tensor,
    edge_index: Tensor,
    k: int,
    *,
    hops: int = DEFAULT_HOPS,
    alpha: float = DEFAULT_ALPHA,
    gamma: float = DEFAULT_GAMMA,
    n_iter: int = 20,
    oversample: int | None = None,
    seed: int = 0,
    chunk: int = 1 << 24,
    gram: SmoothedGram | None = None,
) -> Tensor:
    """The top-``k`` eigenvectors of the modularity matrix of ``Z^ Z^T`` (see the module's text).

    Args:
        x: ``(N, F)`` node features (dense or sparse; rows scaled to unit norm here).
        edge_index: ``(2, E)`` edges; made undirected, duplicates and self-loops merged, one
            self-loop added per node.
        k: the number of clusters (and of eigenvectors), ``1 <= k < N``.
        hops: ``T``, the propagation depth (>= 0).
        alpha: the ratio of consecutive hop weights (> 0).
        gamma: the modularity's resolution, in ``[0, 1]`` (the matrix is then positive
            semi-definite, so its largest eigenvalues are its dominant ones).
        n_iter: block subspace iterations.
        oversample: extra columns in the block (default ``max(k, 10)``), discarded by the final
            Rayleigh-Ritz step.
        seed: seeds the random starting block.
        chunk: elements of one dense ``(N, c)`` feature-column block.
        gram: the :class:`SmoothedGram` of ``(x, edge_index, hops, alpha)`` when already built.

    Returns:
        ``(N, k)`` float64 tensor on the CPU, orthonormal columns, largest eigenvalue first.
    """
    n = x.shape[0]
    if not 1 <= k < n:
        raise InputError(f"ms2cag: k must be in [1, {n - 1}] for {n} nodes, got {k}")
    if not 0.0 <= gamma <= 1.0:
        raise InputError(f"ms2cag: gamma must be in [0, 1], got {gamma}")
    gram = gram if gram is not None else SmoothedGram(x, edge_index, hops, alpha, chunk=chunk)
    omega = gram.degrees()[:, None]  # (N, 1): the affinity's degrees
    total = float(omega.sum())
    scale = gamma / total if total > 0 else 0.0

    def modularity_times(q: Tensor) -> Tensor:
        return gram(q.float()).double() - scale * omega @ (omega.T @ q)

    r = min(n, k + (oversample if oversample is not None else max(k, 10)))
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, r, generator=g, dtype=torch.float64))
    for _ in range(n_iter):
        q, _ = torch.linalg.qr(modularity_times(q))
    small = q.T @ modularity_times(q)  # (r, r) Rayleigh-Ritz
    _, vectors = torch.linalg.eigh((small + small.T) / 2)
    return q @ vectors[:, -k:].flip(1)


def _distances(x: Tensor, centers: Tensor, chunk: int = 1 << 16) -> tuple[Tensor, Tensor]:
    """``(N,)`` Euclidean distance of every row of ``x`` to its nearest centre, and that centre."""
    parts = [torch.cdist(block, centers).min(1) for block in x.split(chunk)]
    return torch.cat([p.values for p in parts]), torch.cat([p.indices for p in parts])


def kmeans_by_distance(
    x: Tensor, k: int, *, seed: int = 0, n_init: int = 10, max_iter: int = 300, tol: float = 1e-4
) -> Tensor:
    """k-means whose seeding and restarts weigh plain (not squared) distances.

    Each restart seeds greedily (k-means++ with ``2 + ln k`` candidates per centre, a candidate
    drawn with probability proportional to its distance to the nearest centre so far, the one
    leaving the smallest sum of distances kept), then runs Lloyd's iterations (means; an empty
    cluster keeps its centre) until the labels stop changing or the centres move less than ``tol``
    times the mean feature variance. The labels of the lowest sum of distances seen at any
    iteration of any restart win. This is the criterion PyAGC's MS2CAG numbers were made with;
    the sum of squared distances picks other basins on some graphs (docs/experiments.md, "Clusters
    that travel").

    Args:
        x: ``(N, d)`` float rows.
        k: clusters, ``1 <= k <= N``.
        seed: seeds the restarts.
        n_init: restarts.
        max_iter: Lloyd iterations per restart.
        tol: relative centre-shift tolerance.

    Returns:
        ``(N,)`` int64 labels on the CPU.
    """
    x = x.float().cpu()
    n = x.shape[0]
    if not 1 <= k <= n:
        raise InputError(f"k-means: k must be in [1, {n}], got {k}")
    g = torch.Generator().manual_seed(seed)
    trials = 2 + int(math.log(k))
    shift_tol = tol * float(x.var(0).mean()) if n > 1 else 0.0
    best_cost, best_labels = float("inf"), None
    for _ in range(max(1, n_init)):
        centers = x[torch.randint(n, (1,), generator=g)]
        nearest = _distances(x, centers)[0].double()
        for _ in range(1, k):
            total = float(nearest.sum())
            if total <= 0:  # fewer distinct rows than clusters
                candidates = torch.randint(n, (trials,), generator=g)
            else:
                draws = torch.rand(trials, generator=g, dtype=torch.float64) * total
                candidates = torch.searchsorted(torch.cumsum(nearest, 0), draws).clamp_(max=n - 1)
            leave = torch.minimum(nearest[None], torch.cdist(x[candidates], x).double())
            pick = int(leave.sum(1).argmin())
            nearest = leave[pick]
            centers = torch.cat([centers, x[candidates[pick]][None]])
        labels = _distances(x, centers)[1]
        for _ in range(max_iter):
            counts = torch.bincount(labels, minlength=k).float()
            sums = torch.zeros_like(centers).index_add_(0, labels, x)
            new = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], centers)
            dist, new_labels = _distances(x, new)
            cost = float(dist.double().sum())
            if cost < best_cost:
                best_cost, best_labels = cost, new_labels
            moved = float((new - centers).norm(dim=1).sum())
            done = torch.equal(new_labels, labels) or moved <= shift_tol
            centers, labels = new, new_labels
            if done:
                break
    return best_labels


def ms2cag_labels(
    x: Tensor,
    edge_index: Tensor,
    k: int,
    *,
    seed: int = 0,
    hops: int = DEFAULT_HOPS,
    alpha: float = DEFAULT_ALPHA,
    gamma: float = DEFAULT_GAMMA,
    n_iter: int = 20,
    n_init: int = 10,
    max_iter: int = 300,
    kmeans: str = "distance",
    return_embedding: bool = False,
    gram: SmoothedGram | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """MS2CAG's partition of the nodes into ``k`` clusters.

    Args:
        x, edge_index, k, hops, alpha, gamma, n_iter: as :func:`ms2cag_embedding`.
        seed: seeds the eigenvector iteration's start and the k-means restarts.
        n_init: k-means restarts (:func:`kmeans_by_distance`).
        max_iter: Lloyd iterations per restart.
        kmeans: ``distance`` (:func:`kmeans_by_distance`, as PyAGC) or ``inertia`` (restarts judged
            by the sum of squared distances: :func:`gnngmm.baselines.kmeans.kmeans_labels`).
        return_embedding: also return the ``(N, k)`` row-normalised embedding that k-means
            clustered.
        gram: the :class:`SmoothedGram` of ``(x, edge_index, hops, alpha)`` when already built.

    Returns:
        ``(N,)`` int64 labels in ``[0, k)`` on the CPU; with ``return_embedding``, ``(labels,
        embedding)``.
    """
    vectors = ms2cag_embedding(
        x, edge_index, k, hops=hops, alpha=alpha, gamma=gamma, n_iter=n_iter, seed=seed, gram=gram
    )
    norm = vectors.norm(dim=1, keepdim=True)
    embedding = (vectors / torch.where(norm > 0, norm, torch.ones_like(norm))).float()
    if kmeans == "distance":
        labels = kmeans_by_distance(embedding, k, seed=seed, n_init=n_init, max_iter=max_iter)
    elif kmeans == "inertia":
        from gnngmm.baselines.kmeans import kmeans_labels

        labels = kmeans_labels(embedding, k, seed=seed, n_init=n_init, max_iter=max_iter)
    else:
        raise InputError(f"ms2cag: kmeans={kmeans!r} is not one of distance, inertia")
    return (labels, embedding) if return_embedding else labels
