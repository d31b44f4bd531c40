"""gnngmm: a GNN encoder fused with a Gaussian-mixture head for node clustering, anomaly scores
and density modelling. The mixture lives in :mod:`gnngmm.mixture` (pure PyTorch)."""

import warnings

import torch

__version__ = "0.1.0"

# Sparse tensors built here are valid by construction: opting out explicitly also silences
# PyTorch's "checks are implicitly disabled" warning, and CSR "beta" notices are noise for users.
torch.sparse.check_sparse_tensor_invariants.disable()
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
