"""GNN encoders: PyG's ``GCN`` / ``GraphSAGE`` / ``GAT`` (``BasicGNN``) plus an output activation.

Two things make self-supervised training cheap here, without changing the maths:

* augmentations arrive as masks (``edge_mask`` over ``edge_index``, ``feature_mask`` over input
  features) instead of new tensors: GCN keeps one CSR structure of ``D^-1/2 (A + I) D^-1/2`` and
  only re-weights it, and a feature mask multiplies the first weight matrix, not ``x``;
* sparse bag-of-words features (density < 5%) enter GCN's first layer as a CSR matrix.

GCN's normalisation is therefore done here (its convs run with ``normalize=False``), identical to
PyG's ``gcn_norm`` with self-loops.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GAT, GCN, MLP, GraphSAGE
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.nn.resolver import activation_resolver
from torch_geometric.utils import to_torch_csr_tensor

from gnngmm.encoders.propagation import GCNAdjacency, SparseFeatures, sparse_mm
from gnngmm.errors import InputError

ARCHITECTURES = {"gcn": GCN, "sage": GraphSAGE, "gat": GAT}
SPARSE_DENSITY = 0.05
# Above this many edges GCN's full-graph embedding goes layer by layer on a lean int32 CSR matrix
# instead of the training structure (int64 indices, positions, per-view weights: ~40 bytes per edge).
LAYERWISE_MIN_EDGES = 4_000_000


class FeatureLinear(Linear):
    """PyG ``Linear`` that also takes :class:`SparseFeatures` and a per-input-feature mask."""

    feature_mask: Tensor | None = None

    def forward(self, x) -> Tensor:
        weight = self.weight if self.feature_mask is None else self.weight * self.feature_mask
        out = sparse_mm(x, weight.T) if isinstance(x, SparseFeatures) else F.linear(x, weight)
        return out + self.bias if self.bias is not None else out


class GNNEncoder(nn.Module):
    """``x, edge_index -> h`` (one row per node). ``arch`` picks the PyG model; ``out_act``
    (e.g. PReLU, as DGI uses) is applied after the last layer, which ``BasicGNN`` leaves linear.
    The command line's and the estimator's settings are ``conf/encoder/<arch>.yaml``'s."""

    def __init__(
        self,
        in_channels: int,
        arch: str = "gcn",
        hidden_channels: int = 256,
        out_channels: int = 128,
        num_layers: int = 2,
        dropout: float = 0.0,
        act: str | None = "selu",
        norm: str | None = None,
        out_act: str | None = None,
        heads: int = 1,
        **conv_kwargs,
    ):
        super().__init__()
        if arch not in ARCHITECTURES:
            raise InputError(f"encoder.arch={arch!r} is not one of {', '.join(ARCHITECTURES)}")
        if arch == "gat":
            conv_kwargs["heads"] = heads
        if arch == "gcn":
            conv_kwargs.update(normalize=False)  # done by GCNAdjacency, on a reusable structure
        self.arch = arch
        self.gnn = ARCHITECTURES[arch](
            in_channels=in_channels,
            hidden_channels=hidden_channels,
            num_layers=num_layers,
            out_channels=out_channels,
            dropout=dropout,
            act=act,
            norm=norm,
            **conv_kwargs,
        )
        # biases start at zero, as GCNConv's and GATConv's do: SAGEConv draws them at random, and
        # on row-normalised features (entries ~1/words) they outweigh W x, so every node's output
        # would start as nearly the same vector, a collapse the objective never leaves
        for name, param in self.gnn.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(param)
        if arch == "gcn":
            first = self.gnn.convs[0].lin
            lin = FeatureLinear(first.in_channels, first.out_channels, bias=False, weight_initializer="glorot")
            lin.load_state_dict(first.state_dict())
            self.gnn.convs[0].lin = lin
        self.out_act = activation_resolver(out_act) if out_act else nn.Identity()
        self.out_channels = out_channels
        self._graph_source: Tensor | None = None
        self._graph = None
        self._x_source: Tensor | None = None
        self._x_sparse: SparseFeatures | None = None

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor,
        edge_mask: Tensor | None = None,
        feature_mask: Tensor | None = None,
    ) -> Tensor:
        """``edge_mask`` (bool, one per column of ``edge_index``) drops edges and ``feature_mask``
        (one per input feature) zeroes features, for augmented views."""
        if self.arch != "gcn":
            if edge_mask is not None:
                edge_index = edge_index[:, edge_mask]
            if feature_mask is not None:
                x = x * feature_mask
            return self.out_act(self.gnn(x, self._aggregation_input(edge_index, x.shape[0])))
        adjacency = self._gcn_adjacency(edge_index, x.shape[0]).matrix(edge_mask)
        lin = self.gnn.convs[0].lin
        lin.feature_mask = feature_mask
        try:
            return self.out_act(self.gnn(self._features(x), adjacency))
        finally:
            lin.feature_mask = None

    def _gcn_adjacency(self, edge_index: Tensor, num_nodes: int) -> GCNAdjacency:
        if self._graph_source is not edge_index or self._graph.num_nodes != num_nodes:
            self._graph = GCNAdjacency(edge_index, num_nodes)
            self._graph_source = edge_index
        return self._graph

    def _features(self, x: Tensor):
        """Sparse bag-of-words features as CSR (cached while the same tensor comes back)."""
        if x.layout != torch.strided or x.dim() != 2 or x.numel() < 10_000:
            return x
        if self._x_source is not x:
            dense = bool((x != 0).float().mean() >= SPARSE_DENSITY)
            self._x_sparse = None if dense else SparseFeatures(x)
            self._x_source = x
        return self._x_sparse if self._x_sparse is not None else x

    def _aggregation_input(self, edge_index: Tensor, num_nodes: int) -> Tensor:
        """SAGE aggregates faster by a sparse product than by gathering per-edge messages."""
        if self.arch == "gat" or edge_index.layout != torch.strided:
            return edge_index
        return to_torch_csr_tensor(edge_index.flip(0), size=(num_nodes, num_nodes))

    @torch.no_grad()
    def full_graph_embedding(self, x: Tensor, edge_index: Tensor, chunk_size: int = 65536) -> Tensor:
        """Every node's embedding in eval mode without per-edge tensors of the whole graph: layer
        by layer, GCN and SAGE as int32 sparse products, GAT over chunks of destination nodes
        (``gnngmm.encoders.inference``). Small graphs take GCN's own forward pass."""
        was_training = self.training
        self.eval()
        try:
            if self.arch == "gcn" and edge_index.shape[1] <= LAYERWISE_MIN_EDGES:
                return self(x, edge_index)
            from gnngmm.encoders.inference import layerwise_embedding

            return layerwise_embedding(self, x, edge_index, chunk_size)
        finally:
            self.train(was_training)


class MLPEncoder(nn.Module):
    """Node-wise MLP over (pre-propagated) features: the SIGN-style path that needs no sampler."""

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int = 512,
        out_channels: int = 256,
        num_layers: int = 2,
        dropout: float = 0.0,
        act: str = "prelu",
        norm: str | None = None,
        out_act: str | None = None,
        arch: str = "mlp",
    ):
        super().__init__()
        self.arch = arch
        self.mlp = MLP(
            in_channels=in_channels,
            hidden_channels=hidden_channels,
            out_channels=out_channels,
            num_layers=num_layers,
            dropout=dropout,
            act=act,
            norm=norm,
        )
        self.out_act = activation_resolver(out_act) if out_act else nn.Identity()
        self.out_channels = out_channels

    def forward(self, x: Tensor, edge_index: Tensor | None = None, edge_mask=None, feature_mask=None) -> Tensor:
        return self.out_act(self.mlp(x if feature_mask is None else x * feature_mask))

    @torch.no_grad()
    def full_graph_embedding(self, x: Tensor, edge_index: Tensor | None = None, chunk_size: int = 65536) -> Tensor:
        was_training = self.training
        self.eval()
        try:
            return torch.cat([self(part) for part in x.split(chunk_size)])
        finally:
            self.train(was_training)
