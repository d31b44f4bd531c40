"""Lightning callbacks: when the GMM head is refit (``EMRefit``; the refit is :mod:`gnngmm.head`)
and the per-refit history file (``HistoryCSV``)."""

from gnngmm.callbacks.em_refit import EMRefit
from gnngmm.callbacks.history import HistoryCSV

__all__ = ["EMRefit", "HistoryCSV"]
