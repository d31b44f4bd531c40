"""``OptunaPruning``: a trial of an Optuna sweep reports its EM refits' label-free score and stops
when the study's pruner says it falls behind.

At every epoch end it reports the new rows of the head's refit history (``monitor``, by default
``gmm/modularity``: the partition's modularity on the input graph, comparable across epochs and
trials because the graph never changes) as the trial's intermediate values, step = epoch, to the
study in ``storage``; then, from ``warmup`` of the epochs on (a fraction of ``max_epochs``: the
first refits say more about how fast a setting learns than about where it ends), asks the pruner
(``optuna.pruners.MedianPruner`` unless another is given). A pruned trial stops training at that
epoch (``trainer.should_stop``), is marked with the
trial's user attribute ``pruned_epoch`` (the sweeper, :class:`gnngmm.sweeper.OptunaSweeper`, then
records it as pruned) and finishes like any run: final refit, outputs, ``metrics.json``. Labels are
never read. Outside a sweep (``trial`` or ``storage`` null) it does nothing.
"""

from __future__ import annotations

import logging

from lightning.pytorch.callbacks import Callback

log = logging.getLogger("gnngmm")

PRUNED_ATTR = "pruned_epoch"


class OptunaPruning(Callback):
    """Args:
    storage: the study's SQLAlchemy URL (``hydra.sweeper.storage``); null: off.
    study_name: the study's name in that storage.
    trial: the trial's number (``optuna_trial``, set per job by the sweeper); null: off.
    pruner: an ``optuna.pruners.BasePruner``; None: ``MedianPruner()``.
    monitor: the key of the refit history rows to report (an unsupervised score, maximised or
        minimised as the study's direction says).
    warmup: the share of ``max_epochs`` before which no trial is pruned (its refits are reported).
    """

    def __init__(
        self,
        storage: str | None,
        study_name: str | None,
        trial: int | None,
        pruner=None,
        monitor: str = "gmm/modularity",
        warmup: float = 0.0,
    ):
        self.storage = storage
        self.study_name = study_name
        self.trial_number = trial
        self.pruner = pruner
        self.monitor = monitor
        self.warmup = float(warmup)
        self._trial = None
        self._reported = -1

    @property
    def active(self) -> bool:
        return self.storage is not None and self.trial_number is not None

    def setup(self, trainer, pl_module, stage: str) -> None:
        if not self.active or self._trial is not None or not trainer.is_global_zero:
            return
        import optuna

        study = optuna.load_study(
            study_name=self.study_name, storage=self.storage, pruner=self.pruner or optuna.pruners.MedianPruner()
        )
        trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, int(self.trial_number))
        self._trial = optuna.trial.Trial(study, trial_id)
        reported = study._storage.get_trial(trial_id).intermediate_values
        self._reported = max(reported, default=-1)  # a requeued job does not report its steps twice

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not self.active:
            return
        prune = False
        if trainer.is_global_zero:
            rows = [r for r in pl_module.head.history if r["epoch"] > self._reported and self.monitor in r]
            for row in rows:
                self._trial.report(float(row[self.monitor]), step=int(row["epoch"]))
                self._reported = int(row["epoch"])
            warm = trainer.current_epoch + 1 >= self.warmup * (trainer.max_epochs or 0)
            if rows and warm and self._trial.should_prune():
                epoch = int(rows[-1]["epoch"])
                self._trial.set_user_attr(PRUNED_ATTR, epoch)
                log.info(
                    "optuna: trial %s pruned at epoch %d (%s %.4f falls behind the study's other trials)",
                    self.trial_number,
                    epoch,
                    self.monitor,
                    rows[-1][self.monitor],
                )
                prune = True
        if trainer.world_size > 1:
            prune = trainer.strategy.broadcast(prune, src=0)
        if prune:
            trainer.should_stop = True
