"""gnngmm: a GNN encoder fused with a Gaussian-mixture head for node clustering, anomaly scores
and density modelling.

``from gnngmm import GNNGMM`` is the estimator (scikit-learn / PyGOD conventions); the mixture
alone lives in :mod:`gnngmm.mixture` (pure PyTorch). Importing changes no global state.
"""

__version__ = "0.1.0"

__all__ = ["GNNGMM", "read_graph", "__version__"]


def __getattr__(name):  # lazy: `import gnngmm.mixture` does not pull in Lightning
    if name == "GNNGMM":
        from gnngmm.estimator import GNNGMM

        return GNNGMM
    if name == "read_graph":
        from gnngmm.data.files import read_graph

        return read_graph
    raise AttributeError(f"module 'gnngmm' has no attribute {name!r}")
