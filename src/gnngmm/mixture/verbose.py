"""scikit-learn's verbose output of EM: a line per initialisation and per ``verbose_interval`` iterations."""

from __future__ import annotations

import time


class Progress:
    """Prints EM's progress as scikit-learn's mixtures do, when ``active`` (rank 0 with ``verbose``).

    ``verbose=1`` prints the initialisation and iteration numbers and whether EM converged;
    ``verbose>=2`` adds the time since the previous line, the log-likelihood change and the lower bound.

    Args:
        verbose (int): the estimator's ``verbose``.
        interval (int): iterations between lines.
        active (bool): print at all.
    """

    def __init__(self, verbose: int, interval: int, active: bool):
        self.verbose, self.interval, self.active = verbose, interval, active
        self._init_start = self._iter_start = 0.0

    def init_begin(self, i: int) -> None:
        """Initialisation ``i`` starts (its timings start here)."""
        if self.active:
            print(f"Initialization {i}")
            self._init_start = self._iter_start = time.time()

    def iteration(self, n_iter: int, change: float) -> None:
        """Iteration ``n_iter`` (from 1) ended with a lower-bound ``change``."""
        if not (self.active and n_iter % self.interval == 0):
            return
        if self.verbose == 1:
            print(f"  Iteration {n_iter}")
        else:
            now = time.time()
            print(f"  Iteration {n_iter}\t time lapse {now - self._iter_start:.5f}s\t ll change {change:.5f}")
            self._iter_start = now

    def init_end(self, converged: bool, lower_bound: float) -> None:
        """The initialisation's EM ended."""
        if not self.active:
            return
        state = "converged" if converged else "did not converge"
        if self.verbose == 1:
            print(f"Initialization {state}.")
        else:
            lapse = time.time() - self._init_start
            print(f"Initialization {state}. time lapse {lapse:.5f}s\t lower bound {lower_bound:.5f}.")
