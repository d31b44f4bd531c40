"""Optuna studies in a database (SQLite here; MariaDB in tests/cluster): the study's budget, resume,
pruned and failed trials (gnngmm.sweeper), and the job's pruning callback (OptunaPruning)."""

from __future__ import annotations

from types import SimpleNamespace

import optuna
import pytest
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from gnngmm.callbacks.optuna_pruning import OptunaPruning
from gnngmm.sweeper import OptunaSweeper

optuna.logging.set_verbosity(optuna.logging.WARNING)


class FakeLauncher:
    """Runs a trial as a job would: its value is ``x``; ``prune`` trials report and get pruned as the
    job's callback does; ``fail`` trials return nothing (a failed job)."""

    def __init__(self, storage: str, study_name: str, prune=(), fail=()):
        self.storage, self.study_name, self.prune, self.fail = storage, study_name, set(prune), set(fail)
        self.launched: list[int] = []

    def launch(self, job_overrides, initial_job_idx):
        returns = []
        for overrides in job_overrides:
            args = dict(o.lstrip("+").split("=", 1) for o in overrides)
            number = int(args["optuna_trial"])
            self.launched.append(number)
            if number in self.prune:
                study = optuna.load_study(study_name=self.study_name, storage=self.storage)
                trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
                study._storage.set_trial_intermediate_value(trial_id, 9, 0.25)
                study._storage.set_trial_user_attr(trial_id, "pruned_epoch", 9)
            value = None if number in self.fail else float(args["x"])
            returns.append(JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED, _return_value=value))
        return returns


def sweep(tmp_path, n_trials: int, n_jobs: int = 1, **fake) -> tuple[FakeLauncher, optuna.Study]:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    sweeper = OptunaSweeper(
        sampler=optuna.samplers.RandomSampler(seed=0), direction="maximize", storage=storage, study_name="s",
        n_trials=n_trials, n_jobs=n_jobs, max_failure_rate=0.0, search_space=None, custom_search_space=None,
        params=OmegaConf.create({"x": "interval(0.0, 1.0)"}),
    )  # fmt: skip
    sweeper.config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "sweep")}}})
    sweeper.launcher = FakeLauncher(storage, "s", **fake)
    sweeper.sweep([])
    return sweeper.launcher, optuna.load_study(study_name="s", storage=storage)


def states(study) -> list[str]:
    return [t.state.name for t in study.trials]


def test_a_study_runs_its_budget_records_pruned_and_failed_trials_and_resumes(tmp_path):
    launcher, study = sweep(tmp_path, n_trials=3, prune={1}, fail={2})
    assert launcher.launched == [0, 1, 2] and states(study) == ["COMPLETE", "PRUNED", "FAIL"]
    assert study.trials[1].value == 0.25, "a pruned trial keeps the last value it reported"
    results = OmegaConf.load(tmp_path / "sweep" / "optimization_results.yaml")
    assert results.trials == {"complete": 1, "pruned": 1, "fail": 1}
    assert results.best_trial == 0 and results.best_value == study.trials[0].value
    # started again: the failed trial does not count against n_trials, so one more runs in its place
    launcher, study = sweep(tmp_path, n_trials=3)
    assert launcher.launched == [3] and states(study)[3] == "COMPLETE"
    # and with a larger budget only the missing trials run, in the same study
    launcher, study = sweep(tmp_path, n_trials=5)
    assert launcher.launched == [4, 5] and len(study.trials) == 6
    launcher, _ = sweep(tmp_path, n_trials=5)
    assert launcher.launched == [], "the budget is met: nothing to run"


def test_a_process_runs_at_most_n_trials_itself_even_when_every_trial_fails(tmp_path):
    launcher, study = sweep(tmp_path, n_trials=2, n_jobs=2, fail={0, 1, 2, 3})
    assert launcher.launched == [0, 1] and states(study) == ["FAIL", "FAIL"]


def fake_trainer(history):
    trainer = SimpleNamespace(is_global_zero=True, world_size=1, should_stop=False, current_epoch=9, max_epochs=20)
    return trainer, SimpleNamespace(head=SimpleNamespace(history=history))


def test_the_pruning_callback_reports_refits_and_stops_a_trial_behind_the_median(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    for value in (0.6, 0.7, 0.8):
        trial = study.ask()
        trial.report(value, step=9)
        study.tell(trial, value)
    behind, ahead = study.ask(), study.ask()
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3)
    for trial, score, pruned in ((ahead, 0.75, False), (behind, 0.5, True)):
        callback = OptunaPruning(storage, "s", trial.number, pruner=pruner)
        trainer, module = fake_trainer([{"epoch": 0}, {"epoch": 9, "gmm/modularity": score, "nmi": 0.0}])
        callback.setup(trainer, module, "fit")
        callback.on_train_epoch_end(trainer, module)
        assert trainer.should_stop is pruned
        stored = optuna.load_study(study_name="s", storage=storage).trials[trial.number]
        assert stored.intermediate_values == {9: score}
        assert ("pruned_epoch" in stored.user_attrs) is pruned
    # within the warm-up share of the epochs a trial reports but is not pruned
    late = study.ask()
    callback = OptunaPruning(storage, "s", late.number, pruner=pruner, warmup=0.9)
    trainer, module = fake_trainer([{"epoch": 9, "gmm/modularity": 0.1}])
    callback.setup(trainer, module, "fit")
    callback.on_train_epoch_end(trainer, module)
    assert not trainer.should_stop and callback._reported == 9
    # a requeued job starts again: steps already reported are not reported twice
    callback = OptunaPruning(storage, "s", ahead.number, pruner=pruner)
    trainer, module = fake_trainer([{"epoch": 9, "gmm/modularity": 0.75}])
    callback.setup(trainer, module, "fit")
    assert callback._reported == 9


def test_outside_a_sweep_the_pruning_callback_does_nothing():
    callback = OptunaPruning(storage=None, study_name=None, trial=None)
    trainer, module = fake_trainer([{"epoch": 0, "gmm/modularity": 0.1}])
    callback.setup(trainer, module, "fit")
    callback.on_train_epoch_end(trainer, module)
    assert not trainer.should_stop


@pytest.mark.slow  # subprocesses: two sweeps on one SQLite study
def test_the_optuna_preset_keeps_its_study_in_the_sweep_dir_and_resumes_it(tmp_path, mirror):
    from conftest import ROOT, SMALL, run_cli

    sweep = tmp_path / "sweep"
    args = ["train.py", "-m", "hparams_search=optuna", f"hydra.sweep.dir={sweep}", f"paths.data_dir={tmp_path}/data",
            f"paths.mirror_dir={mirror}", *SMALL, "num_threads=1", "trainer.max_epochs=4"]  # fmt: skip
    for n_trials in (2, 3):
        result = run_cli([*args, f"hydra.sweeper.n_trials={n_trials}"], cwd=ROOT)
        assert result.returncode == 0, result.stderr[-3000:]
    study = optuna.load_study(study_name="gnngmm-cora", storage=f"sqlite:///{sweep / 'optuna.db'}")
    assert states(study) == ["COMPLETE"] * 3 and sorted(p.parent.name for p in sweep.glob("*/metrics.json")) == [
        "0", "1", "2"]  # fmt: skip
    for trial in study.trials:  # each trial reported its refits' modularity, one value per refit epoch
        assert trial.intermediate_values and set(trial.intermediate_values) <= set(range(4))
