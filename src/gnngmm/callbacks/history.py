"""``HistoryCSV``: rewrite ``history.csv`` (one row per EM refit) after every epoch, on rank 0.

Wall-clock columns (``time/...``) stay in the head's history and the loggers, not in the file: the
file is a function of the data, the config and the seed, so a resumed run rewrites it byte for byte.
"""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.callbacks import Callback


class HistoryCSV(Callback):
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._rows = 0

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero and len(pl_module.head.history) != self._rows:
            from gnngmm.reporting import write_history

            write_history(
                self.path,
                [{k: v for k, v in row.items() if not k.startswith("time/")} for row in pl_module.head.history],
            )
            self._rows = len(pl_module.head.history)
