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


class GCNAdjacency:
    """``D^-1/2 (A + I) D^-1/2`` on a fixed CSR structure (rows = destination nodes).

    The structure (with one self-loop per node) is sorted once; dropping edges for an augmented
    view only re-weights it (``edge_mask`` over the columns of the original ``edge_index``), so a
    training step costs O(E) arithmetic instead of a sort. Same values as PyG's ``gcn_norm``.
    """

    def __init__(self, edge_index: Tensor, num_nodes: int):
        self.num_nodes = n = num_nodes
        src, dst = edge_index
        real = torch.nonzero(src != dst).flatten()
        loops = torch.arange(n, device=edge_index.device)
        s = torch.cat([src[real], loops])
        d = torch.cat([dst[real], loops])
        order = torch.argsort(d * n + s)
        self.src, self.dst = s[order], d[order]
        self.position = torch.cat([real, torch.full((n,), -1, device=real.device)])[order]  # -1: self-loop
        self.crow = torch.ops.aten._convert_indices_from_coo_to_csr(self.dst, n)
        self._full: Tensor | None = None

    def matrix(self, edge_mask: Tensor | None = None) -> Tensor:
        if edge_mask is None and self._full is not None:
            return self._full
        if edge_mask is None:
            keep = torch.ones(self.src.shape[0], device=self.src.device)
        else:
            keep = torch.where(self.position >= 0, edge_mask[self.position.clamp_min(0)], True).float()
        deg = torch.zeros(self.num_nodes, device=keep.device).index_add_(0, self.dst, keep)
        inv_sqrt = deg.pow(-0.5)  # >= 1 thanks to the self-loop
        weight = keep * inv_sqrt[self.src] * inv_sqrt[self.dst]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            matrix = torch.sparse_csr_tensor(
                self.crow, self.src, weight, (self.num_nodes, self.num_nodes), check_invariants=False
            )
        if edge_mask is None:
            self._full = matrix
        return matrix


class SparseFeatures:
    """A sparse feature matrix as CSR plus its transpose (for the weight gradient)."""

    def __init__(self, x: Tensor):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            self.csr = x.to_sparse_csr()
            self.csr_t = x.T.contiguous().to_sparse_csr()
        self.shape = x.shape

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]


class _SparseMM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, matrix, matrix_t, dense):
        ctx.matrix_t = matrix_t
        return matrix @ dense

    @staticmethod
    def backward(ctx, grad):
        return None, None, ctx.matrix_t @ grad


def sparse_mm(features: SparseFeatures, dense: Tensor) -> Tensor:
    """``features @ dense``, differentiable in ``dense``."""
    return _SparseMM.apply(features.csr, features.csr_t, dense)
