"""Big-graph paths: mini-batch loaders, 2-process DDP with the EM refit, the scale benchmark."""

from __future__ import annotations

import json
import sys

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
        "        torch.save({'seen': seen, 'means': module.head.mixture.means_.cpu()}, f'{self.out}/rank{trainer.global_rank}.pt')\n"
    )
    run = tmp_path / "run"
    result = run_cli(
        ["train.py", "trainer=ddp_sim", "trainer.max_epochs=2", "data.loader=neighbor", "data.batch_size=64",
         "logger=csv", "callbacks.progress_bar=null", "trainer.enable_progress_bar=false", "encoder.hidden_channels=32",
         "encoder.out_channels=32", "head.transform.pca_dim=8", f"hydra.run.dir={run}", f"paths.data_dir={tmp_path}/data",
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
        GNNGMM(7, trainer={"accelerator": "cpu", "devices": 2, "strategy": "ddp_spawn"}).fit(data)


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
    """The benchmark at CI size: the JSON line carries what the issue asks for, and training lifts
    the clusters far above k-means on the raw features.

    At 3,000 nodes k-means on the pre-propagated features still leads (NMI 0.24 against 0.20-0.23
    for 3-40 epochs): the trained pipeline overtakes it only with the mission's sizes (Reddit
    preset 0.864 against 0.824, docs/scaling.md), which CI cannot run. So this asserts what holds
    at this size, not the full-size claim."""
    result = run_cli(
        ["scripts/bench_scale.py", "--nodes", "3000", "--edges", "60000", "--features", "32", "--blocks", "5",
         "--epochs", "3", "--batch-size", "512", "--threads", "1", "--output", str(tmp_path / "bench")],
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("nodes", "edges_directed", "nmi", "ari", "raw_kmeans_nmi", "propagated_kmeans_nmi", "epoch_seconds",
                "em_seconds", "total_seconds", "peak_rss_mb", "peak_gpu_mb", "propagate_seconds", "final_seconds"):
        assert key in line, key
    assert line["nodes"] == 3000 and line["edges_directed"] == 60000 and line["peak_gpu_mb"] is None
    assert line["raw_kmeans_nmi"] < 0.05 and line["nmi"] > 0.15, line  # raw k-means 0.005, the pipeline 0.20
    assert line["raw_kmeans_nmi"] < line["propagated_kmeans_nmi"] and line["nmi"] > 0.75 * line["propagated_kmeans_nmi"], line


# --------------------------------------------------------------------------- issue 15: true-size machinery
def test_presets_have_the_real_sizes_and_scale_in_proportion():
    from gnngmm.data.synthetic import preset

    reddit = preset("reddit")
    assert (reddit["num_nodes"], reddit["num_edges"], reddit["num_features"], reddit["num_blocks"]) == (232_965, 114_615_892, 602, 41)
    products = preset("products")
    assert (products["num_nodes"], products["num_edges"], products["num_features"], products["num_blocks"]) == (2_449_029, 123_718_280, 100, 47)
    arxiv = preset("arxiv")
    assert (arxiv["num_nodes"], arxiv["num_edges"], arxiv["num_features"], arxiv["num_blocks"]) == (169_343, 2_332_486, 128, 40)
    quarter = preset("reddit", 0.25)
    assert quarter["num_nodes"] == round(232_965 / 4) and quarter["num_edges"] % 2 == 0
    assert abs(quarter["num_edges"] / quarter["num_nodes"] - 114_615_892 / 232_965) < 0.01


def test_planted_graph_is_exact_sorted_symmetric_and_heavy_tailed():
    from gnngmm.data.preprocess import is_sorted_undirected
    from gnngmm.data.synthetic import planted_features, planted_graph, planted_labels

    kw = dict(num_edges=80_000, homophily=0.5, degree_sigma=1.3, block_size_exponent=1.0, feature_signal=0.3, seed=3)
    data = planted_graph(4000, 12, 16, **kw)
    ei = data.edge_index
    assert ei.shape[1] == 80_000 and bool((ei[0] != ei[1]).all())
    assert is_sorted_undirected(ei, 4000)  # sorted by (row, col), no duplicates, both directions
    deg = torch.bincount(ei[0], minlength=4000).double()
    assert deg.max() > 8 * deg.median()  # hubs
    assert float((deg <= deg.mean() / 4).double().mean()) > 0.1  # and many low-degree nodes
    sizes = torch.bincount(data.y)
    assert sizes.max() > 5 * sizes.min() and sizes.min() >= 2
    homophily = float((data.y[ei[0]] == data.y[ei[1]]).double().mean())
    assert 0.4 < homophily < 0.8
    again = planted_graph(4000, 12, 16, **kw)
    assert torch.equal(again.edge_index, ei) and torch.equal(again.x, data.x)
    # the benchmark regenerates the raw features without the edges: the same tensor
    y = planted_labels(4000, 12, 1.0, 3)
    assert torch.equal(y, data.y) and torch.equal(planted_features(y, 12, 16, 0.3, 3), data.x)


def test_sorted_undirected_check_is_exact():
    from gnngmm.data.preprocess import is_sorted_undirected

    ei = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    assert is_sorted_undirected(ei, 3)
    assert not is_sorted_undirected(ei[:, [1, 0, 2, 3]], 3)  # unsorted
    assert not is_sorted_undirected(torch.tensor([[0, 1, 1], [1, 0, 2]]), 3)  # 1 -> 2 without 2 -> 1
    assert not is_sorted_undirected(torch.tensor([[0, 0, 1, 1], [1, 1, 0, 0]]), 3)  # duplicates


def test_normalized_adjacency_is_int32_and_equals_gcn_norm():
    from torch_geometric.nn.conv.gcn_conv import gcn_norm
    from torch_geometric.utils import scatter

    from gnngmm.encoders.propagation import normalized_adjacency, propagate

    g = torch.Generator().manual_seed(0)
    ei = torch.cat([torch.randint(300, (2, 2000), generator=g), torch.tensor([[5, 5], [5, 5]])], 1)  # + stored loops
    x = torch.randn(300, 8, generator=g)
    adj = normalized_adjacency(ei, 300)
    assert adj.crow_indices().dtype == torch.int32 and adj.col_indices().dtype == torch.int32
    ref_ei, w = gcn_norm(ei, None, 300, add_self_loops=True)
    expected = scatter(x[ref_ei[0]] * w[:, None], ref_ei[1], 0, dim_size=300, reduce="sum")
    torch.testing.assert_close(adj @ x, expected, atol=1e-5, rtol=1e-5)
    out = torch.zeros(300, 20)
    propagate(adj, x, chunk_size=37, out=out[:, 4:12])  # by row blocks, into a slice
    torch.testing.assert_close(out[:, 4:12], expected, atol=1e-5, rtol=1e-5)


def test_sign_precompute_l2_scales_every_hop():
    from gnngmm.data.preprocess import precompute_features
    from raw_fixtures import graph

    data = graph(200, 4, seed=1)
    plain = precompute_features(data.x, data.edge_index, 2, "sign")
    scaled = precompute_features(data.x, data.edge_index, 2, "sign", "l2")
    f = data.num_features
    for hop in range(3):
        block = scaled[:, hop * f : (hop + 1) * f]
        nonzero = plain[:, hop * f : (hop + 1) * f].norm(dim=1) > 0
        torch.testing.assert_close(block[nonzero].norm(dim=1), torch.ones(int(nonzero.sum())))
        torch.testing.assert_close(block, torch.nn.functional.normalize(plain[:, hop * f : (hop + 1) * f], dim=1))


@pytest.mark.parametrize("arch, kwargs", [("gcn", {}), ("sage", {}), ("gat", {"heads": 4}), ("gat", {"heads": 2, "add_self_loops": False})])
def test_lean_layerwise_inference_equals_forward(monkeypatch, arch, kwargs):
    """The paths big graphs take (GCN on the int32 CSR, GAT in edge-budgeted chunks) forced on a
    small one."""
    import gnngmm.encoders.gnn as gnn
    import gnngmm.encoders.inference as inference
    from gnngmm.encoders import GNNEncoder
    from raw_fixtures import graph

    monkeypatch.setattr(gnn, "LAYERWISE_MIN_EDGES", 0)
    monkeypatch.setattr(inference, "EDGE_CHUNK_BYTES", 4 * 64 * 40)  # ~40 edges per GAT chunk
    data = graph(300, 5, seed=2)
    torch.manual_seed(0)
    encoder = GNNEncoder(data.num_features, arch=arch, hidden_channels=64, out_channels=16, num_layers=2, **kwargs).eval()
    expected = encoder(data.x, data.edge_index)
    got = encoder.full_graph_embedding(data.x, data.edge_index, chunk_size=64)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_neighbor_sampler_reads_sorted_symmetric_edges_without_a_copy():
    from gnngmm.data.sampling import NeighborSampler
    from raw_fixtures import graph

    data = graph(200, 4, seed=5)
    lean = NeighborSampler(data, [3, 2], undirected=True)
    assert lean.col.data_ptr() == data.edge_index[1].data_ptr()
    plain = NeighborSampler(data, [3, 2])
    assert torch.equal(lean.rowptr, plain.rowptr)
    for node in range(200):  # same neighbour sets
        a, b = lean.rowptr[node], lean.rowptr[node + 1]
        assert sorted(lean.col[a:b].tolist()) == sorted(plain.col[a:b].tolist())


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


def test_pyg_neighbor_loader_batches_carry_the_whole_graphs_degrees():
    from torch_geometric.data import Data

    from gnngmm.data.sampling import FullDegree

    data = Data(edge_index=torch.tensor([[1, 2, 3, 0], [0, 0, 0, 1]]), num_nodes=4)
    batch = FullDegree(data)(Data(n_id=torch.tensor([1, 0]), num_nodes=2))
    assert batch.full_degree.tolist() == [1, 3]


# --------------------------------------------------------------------------- full-batch memory guard
def test_full_batch_estimate_at_reddit_size():
    """The mission's command: GAT over Reddit's 114.6M edges in one step cannot fit one GPU; the
    NS4GC all-pairs term alone cannot either; with sampled negatives GCN is tens of GB."""
    from gnngmm.memory import estimate_full_batch_bytes
    from gnngmm.objectives.ns4gc import negatives

    n, e, f = 232_965, 114_615_892, 602
    gat = estimate_full_batch_bytes(n, e, f, arch="gat", hidden_channels=256, out_channels=64, heads=4,
                                    objective="ns4gc", negatives=negatives(n, None))
    assert gat.parts["messages"] > 400 * 2**30 and gat.total > 80 * 2**30
    # messages: views x layers x (2 x edges x heads x channels + 5 x edges x heads) float32
    assert gat.parts["messages"] == 2 * 2 * (e + n) * (2 * 256 + 5 * 4) * 4
    all_pairs = estimate_full_batch_bytes(n, e, f, arch="gcn", objective="ns4gc", negatives=None)
    assert all_pairs.parts["pairwise"] > 2 * n * n * 4  # N x N similarities and sigmoids
    gcn = estimate_full_batch_bytes(n, e, f, arch="gcn", objective="ns4gc", negatives=negatives(n, None))
    assert 5 * 2**30 < gcn.total < 40 * 2**30
    cora = estimate_full_batch_bytes(2708, 10556, 1433, arch="gat", heads=4, objective="ns4gc", negatives=None)
    assert cora.total < 2**30
    assert "messages" in gat.describe()


def test_ns4gc_negatives_scale_with_the_graph():
    from gnngmm.objectives.ns4gc import negatives

    assert negatives(7_650, None) is None  # Photo and smaller: all pairs
    assert negatives(18_333, None) == 4096  # Coauthor CS and bigger: a sampled block (all pairs: ~30 s per epoch)
    assert negatives(1000, 256) == 256 and negatives(100, 256) is None  # explicit values win


def test_full_batch_guard_switches_to_the_neighbour_loader(make_cfg, caplog):
    """Forced at CI size: a memory limit below the estimate switches the run to data.loader=neighbor
    with a logged line that shows the numbers, and the run completes."""
    import logging

    with caplog.at_level(logging.WARNING, logger="gnngmm.memory"):
        metrics = train(make_cfg("encoder=gat", "encoder.heads=2", "data.memory_limit_gb=0.001", "data.batch_size=128"))
    line = next(r.getMessage() for r in caplog.records if "switching to data.loader=neighbor" in r.getMessage())
    assert "full-batch step of gat + ns4gc on 560 nodes" in line and "MiB" in line and "more than 100%" in line
    assert metrics["nmi"] > 0.3


def test_full_batch_guard_error_names_the_override(make_cfg):
    from gnngmm.errors import InputError

    with pytest.raises(InputError, match=r"data\.loader=neighbor") as err:
        train(make_cfg("encoder=gat", "data.memory_limit_gb=0.001", "data.full_batch_guard=error"))
    assert "data.full_batch_guard=off" in str(err.value)


def test_full_batch_guard_passes_what_fits_and_can_be_turned_off(make_cfg, caplog, monkeypatch):
    import logging

    import gnngmm.memory as memory

    decisions = []
    real = memory.check_full_batch
    monkeypatch.setattr(memory, "check_full_batch", lambda *a, **k: decisions.append(real(*a, **k)) or decisions[-1])
    with caplog.at_level(logging.WARNING, logger="gnngmm.memory"):
        train(make_cfg("trainer.max_epochs=1"))  # Cora-sized fixture: fits
        train(make_cfg("trainer.max_epochs=1", "data.memory_limit_gb=0.001", "data.full_batch_guard=off", "overwrite=true"))
    assert decisions == ["full", "full"]
    assert not [r for r in caplog.records if "switching" in r.getMessage()]


# --------------------------------------------------------------------------- OGB loaders
@pytest.mark.parametrize("name, classes", [("ogbn_arxiv", 40), ("ogbn_products", 47), ("ogbn_papers100m", 17)])
def test_ogb_loaders_read_raw_format_fixtures(tmp_path, mirror, name, classes):
    pytest.importorskip("ogb")
    from gnngmm.data import load_dataset

    data = load_dataset(name, tmp_path / "data", mirror)
    assert data.num_nodes == 400 and data.x.shape == (400, 16) and data.y.dtype == torch.long
    labelled = data.y >= 0
    if name == "ogbn_papers100m":  # NaN labels in OGB's file -> -1, skipped by the metrics
        assert 0.3 < float(labelled.double().mean()) < 0.7
    else:
        assert bool(labelled.all())
    assert int(data.y[labelled].max()) < classes
    dm = GraphDataModule(name, str(tmp_path / "data"), str(mirror))
    dm.setup()
    assert dm.data.is_undirected()  # arxiv / papers100M store one direction: symmetrised on setup


def test_ogb_missing_files_name_the_directory(tmp_path, monkeypatch):
    pytest.importorskip("ogb")
    from gnngmm.data import load_dataset
    from gnngmm.errors import InputError

    with pytest.raises(InputError) as err:
        load_dataset("ogbn_arxiv", tmp_path / "data", tmp_path / "no-mirror", download=False)
    assert str(tmp_path / "data" / "ogb" / "ogbn_arxiv" / "raw") in str(err.value)

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    with pytest.raises(InputError) as err:
        load_dataset("ogbn_products", tmp_path / "data", tmp_path / "no-mirror")
    message = str(err.value)
    assert "ogbn_products" in message and str(tmp_path / "data" / "ogb" / "ogbn_products" / "raw") in message


def test_ogb_without_the_package_is_one_clear_line(tmp_path, mirror, monkeypatch):
    import builtins

    from gnngmm.data import load_dataset
    from gnngmm.errors import InputError

    real_import = builtins.__import__

    def no_ogb(name, *args, **kwargs):
        if name == "ogb" or name.startswith("ogb."):
            raise ImportError("No module named 'ogb'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ogb)
    with pytest.raises(InputError, match=r"pip install ogb") as err:
        load_dataset("ogbn_arxiv", tmp_path / "data", mirror)
    assert "\n" not in str(err.value)


def test_ogbn_products_experiment_takes_the_scalable_path(make_cfg):
    pytest.importorskip("ogb")
    cfg = make_cfg("experiment=ogbn_products", "trainer.max_epochs=2", "loss.finetune_epochs=1", "data.batch_size=128",
                   "encoder.hidden_channels=32", "encoder.out_channels=16")
    assert cfg.data.loader == "nodes" and cfg.data.precompute == "sign" and cfg.encoder.arch == "mlp"
    metrics = train(cfg)
    assert metrics["dataset"] == "ogbn_products" and metrics["num_nodes"] == 400 and metrics["nmi"] > 0.3


def test_scaling_table_fits_growth_slopes(tmp_path, capsys):
    """scripts/scaling_table.py: the slope of a stage that doubles with the edges is 1, of one that
    quadruples 2; the table lists the runs by size."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import scaling_table

    logs = []
    for i, edges in enumerate((1000, 2000, 4000)):
        run = {"preset": "reddit", "scale": edges / 4000, "nodes": edges // 10, "edges_directed": edges, "epochs": 1,
               "nmi": 0.5, "raw_kmeans_nmi": 0.1, "propagated_kmeans_nmi": 0.4, "generate_seconds": 1.0,
               "propagate_seconds": edges / 100, "epoch_seconds": (edges / 1000) ** 2, "em_seconds": 2.0,
               "final_seconds": 1.0, "total_seconds": 9.0, "peak_rss_mb": 100.0 + i}
        path = tmp_path / f"r{i}.log"
        path.write_text("progress line\n" + json.dumps(run) + "\n")
        logs.append(str(path))
    scaling_table.main(logs)
    out = capsys.readouterr().out
    assert "| reddit | 0.25 | 100 | 1,000 |" in out
    slopes = next(line for line in out.splitlines() if line.startswith("| reddit | 3 |")).split(" | ")
    assert slopes[3] == "1.00" and slopes[4] == "2.00" and slopes[5] == "0.00", slopes  # propagate, epoch, em
