"""Gaussian mixture in PyTorch (no Lightning, no PyG): a scikit-learn estimator, chunked, DDP-exact."""

from gnngmm.mixture.criteria import select_k
from gnngmm.mixture.distributed import LOCAL, Communicator, TorchDistributed, default_communicator
from gnngmm.mixture.gaussian import COVARIANCE_TYPES, EXTRA_COVARIANCE_TYPES, GMMNumericalError
from gnngmm.mixture.gaussian_mixture import DEGENERATE, GaussianMixture

__all__ = [
    "COVARIANCE_TYPES",
    "DEGENERATE",
    "EXTRA_COVARIANCE_TYPES",
    "LOCAL",
    "Communicator",
    "GMMNumericalError",
    "GaussianMixture",
    "TorchDistributed",
    "default_communicator",
    "select_k",
]
