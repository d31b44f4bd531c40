"""``HistoryCSV``: rewrite ``history.csv`` (one row per EM refit) after every epoch, on rank 0."""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.callbacks import Callback


class HistoryCSV(Callback):
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._rows = 0

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero and len(pl_module.history) != self._rows:
            from gnngmm.reporting import write_history

            write_history(self.path, pl_module.history)
            self._rows = len(pl_module.history)
