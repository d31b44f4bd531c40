"""``OptunaSweeper``: hydra-optuna-sweeper's sweeper with a study that lives in a database, resumes,
is shared by several sweep processes, and records pruned trials as pruned.

Selected by ``conf/hparams_search/optuna.yaml`` through its Hydra plugin shell
(``hydra_plugins.gnngmm_plugins.optuna_sweeper``); it takes the plugin's
config unchanged (``storage``, ``study_name``, ``n_trials``, ``n_jobs``, ``sampler``, ``params``).

* **Storage.** ``storage`` is an SQLAlchemy URL (``sqlite:///...``, ``mysql+pymysql://...``,
  ``postgresql://...``) or ``null`` (in memory: no resume, no pruning across processes). The study is
  created, or loaded when it exists (``study_name`` in that storage).
* **Budget.** ``n_trials`` is the study's, not the process's: a sweep asks for trials until the study
  holds ``n_trials`` complete or pruned ones. A sweep started again on the same study (resume) runs
  only what is missing; several sweeps started on one study (several SLURM jobs, say) share the
  budget, each running at most ``n_trials`` trials itself (all together may overshoot by up to
  ``n_jobs`` trials per extra process, those asked while the others were running). Failed trials do
  not count: a sweep started again runs trials in their place. A trial left running by a sweep that
  was killed stays ``RUNNING`` in the storage and does not count either.
* **Trial identity.** Each job gets ``++optuna_trial=<number>``: the job's
  :class:`~gnngmm.callbacks.optuna_pruning.OptunaPruning` callback reports its refits' label-free
  score to the study under that number and stops the trial when the study's pruner says so, marking
  it with the user attribute ``pruned_epoch``. Such a trial is told ``PRUNED`` (its value: the last
  reported one); a job that returned no value (a failed job: its ``failure.json``) is told ``FAIL``.
* **Result.** ``optimization_results.yaml`` in the sweep dir: the best complete trial of the whole
  study and how many trials it holds in each state.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import optuna
from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl, create_params_from_overrides
from omegaconf import OmegaConf
from optuna.trial import TrialState

log = logging.getLogger(__name__)

TRIAL_OVERRIDE = "optuna_trial"
PRUNED_ATTR = "pruned_epoch"
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)


def study_counts(study: optuna.Study) -> dict[str, int]:
    """How many trials the study holds in each state (lower-case state names)."""
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name.lower()] = counts.get(trial.state.name.lower(), 0) + 1
    return counts


class OptunaSweeper(OptunaSweeperImpl):
    """hydra-optuna-sweeper's ``OptunaSweeper`` (same arguments) with a shared, resumable study and
    pruned trials; see the module docstring. Grid sampling is not supported (use Hydra's basic
    sweeper for grids)."""

    def sweep(self, arguments: list[str]) -> None:
        assert self.config is not None and self.launcher is not None
        if not isinstance(self.sampler, optuna.samplers.BaseSampler):
            raise TypeError("gnngmm's OptunaSweeper does not take a GridSampler: use the basic sweeper for grids")
        self._process_searchspace_config()
        distributions, fixed = create_params_from_overrides(self._parse_sweeper_params_config() + list(arguments))
        if self.search_space_distributions:
            distributions = {**self.search_space_distributions, **distributions}
        for name in fixed:
            distributions.pop(name, None)
        directions = self._get_directions()
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)  # an SQLite file may live there
        study = self._open_study(directions)
        counts = study_counts(study)
        log.info(
            "Study %s in %s: %s; this sweep runs until it holds %d complete or pruned trials",
            study.study_name,
            self.storage or "memory",
            ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "no trials yet",
            self.n_trials,
        )
        asked = 0
        while True:
            done = sum(1 for t in study.get_trials(deepcopy=False, states=COUNTED))
            batch = min(self.n_jobs, self.n_trials - done, self.n_trials - asked)
            if batch <= 0:
                break
            trials = [study.ask() for _ in range(batch)]
            overrides = self._configure_trials(trials, distributions, fixed)
            overrides = [(*o, f"++{TRIAL_OVERRIDE}={t.number}") for o, t in zip(overrides, trials)]
            returns = self.launcher.launch(overrides, initial_job_idx=self.job_idx)
            self.job_idx += len(returns)
            asked += batch
            study = self._reload(study)  # the jobs wrote to the storage: read their trials as they are there
            for trial, ret in zip(trials, returns):
                self._tell(study, trial.number, ret, len(directions))
        self._save_results(study, directions)

    def _open_study(self, directions: list[str], attempts: int = 5) -> optuna.Study:
        """Create the study, or load it. Sweeps started together on a new database race to create
        Optuna's tables; the loser retries."""
        from sqlalchemy.exc import SQLAlchemyError

        for attempt in range(attempts):
            try:
                return optuna.create_study(
                    study_name=self.study_name, storage=self.storage, sampler=self.sampler, directions=directions,
                    load_if_exists=True,
                )  # fmt: skip
            except SQLAlchemyError as err:
                if attempt + 1 == attempts:
                    raise
                log.warning("opening the study failed (%s); retrying", type(err).__name__)
                time.sleep(1.0 + attempt)
        raise AssertionError("unreachable")

    def _reload(self, study: optuna.Study) -> optuna.Study:
        """The study read again from its storage. A study object caches the trials it asked for and
        never reads them back, so it would miss what their jobs reported (intermediate values, the
        pruning mark)."""
        if self.storage is None:
            return study
        return optuna.load_study(study_name=study.study_name, storage=self.storage, sampler=self.sampler)

    @staticmethod
    def _tell(study: optuna.Study, number: int, ret: Any, n_directions: int) -> None:
        """COMPLETE with the job's value, PRUNED when its callback stopped it (its value: the last
        reported one), FAIL without a value."""
        try:
            value = ret.return_value  # raises the job's exception when the launcher recorded one
        except Exception as err:  # noqa: BLE001 - recorded as a failed trial; the job's failure.json has it
            log.warning("trial %d failed: %s", number, err)
            value = None
        trial = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
        if PRUNED_ATTR in trial.user_attrs:
            study.tell(number, state=TrialState.PRUNED)
            return
        if value is None:
            log.warning("trial %d returned no value: recorded as failed", number)
            study.tell(number, state=TrialState.FAIL)
            return
        values = [float(v) for v in value] if n_directions > 1 else [float(value)]
        study.tell(number, values=values)

    def _save_results(self, study: optuna.Study, directions: list[str]) -> None:
        results: dict[str, Any] = {"name": "optuna", "study_name": study.study_name, "trials": study_counts(study)}
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if complete and len(directions) < 2:
            best = study.best_trial
            results.update(best_params=best.params, best_value=best.value, best_trial=best.number)
            log.info("Best trial %d: value %s, parameters %s", best.number, best.value, best.params)
        elif complete:
            results["solutions"] = [{"params": t.params, "values": t.values} for t in study.best_trials]
        OmegaConf.save(OmegaConf.create(results), Path(str(self.config.hydra.sweep.dir)) / "optimization_results.yaml")
