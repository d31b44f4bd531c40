"""Lightning callbacks; the EM refit of the GMM head lives in :mod:`gnngmm.callbacks.em_refit`."""

from gnngmm.callbacks.em_refit import EMRefit, refit

__all__ = ["EMRefit", "refit"]
