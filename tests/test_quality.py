"""Label-free partition quality (gnngmm.quality): modularity and silhouette on known answers."""

from __future__ import annotations

import pytest
import torch


def test_modularity_of_two_separate_cliques_is_one_half_in_any_chunking():
    """Two equal components, each its own cluster: Q = 2 * (1/2 - (1/2)^2) = 0.5; one cluster: 0."""
    from gnngmm.quality import modularity

    clique = torch.tensor([(i, j) for i in range(4) for j in range(4) if i != j]).T
    edges = torch.cat([clique, clique + 4], dim=1)
    labels = torch.tensor([0] * 4 + [1] * 4)
    assert modularity(edges, labels) == pytest.approx(0.5)
    assert modularity(edges, labels, chunk=5) == pytest.approx(0.5)
    assert modularity(edges, torch.zeros(8, dtype=torch.long)) == pytest.approx(0.0)


def test_silhouette_is_scikit_learns_cosine_silhouette_on_a_fixed_sample():
    from sklearn.metrics import silhouette_score

    from gnngmm.quality import silhouette

    g = torch.Generator().manual_seed(0)
    z = torch.randn(300, 6, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 4, (300,), generator=g)
    labels[7] = 9  # a singleton scores 0
    assert silhouette(z, labels, sample=1000) == pytest.approx(
        silhouette_score(z.numpy(), labels.numpy(), metric="cosine")
    )
    assert silhouette(z, labels, sample=100) == silhouette(z, labels, sample=100)  # the same nodes each call
    idx = torch.randperm(300, generator=torch.Generator().manual_seed(0))[:100]
    assert silhouette(z, labels, sample=100) == pytest.approx(
        silhouette_score(z[idx].numpy(), labels[idx].numpy(), metric="cosine")
    )
    assert silhouette(z, torch.zeros(300, dtype=torch.long)) == 0.0
