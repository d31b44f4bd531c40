"""``EMRefit``: when the GMM head is refit during training.

While the GMM term is off the head is refit every ``every_n_epochs`` epochs and at the last one;
once the term is on, after every epoch. With ``reseed_at_loss_start`` the refit just before the
term starts is fresh (the basin chosen by k-means inertia). Each refit passes through the run's
safeguards (:mod:`gnngmm.safeguards`), then its label-free numbers (and, through ``evaluate``,
any reported ones) are logged and recorded in the head's history; after the last epoch's refit
the safeguards make their final decision.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from lightning.pytorch.callbacks import Callback

from gnngmm.head import HeadResult, refit_metrics


class EMRefit(Callback):
    """Args:
    every_n_epochs (int): refit period while the GMM term is off. (default: ``1``)
    reseed_at_loss_start (bool): the refit just before the term starts is fresh. (default: ``False``)
    safeguards (Sequence[Safeguard]): checks applied to every refit, in order. (default: none)
    evaluate (Callable[[HeadResult], dict], optional): extra numbers to log per refit, e.g. NMI
        against labels for reporting; nothing here reads them back.
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        reseed_at_loss_start: bool = False,
        safeguards: Sequence = (),
        evaluate: Callable[[HeadResult], dict] | None = None,
    ):
        self.every_n_epochs = max(1, int(every_n_epochs))
        self.reseed_at_loss_start = reseed_at_loss_start
        self.safeguards = list(safeguards)
        self.evaluate = evaluate
        self._epoch_start: float | None = None

    def due(self, epoch: int, max_epochs: int, loss_start: int | None) -> tuple[bool, bool]:
        """``(refit, fresh)`` at the end of ``epoch``."""
        last = epoch + 1 >= max_epochs
        term_on = loss_start is not None and epoch + 1 >= loss_start
        fresh = self.reseed_at_loss_start and loss_start is not None and epoch + 1 == loss_start
        return bool(last or term_on or (epoch + 1) % self.every_n_epochs == 0), fresh

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._epoch_start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        epoch = trainer.current_epoch
        epoch_seconds = time.perf_counter() - (self._epoch_start or time.perf_counter())
        refit, fresh = self.due(epoch, trainer.max_epochs or 0, pl_module.gmm_term.starts_at)
        if not refit:
            return
        start = time.perf_counter()
        result = pl_module.head.refit(pl_module.embed(trainer.datamodule.data), fresh=fresh)
        for guard in self.safeguards:
            result = guard.review(trainer, pl_module, result)
        metrics = {
            "time/epoch_seconds": epoch_seconds,
            "time/em_refit_seconds": time.perf_counter() - start,
            **refit_metrics(result, trainer.datamodule.data.edge_index),
            **result.metrics,
        }
        if self.evaluate is not None:
            metrics.update(self.evaluate(result))
        pl_module.log_dict(metrics, on_step=False, on_epoch=True, batch_size=1, rank_zero_only=True)
        row = {"epoch": epoch, "cluster_sizes": result.cluster_sizes, **metrics}
        pl_module.head.record(row)
        for guard in self.safeguards:
            guard.observe(trainer, pl_module, result, row)
        if epoch + 1 >= (trainer.max_epochs or 0):
            # at the last epoch's end, not on_train_end: the decision is in that epoch's last.ckpt,
            # so a run stopped in its final stage resumes (with no epoch left) from the same state
            for guard in self.safeguards:
                guard.at_end(trainer, pl_module)

    def state_dict(self) -> dict:
        return {f"{i}:{type(guard).__name__}": guard.state_dict() for i, guard in enumerate(self.safeguards)}

    def load_state_dict(self, state: dict) -> None:
        for i, guard in enumerate(self.safeguards):
            guard.load_state_dict(state.get(f"{i}:{type(guard).__name__}", {}))
