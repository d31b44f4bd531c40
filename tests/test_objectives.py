"""Self-supervised objectives (gnngmm.objectives): they learn a planted graph's structure; NS4GC's fused
similarity sum, its sampled negatives and edge drops on sampled batches."""

from __future__ import annotations

import pytest
import torch

from gnngmm.data.synthetic import planted_partition
from gnngmm.embedding import EmbeddingTransform
from gnngmm.encoders import GNNEncoder
from gnngmm.metrics import clustering_metrics
from gnngmm.mixture import GaussianMixture
from gnngmm.objectives import CCASSG, DGI, GAE, GRACE, NS4GC
from gnngmm.pipeline import _make


@pytest.fixture(scope="module")
def planted():
    # weak features, strong homophily: the encoder has to use the graph
    return planted_partition(600, 4, 40, avg_degree=10, homophily=0.9, feature_signal=0.35, seed=3)


def train_encoder(data, objective_cls, epochs, out=32, **kwargs):
    torch.manual_seed(0)
    encoder = GNNEncoder(
        data.num_features, hidden_channels=64, out_channels=out, num_layers=2, act="selu", out_act=None
    )
    # dim is passed only to objectives that take it (DGI, GRACE), as the pipeline does
    objective = _make({"_target_": f"{objective_cls.__module__}.{objective_cls.__name__}", **kwargs}, dim=out)
    optimizer = torch.optim.Adam(list(encoder.parameters()) + list(objective.parameters()), lr=0.01)
    losses = []
    for _ in range(epochs):
        optimizer.zero_grad()
        loss = objective(encoder, data).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return encoder, losses


@pytest.mark.parametrize(
    "objective_cls, kwargs",
    [(NS4GC, {}), (NS4GC, {"neg": 256}), (CCASSG, {}), (DGI, {}), (GRACE, {"max_nodes": 300}), (GAE, {})],
    ids=["ns4gc", "ns4gc-block", "cca_ssg", "dgi", "grace", "gae"],
)
def test_loss_decreases(planted, objective_cls, kwargs):
    _, losses = train_encoder(planted, objective_cls, 30, **kwargs)
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < first, (first, last)


@pytest.mark.slow  # 60 epochs of NS4GC on 600 nodes
def test_ns4gc_embedding_recovers_planted_clusters(planted):
    encoder, _ = train_encoder(planted, NS4GC, 60)
    h = encoder.full_graph_embedding(planted.x, planted.edge_index)
    z = EmbeddingTransform(l2=True, center=False).fit(h)(h.double())
    gmm = GaussianMixture(4, covariance_type="isotropic", kmeans_n_init=10, random_state=0).fit(z)
    assert clustering_metrics(planted.y, gmm.predict(z))["nmi"] >= 0.9


def test_raw_features_alone_do_not(planted):
    z = EmbeddingTransform(pca_dim=16).fit(planted.x)(planted.x.double())
    gmm = GaussianMixture(4, covariance_type="isotropic", kmeans_n_init=10, random_state=0).fit(z)
    assert clustering_metrics(planted.y, gmm.predict(z))["nmi"] < 0.9  # so the test above measures the graph


def test_gae_returns_the_seed_nodes_embedding(planted):
    """ObjectiveOutput.embedding holds the batch's seed nodes (a sampled batch lists them first)."""
    batch = planted.clone()
    batch.batch_size = 100
    encoder = GNNEncoder(planted.num_features, hidden_channels=16, out_channels=8)
    out = GAE()(encoder, batch)
    assert out.embedding.shape == (100, 8)


@pytest.mark.parametrize("weighted", [False, True])
def test_soft_similarity_sum_equals_the_composed_ops_and_their_gradient(weighted):
    from gnngmm.objectives.ns4gc import SoftSimilaritySum

    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, 5, generator=g, dtype=torch.float64, requires_grad=True) for n in (7, 6))
    w = torch.rand(7, 6, generator=g, dtype=torch.float64) if weighted else None
    fused = SoftSimilaritySum.apply(a, b, 0.6, 0.1, w) * 3.0
    composed = torch.sigmoid((a @ b.T - 0.6) / 0.1)
    composed = (composed if w is None else composed * w).sum() * 3.0
    torch.testing.assert_close(fused, composed, rtol=0, atol=1e-12)
    for mine, ref in zip(torch.autograd.grad(fused, (a, b)), torch.autograd.grad(composed, (a, b))):
        torch.testing.assert_close(mine, ref, rtol=1e-12, atol=1e-12)


class _Table(torch.nn.Module):
    """A free embedding per node (``x`` is the identity): gradients land on the node they move."""

    def __init__(self, n, d=8):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.nn.functional.normalize(torch.randn(n, d), dim=1))

    def forward(self, x, edge_index, edge_mask=None, feature_mask=None):
        return x @ self.weight


def test_ns4gc_sparsity_on_a_sampled_batch_pushes_the_sampled_neighbours_too():
    """The neighbour term pulls the sampled neighbours toward their seeds; the sparsity term has
    to push on them as well (with seeds alone it did not, and the encoder collapsed every
    neighbourhood to one point on planted Reddit)."""
    from torch_geometric.data import Data

    torch.manual_seed(0)
    n_seeds, n = 16, 64
    dst = torch.arange(n_seeds).repeat_interleave(3)
    src = n_seeds + torch.randint(0, n - n_seeds, (dst.numel(),))
    batch = Data(x=torch.eye(n), edge_index=torch.stack([src, dst]), batch_size=n_seeds)
    table = _Table(n)

    def gradient(gam):
        torch.manual_seed(1)
        loss = NS4GC(lam=0.0, gam=gam, drop_edge=(0.0, 0.0), neg=None)(table, batch).loss
        return torch.autograd.grad(loss, table.weight)[0]

    pushed = (gradient(1.0) - gradient(0.0))[n_seeds:].norm(dim=1)  # the sparsity term's own gradient
    # 16 columns drawn from all 64 nodes: about 12 of the 48 sampled neighbours each step
    assert int((pushed > 0).sum()) >= 4


def test_a_view_of_sampled_neighbourhoods_drops_edges_as_the_whole_graph_would():
    """drop_edge=0.8 on a sampled batch: a hub's 10 sampled edges are what a fanout of 10 would
    still find after dropping 80% of its 100 edges (kept); a node whose 2 edges were both
    sampled keeps each with probability 0.2, as in the whole graph; a node of degree 25 keeps 5
    of its 10 sampled edges in expectation."""
    from torch_geometric.data import Data

    from gnngmm.data.sampling import NeighborSampler
    from gnngmm.objectives.base import edge_mask, sampled_drop_rate

    leaves = torch.arange(1, 101)
    middle = torch.arange(101, 126)
    edges = [(int(u), 0) for u in leaves] + [(int(u), 126) for u in middle] + [(1, 127), (2, 127)]
    src, dst = torch.tensor(edges).t()
    data = Data(x=torch.eye(128), edge_index=torch.stack([src, dst]), num_nodes=128)
    batch = NeighborSampler(data, [10])(torch.tensor([0, 126, 127]))
    assert batch.full_degree[:3].tolist() == [100, 25, 2]
    rate = sampled_drop_rate(batch, 0.8)
    target = batch.edge_index[1]
    assert torch.allclose(rate[target == 0], torch.tensor(0.0))
    assert torch.allclose(rate[target == 1], torch.tensor(0.5))
    assert torch.allclose(rate[target == 2], torch.tensor(0.8))
    torch.manual_seed(0)
    kept = torch.stack([edge_mask(batch, 0.8) for _ in range(2000)]).float().mean(0)
    assert bool(kept[target == 0].eq(1).all())
    assert abs(float(kept[target == 1].mean()) - 0.5) < 0.03
    assert abs(float(kept[target == 2].mean()) - 0.2) < 0.03
    whole = Data(x=data.x, edge_index=data.edge_index, num_nodes=128)  # full batch: the plain rate
    torch.manual_seed(0)
    assert abs(float(torch.stack([edge_mask(whole, 0.8) for _ in range(200)]).float().mean()) - 0.2) < 0.01


def test_ns4gc_negatives_scale_with_the_graph():
    from gnngmm.objectives.ns4gc import negatives

    assert negatives(7_650, None) is None  # Photo and smaller: all pairs
    assert negatives(18_333, None) == 4096  # Coauthor CS and bigger: a sampled block (all pairs: ~30 s per epoch)
    assert negatives(1000, 256) == 256 and negatives(100, 256) is None  # explicit values win
