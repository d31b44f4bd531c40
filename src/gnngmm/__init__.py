"""gnngmm: a GNN encoder fused with a Gaussian-mixture head for node clustering, anomaly scores
and density modelling. The mixture lives in :mod:`gnngmm.mixture` (pure PyTorch)."""

__version__ = "0.1.0"
