"""Mini-batch samplers (gnngmm.data.sampling): the plain-PyTorch neighbour sampler, the DDP shard
sampler and the whole graph's degrees on sampled batches."""

from __future__ import annotations

import torch
from conftest import without_pyg_extensions

from gnngmm.data import GraphDataModule


def test_neighbor_sampler_batches(tmp_path, mirror, monkeypatch):
    without_pyg_extensions(monkeypatch)
    dm = GraphDataModule(
        "cora", str(tmp_path / "d"), str(mirror), loader="neighbor", batch_size=64, num_neighbors=[3, 2]
    )
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
    from raw_fixtures import graph

    from gnngmm.data.sampling import NeighborSampler

    data = graph(120, 3, seed=4)
    batch = NeighborSampler(data, [-1])(torch.tensor([5, 7]))
    want = {(int(s), int(t)) for s, t in data.edge_index.t().tolist() if t in (5, 7)}
    got = set(zip(batch.n_id[batch.edge_index[0]].tolist(), batch.n_id[batch.edge_index[1]].tolist()))
    assert got == want


def test_neighbor_sampler_reads_sorted_symmetric_edges_without_a_copy():
    from raw_fixtures import graph

    from gnngmm.data.sampling import NeighborSampler

    data = graph(200, 4, seed=5)
    lean = NeighborSampler(data, [3, 2], undirected=True)
    assert lean.col.data_ptr() == data.edge_index[1].data_ptr()
    plain = NeighborSampler(data, [3, 2])
    assert torch.equal(lean.rowptr, plain.rowptr)
    for node in range(200):  # same neighbour sets
        a, b = lean.rowptr[node], lean.rowptr[node + 1]
        assert sorted(lean.col[a:b].tolist()) == sorted(plain.col[a:b].tolist())


def test_shard_sampler_divides_every_epoch_and_repeats_on_resume():
    from gnngmm.data.sampling import ShardSampler

    ranks = [ShardSampler(11, r, 3, seed=4) for r in range(3)]
    for epoch in (0, 5):
        for r in ranks:
            r.set_epoch(epoch)
        shares = [list(r) for r in ranks]
        assert sorted(sum(shares, [])) == list(range(11)) and [len(s) for s in shares] == [len(r) for r in ranks] == [
            4,
            4,
            3,
        ]
    again = ShardSampler(11, 0, 3, seed=4)
    again.set_epoch(5)
    assert list(again) == shares[0]


def test_pyg_neighbor_loader_batches_carry_the_whole_graphs_degrees():
    from torch_geometric.data import Data

    from gnngmm.data.sampling import FullDegree

    data = Data(edge_index=torch.tensor([[1, 2, 3, 0], [0, 0, 0, 1]]), num_nodes=4)
    batch = FullDegree(data)(Data(n_id=torch.tensor([1, 0]), num_nodes=2))
    assert batch.full_degree.tolist() == [1, 3]
