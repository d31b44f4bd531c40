"""The GMM against scikit-learn: same data, same initial parameters, float64."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGMM

from gnngmm.mixture import COVARIANCE_TYPES, GaussianMixture

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # tol=0 runs by design
RTOL = 1e-10  # measured agreement is ~1e-14 (float64, same initial parameters)


def rel_err(ours, ref) -> float:
    ours = ours.detach().cpu().numpy() if isinstance(ours, torch.Tensor) else np.asarray(ours)
    ref = np.asarray(ref)
    return float(np.abs(ours - ref).max() / max(np.abs(ref).max(), 1e-300))


@pytest.fixture(scope="module")
def blobs():
    x, _ = make_blobs(500, n_features=4, centers=3, cluster_std=[1.0, 2.0, 0.6], random_state=0)
    return x @ np.random.RandomState(1).randn(4, 4)  # correlated features


def sklearn_pair(x, covariance_type, init_params, max_iter=25):
    """Initial parameters from scikit-learn's own initialisation, then both fits from them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        init = SkGMM(3, covariance_type=covariance_type, init_params=init_params, random_state=0, max_iter=0).fit(x)
        weights = init.weights_ / init.weights_.sum()
        kwargs = dict(
            covariance_type=covariance_type,
            weights_init=weights,
            means_init=init.means_,
            precisions_init=init.precisions_,
            max_iter=max_iter,
            tol=0.0,
        )
        ref = SkGMM(3, **kwargs).fit(x)
    ours = GaussianMixture(3, **kwargs).fit(x)
    return ours, ref


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("init_params", ["kmeans", "random"])
def test_parameters_match_sklearn(blobs, covariance_type, init_params):
    ours, ref = sklearn_pair(blobs, covariance_type, init_params)
    assert ours.n_iter_ == ref.n_iter_ == 25
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_"):
        assert rel_err(getattr(ours, name), getattr(ref, name)) < RTOL, name
    assert abs(ours.lower_bound_ - ref.lower_bound_) / abs(ref.lower_bound_) < RTOL
    np.testing.assert_allclose(ours.lower_bounds_, ref.lower_bounds_, rtol=RTOL)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_scores_match_sklearn(blobs, covariance_type):
    ours, ref = sklearn_pair(blobs, covariance_type, "kmeans", max_iter=10)
    assert rel_err(ours.score_samples(blobs), ref.score_samples(blobs)) < RTOL
    assert rel_err(ours.predict_proba(blobs), ref.predict_proba(blobs)) < RTOL
    assert (ours.predict(blobs) == ref.predict(blobs)).all()
    assert abs(ours.score(blobs) - ref.score(blobs)) < RTOL * abs(ref.score(blobs))
    assert abs(ours.bic(blobs) - ref.bic(blobs)) < RTOL * abs(ref.bic(blobs))
    assert abs(ours.aic(blobs) - ref.aic(blobs)) < RTOL * abs(ref.aic(blobs))
    assert ours.n_parameters() == ref._n_parameters()


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_own_kmeans_init_converges_to_sklearn_optimum(blobs, covariance_type):
    """Different RNGs, same well-separated optimum: the lower bounds agree."""
    ours = GaussianMixture(3, covariance_type=covariance_type, random_state=0, n_init=3).fit(blobs)
    ref = SkGMM(3, covariance_type=covariance_type, random_state=0, n_init=3).fit(blobs)
    assert ours.converged_
    assert abs(ours.lower_bound_ - ref.lower_bound_) < 1e-3 * abs(ref.lower_bound_)


def test_predict_proba_rows_sum_to_one(blobs):
    gmm = GaussianMixture(3, random_state=0).fit(blobs)
    proba = gmm.predict_proba(blobs)
    assert isinstance(proba, np.ndarray) and proba.shape == (500, 3)
    np.testing.assert_allclose(proba.sum(1), np.ones(500), rtol=1e-12)
    assert bool((proba >= 0).all())


def test_float32_input_is_fitted_in_float64(blobs):
    x32 = torch.as_tensor(blobs, dtype=torch.float32)
    gmm = GaussianMixture(3, random_state=0).fit(x32)
    assert gmm.means_.dtype == torch.float64
    ref = GaussianMixture(3, random_state=0).fit(x32.double())
    assert abs(gmm.lower_bound_ - ref.lower_bound_) < 1e-9


def test_chunked_equals_whole(blobs):
    """Chunks of rows (or a list of tensors) give the same EM: the statistics are sums."""
    kwargs = dict(covariance_type="full", random_state=0, max_iter=15, tol=0.0, init_params="random_from_data")
    whole = GaussianMixture(3, **kwargs).fit(blobs)
    chunked = GaussianMixture(3, chunk_size=37, **kwargs).fit(blobs)
    parts = GaussianMixture(3, **kwargs).fit([torch.as_tensor(blobs[:123]), torch.as_tensor(blobs[123:])])
    for other in (chunked, parts):
        assert rel_err(other.means_, whole.means_) < 1e-10
        assert rel_err(other.covariances_, whole.covariances_) < 1e-10
        assert abs(other.lower_bound_ - whole.lower_bound_) < 1e-10


def test_warm_start_continues_from_previous_fit(blobs):
    """2 + 2 warm-started iterations are 4 iterations: a second fit that re-initialised would
    repeat the first two instead."""
    gmm = GaussianMixture(3, random_state=0, warm_start=True, max_iter=2, tol=0.0).fit(blobs)
    first = gmm.lower_bound_
    gmm.fit(blobs)
    four = GaussianMixture(3, random_state=0, max_iter=4, tol=0.0).fit(blobs)
    assert gmm.lower_bound_ == pytest.approx(four.lower_bound_, rel=1e-12) and gmm.lower_bound_ > first
    assert rel_err(gmm.means_, four.means_) < 1e-12


def test_state_dict_round_trip(blobs):
    gmm = GaussianMixture(3, covariance_type="diag", random_state=0).fit(blobs)
    clone = GaussianMixture(3, covariance_type="diag").load_state_dict(gmm.state_dict())
    torch.testing.assert_close(clone.score_samples(blobs), gmm.score_samples(blobs))
