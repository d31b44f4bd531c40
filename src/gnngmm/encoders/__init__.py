"""Encoders: PyG GCN / GraphSAGE / GAT, an MLP for pre-propagated features, training-free SGC."""

from gnngmm.encoders.gnn import ARCHITECTURES, GNNEncoder, MLPEncoder
from gnngmm.encoders.sgc import SGCEncoder

__all__ = ["ARCHITECTURES", "GNNEncoder", "MLPEncoder", "SGCEncoder"]
