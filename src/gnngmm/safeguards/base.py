"""The safeguard interface: a label-free check of the partition at every epoch-end refit that can
send training back to an earlier state.

:class:`~gnngmm.callbacks.EMRefit` schedules the refits and passes each one through the run's
safeguards (``conf/safeguard``), in three hooks:

* :meth:`Safeguard.review` right after the refit: may replace it (after restoring an earlier
  encoder) and may add label-free numbers to ``result.metrics`` (logged with the refit);
* :meth:`Safeguard.observe` once the refit's row is recorded (every logged number in it);
* :meth:`Safeguard.at_end` after the last epoch's refit (before that epoch's checkpoint).

Safeguards keep their own state (``state_dict``), saved in every checkpoint with the callback's.
"""

from __future__ import annotations

from gnngmm.errors import InputError
from gnngmm.head import HeadResult


class Safeguard:
    """Base class: does nothing. ``tolerance`` is a relative drop in ``[0, 1)``."""

    def __init__(self, tolerance: float):
        if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0 <= tolerance < 1:
            raise InputError(f"safeguard {type(self).__name__}: tolerance={tolerance!r} is not a share in [0, 1)")
        self.tolerance = float(tolerance)

    def review(self, trainer, module, result: HeadResult) -> HeadResult:
        return result

    def observe(self, trainer, module, result: HeadResult, row: dict) -> None:
        return None

    def at_end(self, trainer, module) -> None:
        return None

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(tolerance={self.tolerance})"


def encoder_copy(module) -> dict:
    """A detached copy of the module's encoder weights."""
    return {k: v.detach().clone() for k, v in module.encoder.state_dict().items()}
