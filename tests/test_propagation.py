"""Sparse propagation (gnngmm.encoders.propagation): the int32 CSR GCN adjacency equals PyG's gcn_norm."""

from __future__ import annotations

import torch


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
