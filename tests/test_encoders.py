"""Encoders (gnngmm.encoders): layer-wise full-graph inference, also on the lean paths big graphs take,
equals the plain forward pass; GCN normalisation and masks match PyG; SGC smooths without weights;
an untrained encoder does not collapse."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from raw_fixtures import graph

from gnngmm.data import load_dataset
from gnngmm.encoders import GNNEncoder, SGCEncoder

ROOT = Path(__file__).resolve().parents[1]
MIRROR = Path(os.environ.get("GNNGMM_MIRROR_DIR", ROOT.parent / "shared" / "datasets"))


def cora(tmp_path_factory):
    if (MIRROR / "planetoid" / "Cora" / "raw").is_dir():
        return load_dataset("cora", tmp_path_factory.mktemp("cora"), MIRROR)
    return None


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    out = {"fixture": graph(560, 7, seed=0)}
    real = cora(tmp_path_factory)
    if real is not None:
        out["cora"] = real
    return out


@pytest.mark.parametrize(
    "arch, kwargs", [("gcn", {}), ("sage", {}), ("gat", {"heads": 4}), ("gcn", {"norm": "batchnorm"})]
)
def test_layerwise_embedding_equals_forward(graphs, arch, kwargs):
    for name, data in graphs.items():
        torch.manual_seed(0)
        encoder = GNNEncoder(data.num_features, arch=arch, hidden_channels=64, out_channels=32, num_layers=2, **kwargs)
        encoder.eval()
        expected = encoder(data.x, data.edge_index)
        got = encoder.full_graph_embedding(data.x, data.edge_index, chunk_size=257)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4, msg=f"{arch} on {name}")


def test_sparse_and_edge_list_paths_agree(graphs):
    data = graphs["fixture"]
    torch.manual_seed(0)
    encoder = GNNEncoder(data.num_features, arch="sage", hidden_channels=16, out_channels=8).eval()
    dense_path = encoder.out_act(encoder.gnn(data.x, data.edge_index))
    torch.testing.assert_close(encoder(data.x, data.edge_index), dense_path, atol=1e-5, rtol=1e-4)


def test_sgc_is_training_free_and_smooths(graphs):
    data = graphs["fixture"]
    encoder = SGCEncoder(data.num_features, k=4)
    assert sum(p.numel() for p in encoder.parameters()) == 0
    h = encoder(data.x, data.edge_index)
    assert h.shape == data.x.shape
    same = data.y[data.edge_index[0]] == data.y[data.edge_index[1]]
    src, dst = data.edge_index[:, same]
    # propagation pulls neighbours together
    assert (h[src] - h[dst]).norm(dim=1).mean() < (data.x[src] - data.x[dst]).norm(dim=1).mean()


def test_gcn_normalisation_and_masks_match_pyg(graphs):
    """GNNEncoder normalises GCN itself (fixed CSR structure, masks): same as PyG's gcn_norm."""
    from torch_geometric.nn import GCN

    data = graphs["fixture"]
    torch.manual_seed(0)
    ours = GNNEncoder(data.num_features, arch="gcn", hidden_channels=16, out_channels=8, num_layers=2, out_act=None)
    reference = GCN(data.num_features, 16, 2, 8, act="selu")
    reference.load_state_dict(ours.gnn.state_dict())
    torch.testing.assert_close(ours(data.x, data.edge_index), reference(data.x, data.edge_index), atol=1e-5, rtol=1e-4)
    keep = torch.rand(data.edge_index.shape[1], generator=torch.Generator().manual_seed(1)) > 0.4
    mask = (torch.rand(data.num_features, generator=torch.Generator().manual_seed(2)) > 0.3).float()
    torch.testing.assert_close(
        ours(data.x, data.edge_index, edge_mask=keep, feature_mask=mask),
        reference(data.x * mask, data.edge_index[:, keep]),
        atol=1e-5,
        rtol=1e-4,
    )


def test_sparse_features_path_equals_dense(graphs):
    data = graphs["fixture"]
    x = torch.zeros(data.num_nodes, 400)
    x[:, :48] = data.x  # 400 columns, ~1% non-zero: takes the CSR path
    torch.manual_seed(0)
    encoder = GNNEncoder(400, arch="gcn", hidden_channels=16, out_channels=8, num_layers=2, out_act=None)
    sparse_out = encoder(x, data.edge_index)
    assert encoder._x_sparse is not None, "the sparse path was taken"
    dense_out = encoder.out_act(encoder.gnn(x, encoder._gcn_adjacency(data.edge_index, data.num_nodes).matrix()))
    torch.testing.assert_close(sparse_out, dense_out, atol=1e-5, rtol=1e-4)
    sparse_out.sum().backward()
    assert encoder.gnn.convs[0].lin.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("arch", ["gcn", "sage", "gat"])
def test_untrained_encoder_does_not_map_every_node_to_one_direction(graphs, arch):
    """Random biases (SAGEConv's default) outweigh W x on row-normalised bag-of-words features and
    start every node at the same output, a collapse NS4GC never left (Cora NMI 0.28)."""
    data = graphs["fixture"]
    x = data.x / data.x.sum(1, keepdim=True).clamp_min(1)  # row-normalised, as the datamodule does
    torch.manual_seed(0)
    encoder = GNNEncoder(data.num_features, arch=arch, hidden_channels=256, out_channels=64, num_layers=2, act="selu")
    assert all(float(p.abs().max()) == 0.0 for n, p in encoder.named_parameters() if n.endswith("bias"))
    with torch.no_grad():
        z = torch.nn.functional.normalize(encoder(x, data.edge_index), dim=1)
    random_pairs = (z * z.roll(1, 0)).sum(1).mean()
    assert random_pairs < 0.8, f"{arch}: mean cosine of random node pairs {random_pairs:.3f}"


@pytest.mark.parametrize(
    "arch, kwargs", [("gcn", {}), ("sage", {}), ("gat", {"heads": 4}), ("gat", {"heads": 2, "add_self_loops": False})]
)
def test_lean_layerwise_inference_equals_forward(monkeypatch, arch, kwargs):
    """The paths big graphs take (GCN on the int32 CSR, GAT in edge-budgeted chunks) forced on a
    small one."""
    from raw_fixtures import graph

    import gnngmm.encoders.gnn as gnn
    import gnngmm.encoders.inference as inference
    from gnngmm.encoders import GNNEncoder

    monkeypatch.setattr(gnn, "LAYERWISE_MIN_EDGES", 0)
    monkeypatch.setattr(inference, "EDGE_CHUNK_BYTES", 4 * 64 * 40)  # ~40 edges per GAT chunk
    data = graph(300, 5, seed=2)
    torch.manual_seed(0)
    encoder = GNNEncoder(
        data.num_features, arch=arch, hidden_channels=64, out_channels=16, num_layers=2, **kwargs
    ).eval()
    expected = encoder(data.x, data.edge_index)
    got = encoder.full_graph_embedding(data.x, data.edge_index, chunk_size=64)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
