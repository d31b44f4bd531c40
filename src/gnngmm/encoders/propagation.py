"""Sparse propagation with plain PyTorch: ``S = D^-1/2 (A + I) D^-1/2`` as a CSR matrix.

Memory is O(E) for the matrix and O(N * d) per product: no per-edge feature tensor is ever built.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor
from torch_geometric.utils import add_remaining_self_loops, degree


def gcn_edge_weights(edge_index: Tensor, num_nodes: int) -> tuple[Tensor, Tensor]:
    """Edges with self-loops and their symmetric GCN normalisation weights."""
    edge_index, _ = add_remaining_self_loops(edge_index, num_nodes=num_nodes)
    deg = degree(edge_index[1], num_nodes)
    inv_sqrt = deg.pow(-0.5)
    inv_sqrt[torch.isinf(inv_sqrt)] = 0
    return edge_index, inv_sqrt[edge_index[0]] * inv_sqrt[edge_index[1]]


def csr_adjacency(edge_index: Tensor, weight: Tensor, num_nodes: int) -> Tensor:
    """Sparse CSR matrix with ``out[dst] = sum over edges of weight * x[src]``."""
    coo = torch.sparse_coo_tensor(
        edge_index.flip(0), weight, (num_nodes, num_nodes), check_invariants=False
    ).coalesce()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return coo.to_sparse_csr()


def normalized_adjacency(edge_index: Tensor, num_nodes: int) -> Tensor:
    """``S`` as a sparse CSR tensor with rows = destination nodes."""
    edge_index, weight = gcn_edge_weights(edge_index, num_nodes)
    return csr_adjacency(edge_index, weight, num_nodes)


def propagate(adj: Tensor, x: Tensor, chunk_size: int = 65536) -> Tensor:
    """``adj @ x``, by row blocks when the graph is large."""
    n = adj.shape[0]
    if n <= chunk_size:
        return adj @ x
    crow, col, val = adj.crow_indices(), adj.col_indices(), adj.values()
    out = []
    for start in range(0, n, chunk_size):
        end = min(n, start + chunk_size)
        lo, hi = int(crow[start]), int(crow[end])
        block = torch.sparse_csr_tensor(
            crow[start : end + 1] - lo, col[lo:hi], val[lo:hi], (end - start, n), check_invariants=False
        )
        out.append(block @ x)
    return torch.cat(out)
