"""Big-graph paths: mini-batch loaders, 2-process DDP with the EM refit, the scale benchmark."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import ROOT, run_cli
from gnngmm.data import GraphDataModule
from gnngmm.train import train


def test_random_node_loader_trains_on_induced_subgraphs(make_cfg):
    metrics = train(make_cfg("data.loader=random_nodes", "data.num_parts=4", "trainer.max_epochs=3"))
    assert metrics["nmi"] > 0.5


def test_sign_features_with_node_batches_and_mlp(make_cfg, tmp_path):
    metrics = train(make_cfg("data.precompute=sign", "data.precompute_hops=2", "data.loader=nodes",
                             "data.batch_size=128", "encoder=mlp", "encoder.hidden_channels=32",
                             "encoder.out_channels=32", "trainer.max_epochs=3"))
    assert metrics["nmi"] > 0.5


def test_sign_precompute_concatenates_hops(tmp_path, mirror):
    dm = GraphDataModule("cora", str(tmp_path / "d"), str(mirror), precompute="sign", precompute_hops=2, loader="nodes",
                         batch_size=100)
    dm.setup()
    assert dm.data.x.shape == (560, 3 * 48)
    batch = next(iter(dm.train_dataloader()))
    assert batch.x.shape == (100, 144) and batch.edge_index.shape == (2, 0)


def _without_extensions(monkeypatch):
    import torch_geometric.typing as pyg_typing

    monkeypatch.setattr(pyg_typing, "WITH_PYG_LIB", False)
    monkeypatch.setattr(pyg_typing, "WITH_TORCH_SPARSE", False)


def test_neighbor_sampler_batches(tmp_path, mirror, monkeypatch):
    _without_extensions(monkeypatch)
    dm = GraphDataModule("cora", str(tmp_path / "d"), str(mirror), loader="neighbor", batch_size=64,
                         num_neighbors=[3, 2])
    dm.setup()
    full = dm.data
    edges = set(map(tuple, full.edge_index.t().tolist()))
    torch.manual_seed(0)
    batch = next(iter(dm.train_dataloader()))
    assert batch.batch_size == 64 and len(set(batch.n_id.tolist())) == batch.num_nodes  # seeds first, no repeats
    torch.testing.assert_close(batch.x, full.x[batch.n_id])
    src, dst = batch.n_id[batch.edge_index[0]], batch.n_id[batch.edge_index[1]]
    assert set(zip(src.tolist(), dst.tolist())) <= edges  # only real edges, neighbour -> target
    seed_in = torch.bincount(batch.edge_index[1][batch.edge_index[1] < 64], minlength=64)
    degree = torch.bincount(full.edge_index[1], minlength=full.num_nodes)[batch.n_id[:64]]
    assert torch.equal(seed_in, degree.clamp(max=3))  # min(k, degree) distinct neighbours per seed
    hop2 = batch.edge_index[1] >= 64
    assert int(torch.bincount(batch.edge_index[1][hop2]).max()) <= 2


def test_neighbor_sampler_takes_every_neighbour_with_minus_one():
    from gnngmm.data.sampling import NeighborSampler
    from raw_fixtures import graph

    data = graph(120, 3, seed=4)
    batch = NeighborSampler(data, [-1])(torch.tensor([5, 7]))
    want = {(int(s), int(t)) for s, t in data.edge_index.t().tolist() if t in (5, 7)}
    got = set(zip(batch.n_id[batch.edge_index[0]].tolist(), batch.n_id[batch.edge_index[1]].tolist()))
    assert got == want


def test_neighbor_loader_trains_without_extensions(make_cfg, monkeypatch):
    _without_extensions(monkeypatch)
    metrics = train(make_cfg("data.loader=neighbor", "data.batch_size=128", "data.num_neighbors=[5,5]",
                             "trainer.max_epochs=2"))
    assert metrics["nmi"] > 0.4


@pytest.mark.skipif(
    not (__import__("torch_geometric.typing").typing.WITH_PYG_LIB or __import__("torch_geometric.typing").typing.WITH_TORCH_SPARSE),
    reason="PyG's own NeighborLoader needs pyg-lib or torch-sparse (not on PyPI as wheels); the plain-PyTorch sampler is tested always",
)
def test_neighbor_loader_trains(make_cfg):
    metrics = train(make_cfg("data.loader=neighbor", "data.batch_size=128", "data.num_neighbors=[5,5]",
                             "trainer.max_epochs=2"))
    assert metrics["nmi"] > 0.4


@pytest.mark.slow  # a subprocess / several processes
def test_ddp_two_cpu_processes_refit_identical_gmms(tmp_path, mirror):
    run = tmp_path / "run"
    result = run_cli(
        ["train.py", "trainer=ddp_sim", "trainer.max_epochs=2", "logger=csv", "callbacks.progress_bar=null",
         "trainer.enable_progress_bar=false", "encoder.hidden_channels=32", "encoder.out_channels=32",
         "gmm.embedding.pca_dim=8", f"hydra.run.dir={run}", f"paths.data_dir={tmp_path}/data",
         f"paths.mirror_dir={mirror}", "save_pictures=false"],
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["nmi"] > 0.5
    # the EM refit ran on both ranks (check_ranks_agree raises on any mismatch) and rank 0 logged it
    history = (run / "history.csv").read_text().splitlines()
    assert len(history) == 3
    assert len(list((run / "csv").glob("version_*"))) == 1, "only rank 0 writes logs"


@pytest.mark.slow  # a subprocess / several processes
def test_bench_scale_small(tmp_path):
    result = run_cli(
        ["scripts/bench_scale.py", "--nodes", "3000", "--edges", "30000", "--features", "32", "--blocks", "5",
         "--signal", "1.0", "--epochs", "2", "--output", str(tmp_path / "bench")],
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("nodes", "edges", "epoch_seconds", "em_seconds", "peak_rss_mb", "peak_gpu_mb", "nmi"):
        assert key in line
    assert line["nodes"] == 3000 and line["peak_gpu_mb"] is None
    assert line["nmi"] >= 0.9
