"""``LastCheckpoint``: ``last.ckpt`` written atomically at every epoch end, so any interruption
(Ctrl-C, ``kill``, a SLURM time limit, a preemption) loses at most the epoch in progress.

Lightning's ``ModelCheckpoint(save_top_k=0, save_last=True)`` writes ``last.ckpt`` only when
training ends, and a reused directory gets ``last-v1.ckpt`` beside the old file. Here the file is
written to a temporary name and renamed (``os.replace``): a kill during the write leaves the
previous epoch's checkpoint intact, and there is only ever one ``last.ckpt``. The checkpoint is
taken after the epoch's EM refit (checkpoint callbacks run last), with the RNG states, so resuming
from it continues the run exactly.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from lightning.pytorch.callbacks import Checkpoint

log = logging.getLogger("gnngmm")


class LastCheckpoint(Checkpoint):
    def __init__(self, dirpath: str | Path, every_n_epochs: int = 1, filename: str = "last.ckpt"):
        self.dirpath = Path(dirpath)
        self.every_n_epochs = max(1, int(every_n_epochs))
        self.filename = filename

    @property
    def path(self) -> Path:
        return self.dirpath / self.filename

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or getattr(trainer, "fast_dev_run", False):
            return
        epoch = trainer.current_epoch
        last = epoch + 1 >= (trainer.max_epochs or 0)
        if (epoch + 1) % self.every_n_epochs and not last:
            return
        tmp = self.dirpath / f".{self.filename}.tmp"
        if trainer.is_global_zero:
            self.dirpath.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(tmp, weights_only=False)  # every rank takes part; rank 0 writes
        if trainer.is_global_zero:
            os.replace(tmp, self.path)
        trainer.strategy.barrier("LastCheckpoint")

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if trainer.is_global_zero and self.path.exists():
            log.warning(
                "training stopped (%s); the last completed epoch is saved in %s: resume with ckpt_path=%s",
                type(exception).__name__,
                self.path,
                self.path,
            )
