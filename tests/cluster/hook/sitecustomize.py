"""Installed in SLURM jobs by the cluster tests (on PYTHONPATH), from environment variables:

* ``GNNGMM_SIGNAL_AT`` / ``GNNGMM_SIGNAL``: the job's final stage sends itself that signal at that
  moment (``tests/hooks/signal_at.py``);
* ``GNNGMM_EPOCH_SLEEP``: seconds added to every training epoch, so that a job outlasts a time
  limit whatever the machine's speed (the numbers it computes are unchanged).
"""

import os
import sys

if os.environ.get("GNNGMM_SIGNAL_AT"):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "hooks"))
    from signal_at import install

    install(os.environ["GNNGMM_SIGNAL_AT"], os.environ["GNNGMM_SIGNAL"])

if os.environ.get("GNNGMM_EPOCH_SLEEP"):
    import time

    from gnngmm.callbacks import HistoryCSV

    _epoch_end = HistoryCSV.on_train_epoch_end

    def _slow_epoch_end(self, trainer, pl_module, _pause=float(os.environ["GNNGMM_EPOCH_SLEEP"])):
        time.sleep(_pause)
        _epoch_end(self, trainer, pl_module)

    HistoryCSV.on_train_epoch_end = _slow_epoch_end
