"""scikit-learn's own tests and estimator checks, run against gnngmm's ``GaussianMixture``.

The tests are read from the installed scikit-learn at test time (``sklearn/mixture/tests/
test_gaussian_mixture.py``; nothing is copied into this repository), loaded as a private module
whose ``GaussianMixture`` name is bound to ours, and collected here under their own names. Tests
that call scikit-learn's private methods or mock its internals, and tests of scikit-learn's private
helpers that never construct the class, are skipped with the reason; the tests below them replace
the private-method ones through the public API. ``parametrize_with_checks`` runs scikit-learn's
estimator checks on the default mixture and on ``degenerate="recover"`` (the GNN pipeline's).
"""

from __future__ import annotations

import importlib.util
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import sklearn
import torch
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.mixture import GaussianMixture as SkGMM
from sklearn.utils.estimator_checks import parametrize_with_checks

from gnngmm.mixture import GaussianMixture, GMMNumericalError

SUITE_PATH = Path(sklearn.__file__).parent / "mixture" / "tests" / "test_gaussian_mixture.py"


def _load_suite():
    spec = importlib.util.spec_from_file_location("sklearn_test_gaussian_mixture_for_gnngmm", SUITE_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.GaussianMixture = GaussianMixture  # the one name the tests construct the class by
    return module


suite = _load_suite()

# Tests of scikit-learn's private helper functions: they never construct GaussianMixture.
NOT_THE_CLASS = {
    "test_suffstat_sk_full": "tests scikit-learn's private _estimate_gaussian_covariances_full, not the class",
    "test_suffstat_sk_tied": "tests scikit-learn's private _estimate_gaussian_covariances_tied, not the class",
    "test_suffstat_sk_diag": "tests scikit-learn's private _estimate_gaussian_covariances_diag, not the class",
    "test_gaussian_suffstat_sk_spherical": "tests scikit-learn's private _estimate_gaussian_covariances_spherical, "
    "not the class",
    "test_compute_log_det_cholesky": "tests scikit-learn's private _compute_log_det_cholesky, not the class",
    "test_gaussian_mixture_log_probabilities": (
        "tests scikit-learn's private _estimate_log_gaussian_prob, not the class"
    ),
}
# Tests that reach into scikit-learn's private methods or internals of its class.
PRIVATE = {
    "test_gaussian_mixture_precisions_init": "calls the private GaussianMixture._set_parameters and ._initialize(X, "
    "resp); replaced by test_precisions_init_gives_sklearns_cholesky_factor below",
    "test_gaussian_mixture_all_init_does_not_estimate_gaussian_parameters": "mocks scikit-learn's private "
    "_estimate_gaussian_parameters; replaced by test_given_initial_parameters_are_used_as_given below",
    "test_gaussian_mixture_precisions_init_diag": "pairs precisions_init built from scikit-learn's "
    "KMeans(random_state=0) clusters with the means of the class's own k-means initialisation; this engine's "
    "k-means draws from its own generator and orders the two clusters the other way round, so the pairing is "
    "wrong, not the class; replaced by test_given_precisions_need_no_more_iterations_than_estimated_ones below",
    "test_gaussian_mixture_raises_where_array_api_not_implemented": "asserts a scikit-learn limitation (no k-means "
    "initialisation under array_api_dispatch); this engine runs every initialisation on NumPy and torch input",
}
# array_api_dispatch needs SCIPY_ARRAY_API=1; the test reads it when it runs.
NEEDS_ARRAY_API = {"test_gaussian_mixture_array_api_compliance"}


@pytest.fixture
def scipy_array_api(monkeypatch):
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")


_FLOAT32 = pytest.mark.skip(
    reason="EM runs and stores its parameters in `dtype` (float64 by default) whatever the input's precision; "
    "scikit-learn fits float32 input in float32, so the float32 cases assert a float32 means_"
)


@pytest.fixture(params=[pytest.param(np.float32, marks=_FLOAT32), np.float64])
def global_dtype(request):
    """scikit-learn's fixture of the same name (its conftest is not loaded here)."""
    return request.param


def _random_seeds() -> list[int]:
    """scikit-learn's ``global_random_seed`` values: 42, or SKLEARN_TESTS_GLOBAL_RANDOM_SEED (an int,
    ``a-b`` or ``all``)."""
    value = os.environ.get("SKLEARN_TESTS_GLOBAL_RANDOM_SEED")
    if value is None:
        return [42]
    if value == "all":
        return list(range(100))
    low, _, high = value.partition("-")
    return list(range(int(low), int(high or low) + 1))


@pytest.fixture(params=_random_seeds())
def global_random_seed(request):
    """scikit-learn's fixture of the same name (its conftest is not loaded here)."""
    return request.param


def _collect_suite() -> dict:
    tests = {}
    for name in sorted(vars(suite)):
        func = getattr(suite, name)
        if not (name.startswith("test_") and callable(func)):
            continue
        if name in NOT_THE_CLASS:
            func = pytest.mark.skip(reason=NOT_THE_CLASS[name])(func)
        elif name in PRIVATE:
            func = pytest.mark.skip(reason=PRIVATE[name])(func)
        if name in NEEDS_ARRAY_API:
            func = pytest.mark.usefixtures("scipy_array_api")(func)
        tests[name] = func
    return tests


SUITE_TESTS = _collect_suite()
globals().update(SUITE_TESTS)


def test_the_suite_is_the_installed_one_and_every_test_is_classified():
    """The suite comes from the installed scikit-learn, runs our class, and no test of it is lost."""
    assert Path(suite.__file__) == SUITE_PATH and suite.GaussianMixture is GaussianMixture
    assert len(SUITE_TESTS) >= 40
    for listed in (NOT_THE_CLASS, PRIVATE, NEEDS_ARRAY_API):
        assert set(listed) <= set(SUITE_TESTS), set(listed) - set(SUITE_TESTS)


# ---------------------------------------------------------------- estimator checks
# Every check passes; a check that fails for a reason we accept goes here, with the reason.
EXPECTED_FAILED_CHECKS: dict[str, str] = {}


@parametrize_with_checks(
    [GaussianMixture(), GaussianMixture(degenerate="recover")],
    expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS,
)
def test_sklearn_estimator_checks(estimator, check, monkeypatch):
    if "array_api" in getattr(check, "func", check).__name__:
        monkeypatch.setenv("SCIPY_ARRAY_API", "1")  # read when the check runs
    check(estimator)


# ---------------------------------------------------------------- what the skipped tests checked
@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_precisions_init_gives_sklearns_cholesky_factor(covariance_type):
    """``precisions_init`` becomes the same upper-triangular Cholesky factor as scikit-learn's."""
    from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky_from_precisions

    x = np.random.RandomState(0).random_sample((100, 3))
    precisions = SkGMM(4, covariance_type=covariance_type, random_state=0).fit(x).precisions_
    ours = GaussianMixture(4, covariance_type=covariance_type, precisions_init=precisions, max_iter=0).fit(x)
    expected = _compute_precision_cholesky_from_precisions(precisions, covariance_type, xp=np)
    np.testing.assert_allclose(ours.precisions_cholesky_, expected, rtol=1e-12)
    np.testing.assert_allclose(ours.precisions_, precisions, rtol=1e-10)


def test_given_precisions_need_no_more_iterations_than_estimated_ones():
    """scikit-learn's test_gaussian_mixture_precisions_init_diag with the labels of this engine's
    own k-means initialisation (scikit-learn's KMeans orders the two clusters the other way round
    for random_state=0, so there the precisions would be paired with the wrong means)."""
    rng = np.random.RandomState(0)
    x = np.vstack([rng.randn(300, 2) + 20.0, rng.randn(300, 2) @ np.array([[0.0, -0.7], [3.5, 0.7]])])
    labels = GaussianMixture(2, covariance_type="diag", random_state=0, max_iter=0).fit(x).predict(x)
    resp = np.eye(2)[labels]
    nk = resp.sum(0) + 10 * np.finfo(np.float64).eps
    means = resp.T @ x / nk[:, None]
    variances = (resp.T @ x**2 - 2 * means * (resp.T @ x)) / nk[:, None] + means**2 + 1e-6
    with_init = GaussianMixture(2, covariance_type="diag", precisions_init=1 / variances, random_state=0).fit(x)
    without = GaussianMixture(2, covariance_type="diag", random_state=0).fit(x)
    assert with_init.n_iter_ == without.n_iter_
    np.testing.assert_allclose(with_init.precisions_cholesky_, without.precisions_cholesky_, rtol=1e-7)


def test_given_initial_parameters_are_used_as_given():
    """With weights, means and precisions all given nothing is estimated or drawn at initialisation:
    ``max_iter=0`` returns them, whatever the seed."""
    data = suite.RandomData(np.random.RandomState(0))
    kwargs = {
        "weights_init": data.weights,
        "means_init": data.means,
        "precisions_init": data.precisions["full"],
        "max_iter": 0,
    }
    fits = [GaussianMixture(2, random_state=seed, **kwargs).fit(data.X["full"]) for seed in (0, 1)]
    for gmm in fits:
        np.testing.assert_array_equal(gmm.weights_, data.weights)
        np.testing.assert_array_equal(gmm.means_, data.means)
        np.testing.assert_allclose(gmm.precisions_, data.precisions["full"], rtol=1e-12)


# ---------------------------------------------------------------- arrays in, the same arrays out
def _blobs(seed=0):
    rng = np.random.RandomState(seed)
    return np.vstack([rng.randn(150, 3), rng.randn(150, 3) * 0.5 + 6.0])


def test_numpy_in_numpy_out_and_torch_in_torch_out():
    x = _blobs()
    fitted_np = GaussianMixture(2, random_state=0).fit(x)
    fitted_t = GaussianMixture(2, random_state=0).fit(torch.as_tensor(x))
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_"):
        assert isinstance(getattr(fitted_np, name), np.ndarray), name
        assert isinstance(getattr(fitted_t, name), torch.Tensor), name
        np.testing.assert_array_equal(getattr(fitted_np, name), getattr(fitted_t, name).numpy())
    for gmm in (fitted_np, fitted_t):  # results follow the input, whatever the fit was on
        for method in ("predict", "predict_proba", "score_samples", "log_prob_table", "weighted_log_prob"):
            assert isinstance(getattr(gmm, method)(x), np.ndarray), method
            assert isinstance(getattr(gmm, method)(torch.as_tensor(x)), torch.Tensor), method
        assert isinstance(gmm.score(x), float) and isinstance(gmm.bic(torch.as_tensor(x)), float)
    assert fitted_np.predict(x).dtype == np.int64 and fitted_t.predict(torch.as_tensor(x)).dtype == torch.int64
    assert isinstance(fitted_np.sample(5)[0], np.ndarray) and isinstance(fitted_t.sample(5)[0], torch.Tensor)


def test_float32_input_gives_float64_parameters():
    x = _blobs().astype(np.float32)
    gmm = GaussianMixture(2, random_state=0).fit(x)
    assert gmm.means_.dtype == np.float64 and gmm.predict_proba(x).dtype == np.float64
    reference = GaussianMixture(2, random_state=0).fit(x.astype(np.float64))
    np.testing.assert_allclose(gmm.means_, reference.means_, rtol=1e-12)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_random_state_accepts_none_int_and_randomstate():
    x = _blobs()
    seeded = [GaussianMixture(2, init_params="random", max_iter=3, random_state=rs).fit(x) for rs in (7, 7)]
    np.testing.assert_array_equal(seeded[0].means_, seeded[1].means_)
    from_rs = [GaussianMixture(2, init_params="random", max_iter=3, random_state=np.random.RandomState(3)).fit(x)
               for _ in range(2)]  # fmt: skip
    np.testing.assert_array_equal(from_rs[0].means_, from_rs[1].means_)  # two generators in the same state
    np.random.seed(5)
    first = GaussianMixture(2, init_params="random", max_iter=3).fit(x)
    np.random.seed(5)
    again = GaussianMixture(2, init_params="random", max_iter=3).fit(x)
    np.testing.assert_array_equal(first.means_, again.means_)  # None: NumPy's global generator, as scikit-learn


def test_sample_draws_what_sklearn_draws_from_the_same_parameters():
    x = _blobs()
    for covariance_type in ("full", "tied", "diag", "spherical"):
        ours = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(x)
        theirs = SkGMM(2, covariance_type=covariance_type, random_state=4)
        for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
            setattr(theirs, name, getattr(ours, name))
        ours.set_params(random_state=4)
        for got, expected in zip(ours.sample(50), theirs.sample(50)):
            np.testing.assert_array_equal(got, expected)


# ---------------------------------------------------------------- conventions
def test_nothing_fitted_before_fit_and_not_fitted_errors():
    gmm = GaussianMixture(2)
    assert not [name for name in vars(gmm) if name.endswith("_")]
    for method in ("predict", "predict_proba", "score_samples", "score", "log_prob_table", "weighted_log_prob"):
        with pytest.raises(NotFittedError, match="This GaussianMixture instance is not fitted yet"):
            getattr(gmm, method)(_blobs())
    with pytest.raises(NotFittedError):
        gmm.sample()


def test_parameters_are_checked_by_fit_with_sklearns_messages():
    x = _blobs()
    gmm = GaussianMixture(0, covariance_type="banana", degenerate="maybe")  # __init__ only stores
    with pytest.raises(ValueError, match="The 'n_components' parameter of GaussianMixture must be an int"):
        gmm.set_params(covariance_type="full", degenerate="raise").fit(x)
    with pytest.raises(ValueError, match="The 'covariance_type' parameter of GaussianMixture must be a str among"):
        GaussianMixture(2, covariance_type="banana").fit(x)
    with pytest.raises(ValueError, match="The 'degenerate' parameter of GaussianMixture must be a str among"):
        GaussianMixture(2, degenerate="maybe").fit(x)
    with pytest.raises(ValueError, match=re.escape("Expected n_samples >= n_components")):
        GaussianMixture(5).fit(x[:3])
    with pytest.raises(ValueError, match="'weights' should be normalized"):
        GaussianMixture(2, weights_init=[0.5, 0.5 + 5e-7]).fit(x)
    precisions = np.stack([np.eye(3), np.eye(3)])
    precisions[1, 0, 1] = 0.3  # not symmetric
    with pytest.raises(ValueError, match="'full precision' should be symmetric, positive-definite"):
        GaussianMixture(2, precisions_init=precisions).fit(x)


@pytest.mark.parametrize("bad, error, message", [
    (np.zeros((12, 0)), ValueError, "0 feature"),
    (np.zeros((0, 3)), ValueError, "0 sample"),
    (np.zeros(12), ValueError, "Expected 2D array"),
    (np.ones((6, 2)) + 1j, ValueError, "Complex data not supported"),
    (torch.ones(6, 2, dtype=torch.complex128), ValueError, "Complex data not supported"),
    (torch.zeros(12, 0), ValueError, "0 feature"),
    (torch.zeros(12), ValueError, "Expected 2D array"),
    (torch.zeros(2, 3, 4), ValueError, "dim 3"),
    (torch.eye(4).to_sparse(), TypeError, "Sparse data"),
    (np.array([[1.0, {"a": 1}]] * 6, dtype=object), TypeError, "argument must be a string.* number"),
])  # fmt: skip
def test_bad_input_is_rejected_clearly(bad, error, message):
    with pytest.raises(error, match=message):
        GaussianMixture(1).fit(bad)


def test_wrong_feature_count_is_rejected_for_tensors_as_for_arrays():
    gmm = GaussianMixture(2, random_state=0).fit(torch.as_tensor(_blobs()))
    for x in (np.zeros((4, 2)), torch.zeros(4, 2, dtype=torch.float64)):
        with pytest.raises(ValueError, match="X has 2 features, but GaussianMixture is expecting 3 features"):
            gmm.predict(x)


def test_convergence_warning_and_verbose_output(capsys):
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        GaussianMixture(2, max_iter=1, tol=0.0, random_state=0).fit(_blobs())
    GaussianMixture(2, random_state=0, verbose=2, verbose_interval=1).fit(_blobs())
    out = capsys.readouterr().out
    assert out.startswith("Initialization 0\n  Iteration 1\t time lapse") and "Initialization converged." in out


# ---------------------------------------------------------------- degenerate data
def _two_points():
    """scikit-learn's test_regularisation data: 10 rows, two distinct points, 5 features."""
    return np.vstack((np.ones((5, 5)), np.zeros((5, 5))))


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical", "isotropic"])
def test_ill_defined_covariance_raises_by_default_and_recovers_on_request(covariance_type):
    x = _two_points()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.raises(GMMNumericalError, match="ill-defined empirical covariance"):
            GaussianMixture(10, reg_covar=0, covariance_type=covariance_type, random_state=0).fit(x)
        gmm = GaussianMixture(10, reg_covar=0, covariance_type=covariance_type, random_state=0, degenerate="recover")
        gmm.fit(x)
    assert np.isfinite(gmm.covariances_).all() and np.isfinite(gmm.score_samples(x)).all()
    assert np.isfinite(gmm.lower_bound_)


def test_a_failed_fit_leaves_the_mixture_as_it_was():
    x = _blobs()
    gmm = GaussianMixture(2, random_state=0).fit(x)
    before = {name: getattr(gmm, name).copy() for name in ("weights_", "means_", "covariances_")}
    with pytest.raises(ValueError):
        gmm.set_params(n_components=10, reg_covar=0.0).fit(_two_points())
    for name, value in before.items():
        np.testing.assert_array_equal(getattr(gmm, name), value)
    assert gmm.n_features_in_ == 3
    with pytest.raises(ValueError):  # the first fit failing leaves nothing fitted
        GaussianMixture(10, reg_covar=0.0, random_state=0).fit(_two_points())
    fresh = GaussianMixture(10, reg_covar=0.0, random_state=0)
    with pytest.raises(ValueError):
        fresh.fit(_two_points())
    assert not fresh.is_fitted and not [name for name in vars(fresh) if name.endswith("_")]
