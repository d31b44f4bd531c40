"""``EMRefit``: when to refit the GMM head during training, and what to log about it.

The refit itself is :func:`gnngmm.head.refit`. While the GMM term is off the mixture is refit
every ``every_n_epochs`` epochs and at the last one; once the term is on, after every epoch (with
``reseed_at_loss_start`` the refit just before it starts is fresh: the basin is chosen by k-means
inertia). Each refit appends one row to ``module.history``.

Safeguard (``keep_best``): every refit also scores its partition by modularity on the input graph
(label-free, and comparable across epochs because the graph never changes). The callback keeps
the encoder and head of the best-scoring refit; when training ends more than ``keep_best``
(relative) below that best, the run goes on from the best refit's state instead of the last one,
with a logged line. A run that only wobbles (Cora: 0.9% under its best at the end) is untouched.
It stands aside when even the best refit's modularity is under ``MEANINGFUL_MODULARITY``: such
partitions barely follow the graph (BOND Reddit's bipartite graph: all under 0.08), and a relative fall
between two numbers near zero is noise.

Second safeguard (``keep_best_silhouette``), for declines that modularity does not see: each refit
before the GMM term starts also scores its partition's silhouette in the embedding (a fixed
sample of nodes). When the refit that opens the GMM phase is more than ``keep_best_silhouette``
(relative) below the best of them, the phase starts from the best one's encoder instead (the
mixture refit fresh on it), with a logged line; the modularity safeguard then compares only the
refits made from there on.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable

from lightning.pytorch.callbacks import Callback

from gnngmm.head import HeadResult, refit, restore_responsibilities
from gnngmm.quality import modularity, silhouette

log = logging.getLogger("gnngmm")

# Under this best modularity the modularity safeguard stands aside (Cora's refits score ~0.7)
MEANINGFUL_MODULARITY = 0.1


class EMRefit(Callback):
    """Refit the GMM by EM at epoch ends and log ``gmm/log_likelihood``, ``gmm/bic``, K and cluster
    sizes. ``evaluate`` (optional) maps a :class:`HeadResult` to extra numbers to log, e.g. NMI
    against labels for reporting; nothing here reads them back."""

    def __init__(
        self, every_n_epochs: int = 1, max_iter: int = 20, k_range=None, loss_start_epoch: int | None = None,
        reseed_at_loss_start: bool = False, k_criterion: str = "bic",
        evaluate: Callable[[HeadResult], dict] | None = None, keep_best: float | None = None,
        keep_best_silhouette: float | None = None,
    ):
        self.every_n_epochs = max(1, int(every_n_epochs))
        self.max_iter = max_iter
        self.k_range = k_range
        self.k_criterion = k_criterion
        self.loss_start_epoch = loss_start_epoch
        self.reseed_at_loss_start = reseed_at_loss_start
        self.evaluate = evaluate
        self.keep_best = keep_best  # relative modularity drop that restores the best refit (None: off)
        self._epoch_start = None
        self._best: dict | None = None  # modularity, epoch, encoder and head state of the best refit
        self._last: tuple[int, float] | None = None  # (epoch, modularity) of the last refit
        # relative silhouette drop at the GMM phase's start that goes back to the best pretraining refit
        self.keep_best_silhouette = keep_best_silhouette if loss_start_epoch is not None else None
        self._best_silhouette: dict | None = None  # silhouette, epoch and encoder of the best pretraining refit, until judged

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
        result = self._refit(trainer, pl_module, fresh=reseed)
        extra = {}
        if self.keep_best_silhouette is not None and epoch + 1 <= self.loss_start_epoch:
            extra["gmm/silhouette"] = sil = silhouette(result.z, result.pred)
            if epoch + 1 < self.loss_start_epoch:
                if self._best_silhouette is None or sil > self._best_silhouette["silhouette"]:
                    self._best_silhouette = {"silhouette": sil, "epoch": epoch, "encoder": _encoder_copy(pl_module)}
            else:
                if self._silhouette_fell(sil, epoch):
                    pl_module.encoder.load_state_dict(self._best_silhouette["encoder"])
                    result = self._refit(trainer, pl_module, fresh=True)
                    extra["gmm/silhouette"] = silhouette(result.z, result.pred)
                    pl_module.restored_epoch = self._best_silhouette["epoch"]
                    self._best = None  # the modularity safeguard judges the run from here on, not the discarded refits
                self._best_silhouette = None  # judged: no encoder copy kept in memory and checkpoints from here on
        sizes = result.cluster_sizes
        metrics = {
            "time/epoch_seconds": epoch_seconds,
            "time/em_refit_seconds": time.perf_counter() - start,
            "gmm/log_likelihood": result.log_likelihood,
            "gmm/bic": result.bic,
            "gmm/k": float(result.k),
            "gmm/min_cluster_size": float(min(sizes)),
            "gmm/max_cluster_size": float(max(sizes)),
            # label-free and comparable across epochs: the same graph at every refit
            "gmm/modularity": modularity(trainer.datamodule.data.edge_index, result.pred, result.pred.numel()),
            **extra,
        }
        if self.evaluate is not None:
            metrics.update(self.evaluate(result))
        pl_module.log_dict(metrics, on_step=False, on_epoch=True, batch_size=1, rank_zero_only=True)
        pl_module.history.append({"epoch": epoch, "cluster_sizes": sizes, **metrics})
        score = metrics["gmm/modularity"]
        self._last = (epoch, score)
        if self.keep_best is not None and (self._best is None or score > self._best["modularity"]):
            self._best = {"modularity": score, "epoch": epoch, **_snapshot(pl_module)}

    def _refit(self, trainer, pl_module, fresh: bool) -> HeadResult:
        """Warm from the last responsibilities, or fresh (the basin by k-means inertia)."""
        return refit(pl_module, trainer.datamodule.data, max_iter=self.max_iter, k_range=self.k_range,
                     k_criterion=self.k_criterion, warm=not fresh, fresh_inits=1 if fresh else 0)

    def _silhouette_fell(self, score: float, epoch: int) -> bool:
        best = self._best_silhouette
        if best is None or score >= best["silhouette"] - self.keep_best_silhouette * abs(best["silhouette"]):
            return False
        log.warning(
            "safeguard: the partition's silhouette fell from %.4f (epoch %d) to %.4f (epoch %d) before the GMM "
            "phase, more than %.0f%%: the phase starts from epoch %d's encoder (gmm.keep_best_silhouette=null "
            "turns this off)", best["silhouette"], best["epoch"], score, epoch, 100 * self.keep_best_silhouette,
            best["epoch"],
        )
        return True

    def on_train_end(self, trainer, pl_module) -> None:
        """At the end of a finished run: restore the best refit when the last one fell too far."""
        if self.keep_best is None or self._best is None or self._last is None:
            return
        epoch, score = self._last
        best = self._best
        if epoch + 1 < (trainer.max_epochs or 0) or best["modularity"] < MEANINGFUL_MODULARITY:
            return
        if score >= best["modularity"] * (1 - self.keep_best):
            return
        log.warning(
            "safeguard: the partition's modularity fell from %.4f (epoch %d) to %.4f (epoch %d), more than %.0f%%: "
            "continuing from epoch %d's encoder and mixture (gmm.keep_best=null turns this off)",
            best["modularity"], best["epoch"], score, epoch, 100 * self.keep_best, best["epoch"],
        )
        pl_module.encoder.load_state_dict(best["encoder"])
        _restore_head(pl_module, best["head"])
        restore_responsibilities(pl_module, trainer.datamodule.data)
        pl_module.restored_epoch = best["epoch"]

    def state_dict(self) -> dict:
        return {"best": self._best, "last": self._last, "best_silhouette": self._best_silhouette}

    def load_state_dict(self, state: dict) -> None:
        self._best, self._last = state.get("best"), state.get("last")
        self._best_silhouette = state.get("best_silhouette")


def _encoder_copy(module) -> dict:
    """A copy of the encoder's weights."""
    return {k: v.detach().clone() for k, v in module.encoder.state_dict().items()}


def _snapshot(module) -> dict:
    """Copies of what a refit's state is made of: the encoder's weights, the mixture and the
    transform (the responsibilities follow from them: an (N, K) copy is left out)."""
    head = module.head_state()
    return {"encoder": _encoder_copy(module), "head": copy.deepcopy({k: head[k] for k in ("gmm", "transform")})}


def _restore_head(module, head: dict) -> None:
    if head["gmm"] is not None:
        module.gmm.load_state_dict(head["gmm"])
    if head["transform"] is not None:
        module.transform.load_state_dict(head["transform"])
