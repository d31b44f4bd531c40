"""Training-free baseline: K-hop propagated features (SGC / SSGC), no parameters at all.

Every results table carries it, so the gain from training is visible.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gnngmm.encoders.propagation import normalized_adjacency, propagate


class SGCEncoder(nn.Module):
    """``h = S^K x`` (``alpha=0``, SGC) or the SSGC average ``(1/K) sum_k ((1-a) S^k x + a x)``,
    with ``S`` the symmetrically normalised adjacency with self-loops. ``normalize=True``
    L2-normalises each node's row afterwards, so that a PCA of the output (the spectral baseline)
    follows the directions that tell nodes apart rather than the nodes with the most words."""

    def __init__(
        self, in_channels: int, k: int = 8, alpha: float = 0.0, average: bool = False, normalize: bool = False, **_
    ):
        super().__init__()
        self.arch = "sgc"
        self.k, self.alpha, self.average, self.normalize = k, alpha, average, normalize
        self.out_channels = in_channels

    def forward(self, x: Tensor, edge_index: Tensor, edge_mask=None, feature_mask=None) -> Tensor:
        if edge_mask is not None:
            edge_index = edge_index[:, edge_mask]
        return self.full_graph_embedding(x if feature_mask is None else x * feature_mask, edge_index)

    @torch.no_grad()
    def full_graph_embedding(self, x: Tensor, edge_index: Tensor, chunk_size: int = 65536) -> Tensor:
        adj = normalized_adjacency(edge_index, x.shape[0])
        h, acc = x, torch.zeros_like(x)
        for _ in range(self.k):
            h = propagate(adj, h, chunk_size)
            acc += (1 - self.alpha) * h + self.alpha * x
        h = acc / self.k if self.average else h
        return torch.nn.functional.normalize(h, dim=1) if self.normalize else h
