"""Initial parameters of a Gaussian mixture: the responsibilities ``init_params`` defines, as statistics.

scikit-learn initialises by an M-step from responsibilities: k-means labels (``"kmeans"``), one-hot
on k-means++ seeds (``"k-means++"``) or on random rows (``"random_from_data"``), or uniform random
rows (``"random"``). The functions here return those responsibilities' sufficient statistics and
their shift, so :func:`gnngmm.mixture.stats.m_step` gives the initial ``(nk, means, covariances)``.
The k-means is this package's (chunked, DDP-aware, :mod:`gnngmm.mixture.kmeans`). Shapes: ``K``
components, ``d`` features, this rank's chunks ``(n_i, d)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral

import numpy as np
import torch
from sklearn.utils import check_random_state
from torch import Tensor

from gnngmm.mixture import kmeans as km
from gnngmm.mixture.chunks import count_rows, data_mean
from gnngmm.mixture.distributed import Communicator
from gnngmm.mixture.stats import SufficientStats, accumulate, m_step
from gnngmm.mixture.validation import check_means, check_precisions, check_weights

INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")


def torch_generator(random_state, comm: Communicator, device: torch.device) -> torch.Generator:
    """The initialisation's generator: ``random_state`` itself (a torch generator), seeded with it
    (an int), or seeded from NumPy's generator (a ``RandomState``, or the global one for None;
    rank 0's seed under DDP)."""
    if isinstance(random_state, torch.Generator):
        return random_state
    if isinstance(random_state, Integral):
        seed = int(random_state)
    else:
        seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
        if comm.world_size > 1:
            seed_t = torch.tensor([float(seed)], dtype=torch.float64, device=device)
            seed = int(comm.broadcast_from_zero(seed_t).item())
    return torch.Generator().manual_seed(seed)


def given_parameters(
    weights,
    means,
    precisions,
    *,
    covariance_type: str,
    n_components: int,
    n_features: int,
    dtype: torch.dtype,
    device: torch.device,
) -> dict[str, Tensor | None]:
    """``weights_init`` ``(K,)``, ``means_init`` ``(K, d)`` and ``precisions_init`` checked as
    scikit-learn checks them (:mod:`gnngmm.mixture.validation`), as ``dtype`` tensors on ``device``.

    Returns:
        dict: ``"weights"``, ``"means"``, ``"precisions"``; ``None`` for what was not given.

    Raises:
        ValueError: a given parameter of the wrong shape or with invalid values.
    """
    checked = {
        "weights": None if weights is None else check_weights(weights, n_components),
        "means": None if means is None else check_means(means, n_components, n_features),
        "precisions": None
        if precisions is None
        else check_precisions(precisions, covariance_type, n_components, n_features),
    }
    return {
        name: None if value is None else torch.as_tensor(value).to(device=device, dtype=dtype)
        for name, value in checked.items()
    }


def responsibility_stats(
    chunks: Sequence[Tensor], resp: Sequence[Tensor], shift: Tensor, covariance_type: str, comm: Communicator
) -> SufficientStats:
    """Statistics of the responsibilities ``resp`` (one ``(n_i, K)`` block per chunk) around ``shift``
    ``(K, d)``, summed over chunks and ranks."""
    total = None
    for x, r in zip(chunks, resp):
        s = accumulate(x, r, shift, covariance_type)
        total = s if total is None else total + s
    return total.all_reduce(comm.all_reduce_sum)


def random_stats(
    chunks: Sequence[Tensor], n_components: int, covariance_type: str, generator: torch.Generator, comm: Communicator
) -> tuple[SufficientStats, Tensor]:
    """``"random"``: uniform random responsibilities (drawn on the CPU, rows normalised) around the
    data mean; returns the statistics and their ``(K, d)`` shift."""
    center = data_mean(chunks, comm)
    shift = center.expand(n_components, -1).contiguous()
    resp = [torch.rand(x.shape[0], n_components, generator=generator, dtype=x.dtype).to(x.device) for x in chunks]
    resp = [r / r.sum(1, keepdim=True) for r in resp]
    return responsibility_stats(chunks, resp, shift, covariance_type, comm), shift


def seed_stats(seeds: Tensor, n_components: int, covariance_type: str) -> tuple[SufficientStats, Tensor]:
    """One-hot responsibilities on the ``(K, d)`` seed rows (each component is one sample), as
    statistics centred on the seeds themselves (the shift)."""
    k = n_components
    zeros = seeds.new_zeros(())
    sxx_shape = {"full": (k,) + seeds.shape[1:] * 2, "tied": seeds.shape[1:] * 2}.get(covariance_type, seeds.shape)
    stats = SufficientStats(
        count=zeros + k, log_likelihood=zeros, nk=seeds.new_ones(k),
        sx=torch.zeros_like(seeds), sxx=seeds.new_zeros(sxx_shape),
    )  # fmt: skip
    return stats, seeds


def kmeans_centers(
    chunks: Sequence[Tensor],
    sample: Tensor,
    seeds: Tensor,
    *,
    n_init: int,
    generator: torch.Generator,
    comm: Communicator,
) -> Tensor:
    """``(K, d)`` k-means centres from ``seeds`` (k-means++ on the seeding ``sample``), and with
    ``n_init > 1`` from further k-means++ seedings: the lowest inertia wins.

    When the data has more rows than the sample the restarts compete on the sample (identical on
    every rank, so no all-reduce) and only the winner converges on every row.
    """
    k = seeds.shape[0]
    if n_init > 1 and sample.shape[0] < count_rows(chunks, comm):
        centers, inertia = km.lloyd([sample], seeds)
        for _ in range(n_init - 1):
            other, other_inertia = km.lloyd([sample], sample[km.kmeans_plusplus(sample, k, generator)])
            if other_inertia < inertia:
                centers, inertia = other, other_inertia
        centers, inertia = km.lloyd(chunks, centers, comm)
        return centers
    centers, inertia = km.lloyd(chunks, seeds, comm)
    for _ in range(n_init - 1):
        seeds = sample[km.kmeans_plusplus(sample, k, generator)]
        other, other_inertia = km.lloyd(chunks, seeds, comm)
        if other_inertia < inertia:
            centers, inertia = other, other_inertia
    return centers


def initial_stats(
    chunks: Sequence[Tensor],
    *,
    init_params: str,
    n_components: int,
    covariance_type: str,
    generator: torch.Generator,
    comm: Communicator,
    seeding_sample_size: int,
    kmeans_n_init: int,
) -> tuple[SufficientStats, Tensor]:
    """Statistics of the initial responsibilities ``init_params`` defines (one of ``INIT_PARAMS``),
    summed over chunks and ranks, and their ``(K, d)`` shift; every draw comes from ``generator``.

    ``"kmeans"``: labels of the k-means (``kmeans_n_init`` restarts) seeded by k-means++ on up to
    ``seeding_sample_size`` rows; ``"k-means++"``: the k-means++ seeds themselves;
    ``"random_from_data"``: K random rows of that sample; ``"random"``: :func:`random_stats`.
    """
    k = n_components
    if init_params == "random":
        return random_stats(chunks, k, covariance_type, generator, comm)
    sample = km.seeding_sample(chunks, seeding_sample_size, generator, comm)
    if init_params == "random_from_data":
        seeds = sample[torch.randperm(sample.shape[0], generator=generator)[:k].to(sample.device)]
    else:
        seeds = sample[km.kmeans_plusplus(sample, k, generator)]
    if init_params in ("random_from_data", "k-means++"):
        return seed_stats(seeds, k, covariance_type)
    centers = kmeans_centers(chunks, sample, seeds, n_init=kmeans_n_init, generator=generator, comm=comm)
    shift = centers if covariance_type != "tied" else centers.mean(0).expand_as(centers)
    resp = [torch.nn.functional.one_hot(km.assign(x, centers), k).to(x.dtype) for x in chunks]
    return responsibility_stats(chunks, resp, shift, covariance_type, comm), shift


def parameters_from_responsibilities(
    chunks: Sequence[Tensor], resp: Sequence[Tensor], covariance_type: str, reg_covar: float, comm: Communicator
) -> tuple[Tensor, Tensor, Tensor]:
    """``(nk, means, covariances)`` of one M-step from given responsibilities (one ``(n_i, K)`` block
    per chunk, rows summing to one), as :func:`gnngmm.mixture.stats.m_step` returns them.

    The statistics are taken twice: around the data mean, then around the means found, which keeps
    the covariances free of cancellation whatever the responsibilities.
    """
    center = data_mean(chunks, comm)
    shift = center.expand(resp[0].shape[1], -1).contiguous()
    nk, means, cov = m_step(
        responsibility_stats(chunks, resp, shift, covariance_type, comm), shift, covariance_type, reg_covar
    )
    shift = means if covariance_type != "tied" else means.mean(0).expand_as(means)
    return m_step(responsibility_stats(chunks, resp, shift, covariance_type, comm), shift, covariance_type, reg_covar)
