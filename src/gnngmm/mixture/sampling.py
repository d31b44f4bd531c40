"""Drawing from a fitted Gaussian mixture, exactly as scikit-learn's ``BaseMixture.sample`` draws."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.utils import check_random_state


def numpy_rng(random_state) -> np.random.RandomState:
    """The sampling generator: scikit-learn's ``check_random_state`` of ``random_state`` (an int, a
    ``RandomState`` or None); a torch generator seeds a new ``RandomState`` with one draw."""
    if isinstance(random_state, torch.Generator):
        seed = torch.randint(np.iinfo(np.int32).max, (1,), generator=random_state, device=random_state.device)
        return np.random.RandomState(int(seed))
    return check_random_state(random_state)


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
