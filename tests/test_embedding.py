"""The embedding transform (gnngmm.embedding): read in row chunks it equals the whole-matrix formulas;
wide inputs take a randomised SVD; the rescale keeps cosines and the scale-free pull; states saved
before it load as fitted; the small eigendecomposition runs on its own thread."""

import pytest
import torch

from gnngmm.embedding import EmbeddingTransform


def _reference(h, pca_dim, standardize, l2, center, rescale=False):
    """The transform computed on the whole float64 matrix at once (the definition)."""
    h = h.double()
    mean = h.mean(0) if center or pca_dim else torch.zeros_like(h[0])
    z = h - mean
    if pca_dim:
        _, vectors = torch.linalg.eigh(z.T @ z / (h.shape[0] - 1))
        comps = vectors[:, -pca_dim:].flip(1)
        comps = comps * torch.sign(comps.gather(0, comps.abs().argmax(0, keepdim=True)))
        z = z @ comps
    if standardize:
        z = z / z.std(0)
    z = torch.nn.functional.normalize(z, dim=1) if l2 else z
    return z / (z - z.mean(0)).pow(2).sum(1).mean().sqrt() if rescale else z


@pytest.mark.parametrize(
    "pca_dim,standardize,l2,center,rescale",
    [
        (None, False, True, False, True),
        (None, False, True, False, False),
        (None, False, False, True, True),
        (5, True, True, False, True),
        (5, False, False, False, False),
    ],
)
def test_chunked_fit_and_transform_equal_the_whole_matrix(pca_dim, standardize, l2, center, rescale):
    g = torch.Generator().manual_seed(0)
    h = torch.randn(1003, 12, generator=g) * torch.linspace(0.5, 3, 12) + 2.0
    t = EmbeddingTransform(pca_dim=pca_dim, standardize=standardize, l2=l2, center=center, rescale=rescale)
    z = t.fit(h, chunk_rows=97).transform_rows(h, chunk_rows=101)
    assert z.dtype == torch.float64 and z.shape == (1003, pca_dim or 12)
    reference = _reference(h, pca_dim, standardize, l2, center, rescale)
    torch.testing.assert_close(z, reference, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(z, t(h.double()), rtol=0, atol=0)  # the same map as the differentiable call


@pytest.mark.slow  # a randomised SVD and an exact eigendecomposition of a wide matrix
def test_wide_inputs_take_a_randomised_svd_that_finds_the_leading_subspace():
    from gnngmm.embedding import RANDOMIZED_MIN_DIM

    g = torch.Generator().manual_seed(1)
    dim = RANDOMIZED_MIN_DIM + 200
    basis = torch.linalg.qr(torch.randn(dim, 6, generator=g, dtype=torch.float64))[0]
    h = (torch.randn(800, 6, generator=g, dtype=torch.float64) * torch.tensor([9.0, 8, 7, 6, 5, 4])) @ basis.T
    h = (h + 0.1 * torch.randn(800, dim, generator=g, dtype=torch.float64) + 1.0).float()
    state = torch.random.get_rng_state()
    t = EmbeddingTransform(pca_dim=6, l2=False, rescale=False).fit(h)
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's random stream is untouched
    exact = _reference(h, 6, False, False, False)
    # the same subspace as the exact PCA (principal angles ~0), columns up to sign
    overlap = torch.linalg.svdvals(t.components_.T @ torch.linalg.eigh(torch.cov(h.double().T))[1][:, -6:])
    assert overlap.min() > 0.999
    torch.testing.assert_close(t.transform_rows(h).abs(), exact.abs(), rtol=0, atol=5e-3 * exact.abs().max())


def _packed_clusters(spread: float, seed: int = 0):
    """Five clusters of unit vectors packed into a cap ``spread`` wide (centres ``spread`` apart,
    each cluster a tenth of that), as an encoder that squeezes its embedding leaves them."""
    g = torch.Generator().manual_seed(seed)
    pole = torch.zeros(16, dtype=torch.float64)
    pole[0] = 1.0
    centres = pole + spread * torch.randn(5, 16, generator=g, dtype=torch.float64)
    y = torch.arange(5).repeat_interleave(200)
    h = centres[y] + 0.1 * spread / 4 * torch.randn(1000, 16, generator=g, dtype=torch.float64)
    return h.float(), y


def test_rescale_lets_the_mixture_see_clusters_packed_below_reg_covar():
    from gnngmm.metrics import clustering_metrics
    from gnngmm.mixture import GaussianMixture

    h, y = _packed_clusters(spread=3e-4)
    nmi = {}
    for rescale in (False, True):
        z = EmbeddingTransform(rescale=rescale).fit(h).transform_rows(h)
        gmm = GaussianMixture(5, covariance_type="isotropic", reg_covar=1e-6, random_state=0).fit(z)
        nmi[rescale] = clustering_metrics(y, gmm.predict(z))["nmi"]
    # unscaled, the 1e-6 floor is above the centres' own spread per dimension (~1e-7): one blur
    assert nmi[True] > 0.99 and nmi[False] < 0.6, nmi


def test_rescale_keeps_cosines_and_the_scale_free_gmm_pull():
    """Only a scale: cosines are the same, and sigma^2 * NLL (times ``variance_factor``) pulls the
    encoder's output exactly as without the division."""
    from gnngmm.mixture import GaussianMixture

    h, _ = _packed_clusters(spread=0.3, seed=1)
    grads, cosines = [], []
    for rescale in (False, True):
        t = EmbeddingTransform(rescale=rescale).fit(h)
        z = t.transform_rows(h)
        cosines.append(torch.nn.functional.normalize(z, dim=1) @ torch.nn.functional.normalize(z[:50], dim=1).T)
        gmm = GaussianMixture(5, covariance_type="isotropic", random_state=0).fit(z)
        x = h[:50].double().requires_grad_()
        loss = gmm.mean_variance() * t.variance_factor * -gmm.score_samples(t(x)).mean()
        grads.append(torch.autograd.grad(loss, x)[0])
    assert EmbeddingTransform(rescale=False).fit(h).variance_factor == 1.0
    torch.testing.assert_close(cosines[0], cosines[1], rtol=0, atol=1e-12)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-6, atol=1e-9)


def test_a_state_saved_before_the_division_loads_as_it_was_fitted():
    h, _ = _packed_clusters(spread=0.3)
    state = EmbeddingTransform().fit(h).state_dict()
    del state["spread"]  # checkpoints written before rescale existed
    loaded = EmbeddingTransform().load_state_dict(state)
    torch.testing.assert_close(loaded(h.double()), EmbeddingTransform(rescale=False).fit(h)(h.double()), rtol=0, atol=0)
    assert loaded.variance_factor == 1.0


def test_small_eigh_runs_on_one_thread_without_touching_the_callers_setting(monkeypatch):
    import threading

    from gnngmm.embedding import symmetric_eigh

    callers = []
    original = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (callers.append(threading.current_thread()), original(n)))
    a = torch.randn(50, 6, dtype=torch.float64)
    values, vectors = symmetric_eigh(a.T @ a)
    torch.testing.assert_close(vectors @ torch.diag(values) @ vectors.T, a.T @ a)
    assert callers and threading.main_thread() not in callers, "set_num_threads only in the worker thread"
