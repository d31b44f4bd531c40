"""Pure-PyTorch Gaussian mixture (no Lightning, no PyG): scikit-learn's API, chunked, DDP-exact."""

from gnngmm.mixture.criteria import select_k
from gnngmm.mixture.distributed import LOCAL, Communicator, TorchDistributed, default_communicator
from gnngmm.mixture.gaussian import COVARIANCE_TYPES, EXTRA_COVARIANCE_TYPES, GMMNumericalError
from gnngmm.mixture.gaussian_mixture import GaussianMixture

__all__ = [
    "COVARIANCE_TYPES",
    "EXTRA_COVARIANCE_TYPES",
    "Communicator",
    "GMMNumericalError",
    "GaussianMixture",
    "LOCAL",
    "TorchDistributed",
    "default_communicator",
    "select_k",
]
