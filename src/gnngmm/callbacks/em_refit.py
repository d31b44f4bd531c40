"""``EMRefit``: when to refit the GMM head during training, and what to log about it.

The refit itself is :func:`gnngmm.head.refit`. While the GMM term is off the mixture is refit
every ``every_n_epochs`` epochs and at the last one; once the term is on, after every epoch (with
``reseed_at_loss_start`` the refit just before it starts is fresh: the basin is chosen by k-means
inertia). Each refit appends one row to ``module.history``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from lightning.pytorch.callbacks import Callback

from gnngmm.head import HeadResult, refit


class EMRefit(Callback):
    """Refit the GMM by EM at epoch ends and log ``gmm/log_likelihood``, ``gmm/bic``, K and cluster
    sizes. ``evaluate`` (optional) maps a :class:`HeadResult` to extra numbers to log, e.g. NMI
    against labels for reporting; nothing here reads them back."""

    def __init__(
        self, every_n_epochs: int = 1, max_iter: int = 20, k_range=None, loss_start_epoch: int | None = None,
        reseed_at_loss_start: bool = False, k_criterion: str = "bic",
        evaluate: Callable[[HeadResult], dict] | None = None,
    ):
        self.every_n_epochs = max(1, int(every_n_epochs))
        self.max_iter = max_iter
        self.k_range = k_range
        self.k_criterion = k_criterion
        self.loss_start_epoch = loss_start_epoch
        self.reseed_at_loss_start = reseed_at_loss_start
        self.evaluate = evaluate
        self._epoch_start = None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._epoch_start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        epoch = trainer.current_epoch
        epoch_seconds = time.perf_counter() - (self._epoch_start or time.perf_counter())
        last = epoch + 1 >= (trainer.max_epochs or 0)
        term_on = self.loss_start_epoch is not None and epoch + 1 >= self.loss_start_epoch
        if (epoch + 1) % self.every_n_epochs and not last and not term_on:
            return
        reseed = self.reseed_at_loss_start and self.loss_start_epoch is not None and epoch + 1 == self.loss_start_epoch
        start = time.perf_counter()
        result = refit(
            pl_module, trainer.datamodule.data, max_iter=self.max_iter, k_range=self.k_range,
            k_criterion=self.k_criterion, warm=not reseed, fresh_inits=1 if reseed else 0,
        )
        sizes = result.cluster_sizes
        metrics = {
            "time/epoch_seconds": epoch_seconds,
            "time/em_refit_seconds": time.perf_counter() - start,
            "gmm/log_likelihood": result.log_likelihood,
            "gmm/bic": result.bic,
            "gmm/k": float(result.k),
            "gmm/min_cluster_size": float(min(sizes)),
            "gmm/max_cluster_size": float(max(sizes)),
        }
        if self.evaluate is not None:
            metrics.update(self.evaluate(result))
        pl_module.log_dict(metrics, on_step=False, on_epoch=True, batch_size=1, rank_zero_only=True)
        pl_module.history.append({"epoch": epoch, "cluster_sizes": sizes, **metrics})
