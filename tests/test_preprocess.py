"""Graph preparation (gnngmm.data.preprocess): stored self-loops removed, the sorted-undirected check,
SIGN pre-propagation."""

from __future__ import annotations

import torch
from raw_fixtures import graph
from torch_geometric.data import Data

from gnngmm.data import GraphDataModule


def test_stored_self_loops_are_removed(tmp_path):
    data = graph(60, 3, seed=2)
    loops = torch.arange(60).repeat(2, 1)  # BOND reddit stores one on every node
    with_loops = Data(x=data.x, edge_index=torch.cat([data.edge_index, loops], dim=1), num_nodes=60)
    dm = GraphDataModule("toy", str(tmp_path), data=with_loops)
    dm.setup()
    ei = dm.data.edge_index
    assert not bool((ei[0] == ei[1]).any())
    assert set(map(tuple, ei.t().tolist())) == set(map(tuple, data.edge_index.t().tolist()))


def test_sorted_undirected_check_is_exact():
    from gnngmm.data.preprocess import is_sorted_undirected

    ei = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    assert is_sorted_undirected(ei, 3)
    assert not is_sorted_undirected(ei[:, [1, 0, 2, 3]], 3)  # unsorted
    assert not is_sorted_undirected(torch.tensor([[0, 1, 1], [1, 0, 2]]), 3)  # 1 -> 2 without 2 -> 1
    assert not is_sorted_undirected(torch.tensor([[0, 0, 1, 1], [1, 1, 0, 0]]), 3)  # duplicates


def test_sign_precompute_l2_scales_every_hop():
    from raw_fixtures import graph

    from gnngmm.data.preprocess import precompute_features

    data = graph(200, 4, seed=1)
    plain = precompute_features(data.x, data.edge_index, 2, "sign")
    scaled = precompute_features(data.x, data.edge_index, 2, "sign", "l2")
    f = data.num_features
    for hop in range(3):
        block = scaled[:, hop * f : (hop + 1) * f]
        nonzero = plain[:, hop * f : (hop + 1) * f].norm(dim=1) > 0
        torch.testing.assert_close(block[nonzero].norm(dim=1), torch.ones(int(nonzero.sum())))
        torch.testing.assert_close(block, torch.nn.functional.normalize(plain[:, hop * f : (hop + 1) * f], dim=1))
