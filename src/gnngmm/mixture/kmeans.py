"""k-means++ seeding and chunked Lloyd iterations: the GMM's default initialisation.

Works on a sequence of chunks and sums through a :class:`Communicator`, so the seeding and the
centres are identical on every DDP rank (the seeding runs on a gathered sample with one seed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from gnngmm.mixture.distributed import LOCAL, Communicator


def squared_distances(x: Tensor, centers: Tensor) -> Tensor:
    d2 = x.square().sum(1, keepdim=True) - 2.0 * x @ centers.T + centers.square().sum(1)[None]
    return d2.clamp_min_(0.0)


def kmeans_plusplus(x: Tensor, n_clusters: int, generator: torch.Generator) -> Tensor:
    """Indices of ``n_clusters`` seeds by greedy k-means++ (``2 + log k`` trials per seed)."""
    n = x.shape[0]
    trials = 2 + int(math.log(n_clusters))
    first = int(torch.randint(n, (1,), generator=generator, device="cpu"))
    indices = [first]
    closest = squared_distances(x, x[first : first + 1])[:, 0]
    potential = closest.sum()
    for _ in range(1, n_clusters):
        draws = torch.rand(trials, generator=generator, device="cpu", dtype=x.dtype).to(x.device)
        cumulative = torch.cumsum(closest, 0)
        candidates = torch.searchsorted(cumulative, draws * potential).clamp_(max=n - 1)
        candidate_d2 = torch.minimum(closest[None], squared_distances(x[candidates], x))
        potentials = candidate_d2.sum(1)
        best = int(torch.argmin(potentials))
        closest, potential = candidate_d2[best], potentials[best]
        indices.append(int(candidates[best]))
    return torch.tensor(indices, device=x.device)


def seeding_sample(
    chunks: Sequence[Tensor], size: int, generator: torch.Generator, comm: Communicator = LOCAL
) -> Tensor:
    """Up to ``size`` rows drawn uniformly from the local chunks, then gathered over ranks."""
    n = sum(c.shape[0] for c in chunks)
    if n <= size:
        local = torch.cat(list(chunks))
    else:
        pick = torch.randperm(n, generator=generator, device="cpu")[:size].sort().values
        local = _take(chunks, pick)
    return comm.all_gather_rows(local)


def _take(chunks: Sequence[Tensor], indices: Tensor) -> Tensor:
    rows, start = [], 0
    for c in chunks:
        mask = (indices >= start) & (indices < start + c.shape[0])
        rows.append(c[(indices[mask] - start).to(c.device)])
        start += c.shape[0]
    return torch.cat(rows)


def assign(x: Tensor, centers: Tensor) -> Tensor:
    return squared_distances(x, centers).argmin(1)


def lloyd(
    chunks: Sequence[Tensor],
    centers: Tensor,
    comm: Communicator = LOCAL,
    max_iter: int = 300,
    tol: float = 1e-4,
) -> tuple[Tensor, float]:
    """Lloyd iterations from ``centers`` until the centre shift falls below ``tol`` times the
    mean feature variance (scikit-learn's rule). Empty clusters keep their previous centre.
    Returns the centres and the inertia (sum of squared distances) of the last assignment."""
    k, d = centers.shape
    dtype = centers.dtype
    total = comm.all_reduce_sum(
        torch.stack([c.new_tensor(float(c.shape[0]), dtype=dtype) for c in chunks]).sum().reshape(1)
    )
    s1 = comm.all_reduce_sum(sum(c.sum(0) for c in chunks))
    mean = s1 / total
    s2 = comm.all_reduce_sum(sum((c - mean).square().sum(0) for c in chunks))
    tol_abs = tol * float((s2 / total).mean())
    for _ in range(max_iter):
        sums = centers.new_zeros(k, d)
        counts = centers.new_zeros(k)
        inertia = centers.new_zeros(1)
        for c in chunks:
            d2 = squared_distances(c, centers)
            best, labels = d2.min(1)
            inertia += best.sum()
            sums.index_add_(0, labels, c)
            counts += torch.bincount(labels, minlength=k).to(dtype)
        sums = comm.all_reduce_sum(sums)
        counts = comm.all_reduce_sum(counts)
        inertia = comm.all_reduce_sum(inertia)
        new = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], centers)
        shift = float((new - centers).square().sum())
        centers = new
        if shift <= tol_abs:
            break
    return centers, float(inertia)
