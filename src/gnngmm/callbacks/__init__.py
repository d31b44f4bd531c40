"""Lightning callbacks: when the GMM head is refit (``EMRefit``; the refit is :mod:`gnngmm.head`),
the per-refit history file (``HistoryCSV``) and the every-epoch atomic ``last.ckpt``
(``LastCheckpoint``)."""

from gnngmm.callbacks.checkpoint import LastCheckpoint
from gnngmm.callbacks.em_refit import EMRefit
from gnngmm.callbacks.history import HistoryCSV

__all__ = ["EMRefit", "HistoryCSV", "LastCheckpoint"]
