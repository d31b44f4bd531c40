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
def test_ddp_ranks_divide_the_seed_nodes_and_hold_one_gmm(tmp_path, mirror):
    """trainer=ddp_sim (2 processes): every epoch each rank trains on its own half of the seed
    nodes (together all of them, none twice), and both end with the same mixture."""
    (tmp_path / "seen_nodes.py").write_text(
        "import torch\n"
        "from lightning.pytorch.callbacks import Callback\n"
        "class SeenNodes(Callback):\n"
        "    def __init__(self, out):\n"
        "        self.out, self.seen = out, {}\n"
        "    def on_train_batch_start(self, trainer, module, batch, batch_idx):\n"
        "        self.seen.setdefault(trainer.current_epoch, []).append(batch.n_id[: batch.batch_size])\n"
        "    def on_train_end(self, trainer, module):\n"
        "        seen = {e: torch.cat(v) for e, v in self.seen.items()}\n"
        "        torch.save({'seen': seen, 'means': module.gmm.means_.cpu()}, f'{self.out}/rank{trainer.global_rank}.pt')\n"
    )
    run = tmp_path / "run"
    result = run_cli(
        ["train.py", "trainer=ddp_sim", "trainer.max_epochs=2", "data.loader=neighbor", "data.batch_size=64",
         "logger=csv", "callbacks.progress_bar=null", "trainer.enable_progress_bar=false", "encoder.hidden_channels=32",
         "encoder.out_channels=32", "gmm.embedding.pca_dim=8", f"hydra.run.dir={run}", f"paths.data_dir={tmp_path}/data",
         f"paths.mirror_dir={mirror}", "save_pictures=false", "+callbacks.seen._target_=seen_nodes.SeenNodes",
         f"+callbacks.seen.out={tmp_path}"],
        cwd=ROOT, env_extra={"PYTHONPATH": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    for epoch in (0, 1):
        a, b = (r["seen"][epoch] for r in ranks)
        assert len(a) == len(b) == 280 and not set(a.tolist()) & set(b.tolist())
        assert sorted(a.tolist() + b.tolist()) == list(range(560))
    assert not torch.equal(ranks[0]["seen"][0], ranks[0]["seen"][1]), "a new order every epoch"
    assert torch.equal(ranks[0]["means"], ranks[1]["means"]), "one mixture on every rank"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["nmi"] > 0.5 and metrics["world_size"] == 2
    assert len((run / "history.csv").read_text().splitlines()) == 3
    assert len(list((run / "csv").glob("version_*"))) == 1, "only rank 0 writes logs"


def test_full_batch_under_ddp_is_refused_before_training(tmp_path, mirror, monkeypatch):
    import lightning

    from gnngmm import GNNGMM
    from gnngmm.data import load_dataset
    from gnngmm.errors import InputError

    monkeypatch.setattr(lightning.Trainer, "fit", lambda *a, **k: pytest.fail("trained before checking"))
    data = load_dataset("cora", tmp_path / "data", mirror)
    with pytest.raises(InputError, match="data.loader=full under DDP.*data.loader=neighbor"):
        GNNGMM(accelerator="cpu", devices=2, trainer_kwargs={"strategy": "ddp_spawn"}).fit(data)


def test_shard_sampler_divides_every_epoch_and_repeats_on_resume():
    from gnngmm.data.sampling import ShardSampler

    ranks = [ShardSampler(11, r, 3, seed=4) for r in range(3)]
    for epoch in (0, 5):
        for r in ranks:
            r.set_epoch(epoch)
        shares = [list(r) for r in ranks]
        assert sorted(sum(shares, [])) == list(range(11)) and [len(s) for s in shares] == [len(r) for r in ranks] == [4, 4, 3]
    again = ShardSampler(11, 0, 3, seed=4)
    again.set_epoch(5)
    assert list(again) == shares[0]


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
