"""The embedding transform read in row chunks equals the whole-matrix formulas it replaces."""

import pytest
import torch

from gnngmm.embedding import EmbeddingTransform


def _reference(h, pca_dim, standardize, l2, center):
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
    return torch.nn.functional.normalize(z, dim=1) if l2 else z


@pytest.mark.parametrize(
    "pca_dim,standardize,l2,center",
    [(None, False, True, False), (None, False, False, True), (5, True, True, False), (5, False, False, False)],
)
def test_chunked_fit_and_transform_equal_the_whole_matrix(pca_dim, standardize, l2, center):
    g = torch.Generator().manual_seed(0)
    h = torch.randn(1003, 12, generator=g) * torch.linspace(0.5, 3, 12) + 2.0
    t = EmbeddingTransform(pca_dim=pca_dim, standardize=standardize, l2=l2, center=center).fit(h, chunk_rows=97)
    z = t.transform_rows(h, chunk_rows=101)
    assert z.dtype == torch.float64 and z.shape == (1003, pca_dim or 12)
    torch.testing.assert_close(z, _reference(h, pca_dim, standardize, l2, center), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(z, t(h.double()), rtol=0, atol=0)  # the same map as the differentiable call


def test_wide_inputs_take_a_randomised_svd_that_finds_the_leading_subspace():
    from gnngmm.embedding import RANDOMIZED_MIN_DIM

    g = torch.Generator().manual_seed(1)
    dim = RANDOMIZED_MIN_DIM + 200
    basis = torch.linalg.qr(torch.randn(dim, 6, generator=g, dtype=torch.float64))[0]
    h = (torch.randn(800, 6, generator=g, dtype=torch.float64) * torch.tensor([9.0, 8, 7, 6, 5, 4])) @ basis.T
    h = (h + 0.1 * torch.randn(800, dim, generator=g, dtype=torch.float64) + 1.0).float()
    state = torch.random.get_rng_state()
    t = EmbeddingTransform(pca_dim=6, l2=False).fit(h)
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's random stream is untouched
    exact = _reference(h, 6, False, False, False)
    # the same subspace as the exact PCA (principal angles ~0), columns up to sign
    overlap = torch.linalg.svdvals(t.components_.T @ torch.linalg.eigh(torch.cov(h.double().T))[1][:, -6:])
    assert overlap.min() > 0.999
    torch.testing.assert_close(t.transform_rows(h).abs(), exact.abs(), rtol=0, atol=5e-3 * exact.abs().max())
