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
