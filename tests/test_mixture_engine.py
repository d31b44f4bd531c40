"""GMM engine: distributed EM, numerics that never fail silently, K selection by BIC."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from gnngmm.mixture import (
    COVARIANCE_TYPES,
    EXTRA_COVARIANCE_TYPES,
    GaussianMixture,
    GMMNumericalError,
    TorchDistributed,
    select_k,
)
from gnngmm.mixture.criteria import knee
from gnngmm.mixture.gaussian import precision_cholesky

ALL_TYPES = COVARIANCE_TYPES + EXTRA_COVARIANCE_TYPES

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # tol=0 runs by design


def blobs(n=600, d=3, k=3, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(k, d, generator=g, dtype=torch.float64) * 6
    labels = torch.randint(k, (n,), generator=g)
    mix = torch.randn(k, d, d, generator=g, dtype=torch.float64) * 0.3 + torch.eye(d, dtype=torch.float64)
    x = centers[labels] + torch.einsum("nd,nde->ne", torch.randn(n, d, generator=g, dtype=torch.float64), mix[labels])
    return x * scale, labels


# ---------------------------------------------------------------- distributed EM
def _rank_fit(rank, world, init_file, x, kwargs, out):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        np.random.seed(rank)  # NumPy's global generator differs across ranks (random_state=None draws from it)
        shard = x[rank::world] if rank == 0 else [x[rank::world][:50], x[rank::world][50:]]  # list input too
        gmm = GaussianMixture(3, comm=TorchDistributed(), **kwargs).fit(shard)
        result = {name: getattr(gmm, name) for name in ("weights_", "means_", "covariances_")}
        result.update(lower_bound_=gmm.lower_bound_, bic=gmm.bic(shard))
        out[rank] = result
    finally:
        dist.destroy_process_group()


def run_distributed(x, kwargs, tmp_path, world=2):
    manager = mp.Manager()
    out = manager.dict()
    mp.spawn(_rank_fit, args=(world, str(tmp_path / "pg"), x, kwargs, out), nprocs=world, join=True)
    return dict(out)


@pytest.mark.slow  # a subprocess / several processes
@pytest.mark.parametrize("covariance_type", ALL_TYPES)
def test_distributed_em_equals_single_process(tmp_path, covariance_type):
    x, _ = blobs(400)
    init = GaussianMixture(3, covariance_type=covariance_type, random_state=0, max_iter=0).fit(x)
    kwargs = dict(
        covariance_type=covariance_type,
        weights_init=init.weights_,
        means_init=init.means_,
        precisions_init=init.precisions_,
        max_iter=8,
        tol=0.0,
    )
    single = GaussianMixture(3, **kwargs).fit(x)
    ranks = run_distributed(x, kwargs, tmp_path)
    for rank in (0, 1):
        for name in ("weights_", "means_", "covariances_"):
            torch.testing.assert_close(ranks[rank][name], getattr(single, name), rtol=1e-10, atol=1e-12)
        assert abs(ranks[rank]["lower_bound_"] - single.lower_bound_) < 1e-10 * abs(single.lower_bound_)
        assert abs(ranks[rank]["bic"] - single.bic(x)) < 1e-9 * abs(single.bic(x))


@pytest.mark.slow  # a subprocess / several processes
def test_distributed_kmeans_init_is_identical_on_every_rank(tmp_path):
    x, labels = blobs(400)
    ranks = run_distributed(x, dict(random_state=3, max_iter=50), tmp_path)
    for name in ("weights_", "means_", "covariances_"):
        torch.testing.assert_close(ranks[0][name], ranks[1][name], rtol=0, atol=0)
    single = GaussianMixture(3, random_state=3, max_iter=50).fit(x)
    assert abs(ranks[0]["lower_bound_"] - single.lower_bound_) < 1e-6 * abs(single.lower_bound_)


@pytest.mark.slow  # a subprocess / several processes
def test_unseeded_distributed_fit_takes_rank_zeros_seed(tmp_path):
    """random_state=None draws from each rank's NumPy generator (seeded differently on each rank
    here); the k-means++ seeds must still be the same on every rank."""
    x, _ = blobs(400)
    ranks = run_distributed(x, {"random_state": None, "init_params": "k-means++", "max_iter": 0}, tmp_path)
    for name in ("weights_", "means_", "covariances_"):
        torch.testing.assert_close(ranks[0][name], ranks[1][name], rtol=0, atol=0)


# ---------------------------------------------------------------- numerics
def assert_finite(gmm, x):
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert torch.isfinite(getattr(gmm, name)).all(), name
    assert np.isfinite(gmm.lower_bound_)
    assert torch.isfinite(gmm.score_samples(x)).all()
    proba = gmm.predict_proba(x)
    assert torch.isfinite(proba).all()
    torch.testing.assert_close(proba.sum(1), torch.ones(x.shape[0], dtype=proba.dtype))


@pytest.mark.parametrize("covariance_type", ALL_TYPES)
def test_duplicated_points_and_k_equal_to_distinct_points(covariance_type):
    distinct = torch.tensor([[0.0, 0.0], [5.0, 1.0], [1.0, 7.0], [9.0, 9.0], [-4.0, 3.0]], dtype=torch.float64)
    x = distinct.repeat_interleave(30, dim=0)
    gmm = GaussianMixture(5, covariance_type=covariance_type, random_state=0).fit(x)
    assert_finite(gmm, x)
    assert sorted(torch.bincount(gmm.predict(x), minlength=5).tolist()) == [30] * 5


@pytest.mark.parametrize("covariance_type", ALL_TYPES)
def test_constant_feature(covariance_type):
    x, labels = blobs(300)
    x[:, 1] = 4.2
    gmm = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(x)
    assert_finite(gmm, x)


@pytest.mark.parametrize("scale", [1e-9, 1e9])
@pytest.mark.parametrize("covariance_type", ALL_TYPES)
def test_huge_and_tiny_scales(scale, covariance_type):
    x, labels = blobs(300, scale=scale)
    gmm = GaussianMixture(3, covariance_type=covariance_type, random_state=0, reg_covar=1e-6 * scale**2).fit(x)
    assert_finite(gmm, x)
    reference = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(x / scale)
    assert (
        abs(gmm.lower_bound_ + np.log(scale) * 3 - reference.lower_bound_) < 1e-6 * abs(reference.lower_bound_) + 1e-6
    )


def test_tiny_scale_with_default_reg_covar_stays_finite():
    x, _ = blobs(300, scale=1e-9)
    gmm = GaussianMixture(3, random_state=0).fit(x)  # reg_covar dominates: clusters blur, no NaN
    assert_finite(gmm, x)


def test_empty_component_is_reseeded_with_a_warning(caplog):
    x, labels = blobs(300)
    far = x.mean(0) + 1e4  # a component far from every point: zero responsibility
    means = torch.stack([x[labels == j].mean(0) for j in range(3)] + [far])
    gmm = GaussianMixture(4, means_init=means, max_iter=30, random_state=0, degenerate="recover")
    with caplog.at_level(logging.WARNING, logger="gnngmm.mixture.em"):
        gmm.fit(x)
    assert "re-seeded" in caplog.text and gmm.n_reseeded_ >= 1
    assert_finite(gmm, x)
    assert torch.bincount(gmm.predict(x), minlength=4).min() > 0, "every component explains some points"


def test_singular_covariance_gets_more_regularisation(caplog):
    x, _ = blobs(300, d=2)
    x = torch.cat([x, x[:, :1] * 2.0], dim=1)  # third feature collinear: singular with reg_covar=0
    with caplog.at_level(logging.WARNING, logger="gnngmm.mixture.em"):
        gmm = GaussianMixture(3, reg_covar=0.0, random_state=0, degenerate="recover").fit(x)
    assert "singular" in caplog.text
    assert_finite(gmm, x)
    with pytest.raises(GMMNumericalError, match="ill-defined empirical covariance"):  # scikit-learn's default
        GaussianMixture(3, reg_covar=0.0, random_state=0).fit(x)


def test_unfixable_covariance_names_the_component():
    cov = torch.eye(3, dtype=torch.float64).repeat(2, 1, 1)
    cov[1] = -torch.eye(3, dtype=torch.float64)
    with pytest.raises(GMMNumericalError, match="component 1.*reg_covar"):
        precision_cholesky(cov, "full", reg_covar=1e-6, max_reg_covar=1e-3)


def test_non_finite_input_is_named():
    x, _ = blobs(50)
    x[10, 1] = float("nan")
    with pytest.raises(ValueError, match="non-finite.*row 10"):
        GaussianMixture(2).fit(x)


@pytest.mark.parametrize(
    "method", ["predict", "predict_proba", "score_samples", "score", "bic", "aic", "log_prob_table"]
)
def test_scoring_rejects_non_finite_rows_as_fit_does(method):
    x, _ = blobs(50)
    gmm = GaussianMixture(2, random_state=0).fit(x)
    x[7, 0] = float("inf")
    with pytest.raises(ValueError, match="non-finite.*row 7"):
        getattr(gmm, method)(x)


def test_unseeded_fit_leaves_the_global_rng_alone():
    x, _ = blobs(100)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    GaussianMixture(3, random_state=None, n_init=2).fit(x)
    assert torch.equal(torch.get_rng_state(), state)  # torch.seed() used to reseed it


def test_clone_keeps_every_setting():
    gmm = GaussianMixture(
        4,
        covariance_type="diag",
        tol=1e-5,
        reg_covar=1e-4,
        max_iter=7,
        n_init=2,
        init_params="random",
        random_state=3,
        dtype=torch.float32,
        chunk_size=33,
        max_reg_covar=0.5,
        min_component_size=2.0,
        seeding_sample_size=999,
        gram=False,
        screen=False,
        kmeans_n_init=4,
    )
    copy = gmm.clone(n_components=6)
    assert copy.n_components == 6 and not copy.is_fitted
    assert {k: v for k, v in copy.get_params().items() if k != "n_components"} == {
        k: v for k, v in gmm.get_params().items() if k != "n_components"
    }
    from sklearn.base import clone

    assert clone(gmm).get_params() == gmm.get_params()
    with pytest.raises(ValueError, match="Invalid parameter 'k' for estimator GaussianMixture"):
        gmm.set_params(k=3)


def test_screened_e_step_equals_the_dense_paths():
    """Full covariances with K >= 9 well-separated components take the float32-screened E-step;
    it must give the all-pairs float64 result (quadratic features, and per-component whitening)."""
    from gnngmm.mixture import gram

    x, labels = blobs(3000, d=4, k=12, seed=5)
    means = torch.stack([x[labels == j].mean(0) for j in range(12)])
    kwargs = dict(covariance_type="full", means_init=means, max_iter=6, tol=0.0, random_state=0)
    calls = []
    original = gram.FullCovarianceStep._screened

    def spy(self, *args):
        calls.append(1)
        return original(self, *args)

    gram.FullCovarianceStep._screened = spy
    try:
        screened = GaussianMixture(12, screen=True, **kwargs).fit(x)
    finally:
        gram.FullCovarianceStep._screened = original
    assert calls, "the screened path was taken"
    dense = GaussianMixture(12, screen=False, **kwargs).fit(x)
    whitened = GaussianMixture(12, gram=False, **kwargs).fit(x)
    for other in (dense, whitened):
        for name in ("weights_", "means_", "covariances_"):
            torch.testing.assert_close(getattr(screened, name), getattr(other, name), rtol=1e-10, atol=1e-12)
        assert screened.lower_bound_ == pytest.approx(other.lower_bound_, rel=1e-12)
    torch.testing.assert_close(screened.score_samples(x), whitened.score_samples(x), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("k", [0, -1, 2.5, True])
def test_bad_n_components(k):
    gmm = GaussianMixture(k)  # stored as given: fit checks it
    with pytest.raises(ValueError, match="n_components"):
        gmm.fit(torch.randn(10, 2, dtype=torch.float64))


def test_more_components_than_samples():
    with pytest.raises(
        ValueError, match="Expected n_samples >= n_components but got n_components = 11, n_samples = 10"
    ):
        GaussianMixture(11).fit(torch.randn(10, 2))


# ---------------------------------------------------------------- isotropic (not in scikit-learn)
def test_isotropic_em_matches_a_direct_implementation():
    """One variance for every component and dimension: soft k-means with learned weights."""
    x, _ = blobs(300, d=3)
    means0 = x[:3].clone()
    gmm = GaussianMixture(
        3,
        covariance_type="isotropic",
        means_init=means0,
        weights_init=[1 / 3] * 3,
        precisions_init=[1.0] * 3,
        max_iter=6,
        tol=0.0,
        reg_covar=1e-6,
    ).fit(x)
    means, weights, var = means0, torch.full((3,), 1 / 3, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)
    for _ in range(6):
        d2 = torch.cdist(x, means).square()
        log_p = torch.log(weights) - 0.5 * (3 * torch.log(2 * torch.pi * var) + d2 / var)
        resp = torch.softmax(log_p, 1)
        nk = resp.sum(0) + 10 * torch.finfo(torch.float64).eps
        means = resp.T @ x / nk[:, None]
        var = (resp * torch.cdist(x, means).square()).sum() / (nk.sum() * 3) + 1e-6
        weights = nk / nk.sum()
    torch.testing.assert_close(gmm.means_, means, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gmm.weights_, weights, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gmm.covariances_, var.expand(3), rtol=1e-10, atol=1e-12)
    assert gmm.n_parameters() == 3 * 3 + 2 + 1


def test_kmeans_restarts_pick_the_lowest_inertia(monkeypatch):
    from gnngmm.mixture import kmeans

    x, _ = blobs(600, d=2, k=8, seed=4)
    runs = []
    lloyd = kmeans.lloyd

    def counted(*args, **kwargs):
        centers, inertia = lloyd(*args, **kwargs)
        runs.append(float(inertia))
        return centers, inertia

    monkeypatch.setattr(kmeans, "lloyd", counted)
    one = GaussianMixture(8, covariance_type="isotropic", random_state=1, max_iter=0).fit(x)
    assert len(runs) == 1
    runs.clear()
    many = GaussianMixture(8, covariance_type="isotropic", random_state=1, max_iter=0, kmeans_n_init=10).fit(x)
    assert len(runs) == 10, "kmeans_n_init restarts of k-means"

    def inertia(g):
        return float(torch.cdist(x, g.means_).square().min(1).values.sum())

    # the kept basin is the restarts' lowest inertia, which beats the single start on this data
    # (1,828 against 1,207 for random_state=1)
    assert inertia(many) == pytest.approx(min(runs), rel=1e-9) and inertia(many) < inertia(one) - 100


# ---------------------------------------------------------------- K selection
def test_bic_picks_the_planted_number_of_components():
    x, _ = blobs(900, d=2, k=4, seed=2)
    best, rows = select_k(x, range(1, 8), lambda k: GaussianMixture(k, random_state=0, n_init=2))
    assert best.n_components == 4
    assert [r["k"] for r in rows] == list(range(1, 8))
    assert min(rows, key=lambda r: r["bic"])["k"] == 4


def test_bic_knee_keeps_an_inner_minimum_and_takes_the_knee_otherwise():
    x, _ = blobs(900, d=2, k=4, seed=2)
    make = lambda k: GaussianMixture(k, random_state=0, n_init=2)  # noqa: E731
    best, rows = select_k(x, range(1, 8), make, "bic_knee")
    assert best.n_components == 4  # BIC has its minimum inside the range: that minimum
    best, rows = select_k(x, range(1, 5), make, "bic_knee")
    assert [r["k"] for r in rows] == [1, 2, 3, 4] and best.n_components == 3  # still falling at 4: the knee


def test_knee_of_a_curve_that_keeps_falling():
    # BIC on trained embeddings: big drops up to K=5, then small ones to the end of the range.
    ks = list(range(2, 11))
    values = [0, -100, -200, -300, -310, -320, -330, -340, -350]
    assert min(zip(values, ks))[1] == 10  # the lowest BIC is the range's end ...
    assert knee(ks, values) == 5  # ... the knee is where the drops stop
    assert knee(ks, [-10.0 * k for k in ks]) == 2  # a straight line has no knee: the smallest K
    assert knee([3, 4], [5.0, 1.0]) == 4  # too short for a knee: the lowest value


def test_unknown_k_criterion_is_a_clear_error():
    with pytest.raises(ValueError, match="k_criterion='aic2'"):
        select_k(torch.randn(20, 2, dtype=torch.float64), [1, 2], lambda k: GaussianMixture(k), "aic2")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_mixture_fitted_on_cpu_scores_on_cuda_after_to():
    # the full-covariance quadratic-feature path keeps the fit data's centre: it must move with .to()
    x, _ = blobs(n=900, d=4, k=3, seed=5)
    gmm = GaussianMixture(3, covariance_type="full", random_state=0).fit(x)
    on_cpu = gmm.score_samples(x)
    on_cuda = gmm.to("cuda").score_samples(x.cuda())
    torch.testing.assert_close(on_cuda.cpu(), on_cpu)


def test_kmeans_restarts_run_on_the_seeding_sample_when_the_data_is_larger(monkeypatch):
    """Many rows: the k-means restarts compete on the seeding sample and only the winner
    converges on every row (one full-data Lloyd run); the blobs are still found."""
    from gnngmm.mixture import kmeans as km

    x, y = blobs(3000, k=4, scale=0.3)
    sizes = []
    original = km.lloyd
    monkeypatch.setattr(
        km, "lloyd", lambda chunks, *a, **k: sizes.append(sum(c.shape[0] for c in chunks)) or original(chunks, *a, **k)
    )
    gmm = GaussianMixture(4, covariance_type="isotropic", kmeans_n_init=5, seeding_sample_size=500, random_state=0).fit(
        x
    )
    assert sizes.count(3000) == 1 and sizes.count(500) == 5, sizes
    from gnngmm.metrics import clustering_metrics

    assert clustering_metrics(y, gmm.predict(x))["nmi"] > 0.95
    sizes.clear()
    GaussianMixture(4, covariance_type="isotropic", kmeans_n_init=5, seeding_sample_size=5000, random_state=0).fit(x)
    assert sizes == [3000] * 5  # the data fits the sample: every restart runs on all of it, as before
