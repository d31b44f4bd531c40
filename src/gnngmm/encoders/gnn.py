"""GNN encoders: PyG's ``GCN`` / ``GraphSAGE`` / ``GAT`` (``BasicGNN``) plus an output activation."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import GAT, GCN, MLP, GraphSAGE
from torch_geometric.nn.resolver import activation_resolver
from torch_geometric.utils import to_torch_csr_tensor

from gnngmm.errors import InputError

ARCHITECTURES = {"gcn": GCN, "sage": GraphSAGE, "gat": GAT}


class GNNEncoder(nn.Module):
    """``x, edge_index -> h`` (one row per node). ``arch`` picks the PyG model; ``out_act``
    (e.g. PReLU, as DGI uses) is applied after the last layer, which ``BasicGNN`` leaves linear."""

    def __init__(
        self,
        in_channels: int,
        arch: str = "gcn",
        hidden_channels: int = 512,
        out_channels: int = 512,
        num_layers: int = 1,
        dropout: float = 0.0,
        act: str | None = "prelu",
        norm: str | None = None,
        out_act: str | None = "prelu",
        heads: int = 1,
        **conv_kwargs,
    ):
        super().__init__()
        if arch not in ARCHITECTURES:
            raise InputError(f"encoder.arch={arch!r} is not one of {', '.join(ARCHITECTURES)}")
        if arch == "gat":
            conv_kwargs["heads"] = heads
        self.arch = arch
        self.gnn = ARCHITECTURES[arch](
            in_channels=in_channels, hidden_channels=hidden_channels, num_layers=num_layers,
            out_channels=out_channels, dropout=dropout, act=act, norm=norm, **conv_kwargs,
        )
        self.out_act = activation_resolver(out_act) if out_act else nn.Identity()
        self.out_channels = out_channels
        self._adj_source: Tensor | None = None
        self._adj: Tensor | None = None

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        if edge_weight is not None and self.gnn.supports_edge_weight:
            return self.out_act(self.gnn(x, edge_index, edge_weight=edge_weight))
        return self.out_act(self.gnn(x, self._sparse_adjacency(edge_index, x.shape[0])))

    def _sparse_adjacency(self, edge_index: Tensor, num_nodes: int) -> Tensor:
        """GCN and SAGE aggregate faster by a sparse product than by gathering per-edge messages;
        the CSR matrix is cached while the same edge tensor comes back (full-batch training)."""
        if self.arch == "gat" or edge_index.layout != torch.strided:
            return edge_index
        if self._adj_source is not edge_index or self._adj.shape[0] != num_nodes:
            self._adj = to_torch_csr_tensor(edge_index.flip(0), size=(num_nodes, num_nodes))
            self._adj_source = edge_index
        return self._adj

    @torch.no_grad()
    def full_graph_embedding(self, x: Tensor, edge_index: Tensor, chunk_size: int = 65536) -> Tensor:
        """Every node's embedding, layer by layer over chunks of destination nodes."""
        from gnngmm.encoders.inference import layerwise_embedding

        return layerwise_embedding(self, x, edge_index, chunk_size)


class MLPEncoder(nn.Module):
    """Node-wise MLP over (pre-propagated) features: the SIGN-style path that needs no sampler."""

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int = 512,
        out_channels: int = 512,
        num_layers: int = 2,
        dropout: float = 0.0,
        act: str = "prelu",
        norm: str | None = None,
        out_act: str | None = "prelu",
        arch: str = "mlp",
    ):
        super().__init__()
        self.arch = arch
        self.mlp = MLP(
            in_channels=in_channels, hidden_channels=hidden_channels, out_channels=out_channels,
            num_layers=num_layers, dropout=dropout, act=act, norm=norm,
        )
        self.out_act = activation_resolver(out_act) if out_act else nn.Identity()
        self.out_channels = out_channels

    def forward(self, x: Tensor, edge_index: Tensor | None = None, edge_weight: Tensor | None = None) -> Tensor:
        return self.out_act(self.mlp(x))

    @torch.no_grad()
    def full_graph_embedding(self, x: Tensor, edge_index: Tensor | None = None, chunk_size: int = 65536) -> Tensor:
        return torch.cat([self(part) for part in x.split(chunk_size)])
