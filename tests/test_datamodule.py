"""The data module (gnngmm.data.datamodule): full-batch and sampled loaders, pre-propagated node
batches, and short training runs through each loader."""

from __future__ import annotations

import pytest
import torch
from conftest import without_pyg_extensions

from gnngmm.data import GraphDataModule
from gnngmm.train import train


def test_datamodule_full_batch_yields_the_whole_graph(tmp_path, mirror):
    dm = GraphDataModule("cora", str(tmp_path / "d"), str(mirror), normalize_features="row")
    dm.setup()
    batches = list(dm.train_dataloader())
    assert len(batches) == 1 and batches[0].num_nodes == 560
    sums = batches[0].x.sum(1)
    assert int((sums > 0).sum()) > 500
    torch.testing.assert_close(sums[sums > 0], torch.ones(int((sums > 0).sum())))  # row-normalised


def test_random_node_loader_trains_on_induced_subgraphs(make_cfg):
    metrics = train(make_cfg("data.loader=random_nodes", "data.num_parts=4", "trainer.max_epochs=3"))
    assert metrics["nmi"] > 0.5


def test_sign_features_with_node_batches_and_mlp(make_cfg, tmp_path):
    metrics = train(
        make_cfg(
            "data.precompute=sign",
            "data.precompute_hops=2",
            "data.loader=nodes",
            "data.batch_size=128",
            "encoder=mlp",
            "encoder.hidden_channels=32",
            "encoder.out_channels=32",
            "trainer.max_epochs=3",
        )
    )
    assert metrics["nmi"] > 0.5


def test_sign_precompute_concatenates_hops(tmp_path, mirror):
    dm = GraphDataModule(
        "cora", str(tmp_path / "d"), str(mirror), precompute="sign", precompute_hops=2, loader="nodes", batch_size=100
    )
    dm.setup()
    assert dm.data.x.shape == (560, 3 * 48)
    batch = next(iter(dm.train_dataloader()))
    assert batch.x.shape == (100, 144) and batch.edge_index.shape == (2, 0)


def test_neighbor_loader_trains_without_extensions(make_cfg, monkeypatch):
    without_pyg_extensions(monkeypatch)
    metrics = train(
        make_cfg("data.loader=neighbor", "data.batch_size=128", "data.num_neighbors=[5,5]", "trainer.max_epochs=2")
    )
    assert metrics["nmi"] > 0.4


@pytest.mark.skipif(
    not (
        __import__("torch_geometric.typing").typing.WITH_PYG_LIB
        or __import__("torch_geometric.typing").typing.WITH_TORCH_SPARSE
    ),
    reason="PyG's own NeighborLoader needs pyg-lib or torch-sparse (not on PyPI as wheels); "
    "the plain-PyTorch sampler is tested always",
)
def test_neighbor_loader_trains(make_cfg):
    metrics = train(
        make_cfg("data.loader=neighbor", "data.batch_size=128", "data.num_neighbors=[5,5]", "trainer.max_epochs=2")
    )
    assert metrics["nmi"] > 0.4
