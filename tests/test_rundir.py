"""A run dir is complete (metrics.json, written last and atomically) or resumable, never in between:
a stop during the final stage is finished by ``auto_resume`` from ``last.ckpt``, and a requeued job
that finds its run complete changes nothing."""

from __future__ import annotations

import json
import os
import signal

import lightning
import pytest
from conftest import ROOT, SMALL, run_cli

import gnngmm.outputs
import gnngmm.train
from gnngmm.callbacks import EMRefit
from gnngmm.estimator import GNNGMM
from gnngmm.train import _hydra_main, train

SUBMITIT_EXIT = -1  # submitit's time-limit handler ends the job with sys.exit(-1) once it has requeued it


def snapshot(run_dir):
    """Every output of a run dir: its bytes and modification time. Hydra's own records of each
    start (``.hydra/``, the job's ``.log``) are left out: Hydra rewrites them before any job code runs."""
    return {
        p.relative_to(run_dir).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and ".hydra" not in p.relative_to(run_dir).parts and p.suffix != ".log"
    }


def test_metrics_json_is_written_last(make_cfg, tmp_path, monkeypatch):
    order = []
    save = GNNGMM.save
    monkeypatch.setattr(GNNGMM, "save", lambda self, path: (order.append("model.ckpt"), save(self, path))[1])
    write = gnngmm.outputs.write_text_atomic
    monkeypatch.setattr(
        gnngmm.outputs, "write_text_atomic", lambda path, text: (order.append(path.name), write(path, text))
    )
    train(make_cfg())
    assert order == ["model.ckpt", "metrics.json"]
    assert not list((tmp_path / "out").glob(".*.tmp")), "no temporary file left behind"


def test_a_stop_during_the_final_stage_is_finished_by_auto_resume_redoing_only_that_stage(
    make_cfg, tmp_path, monkeypatch
):
    full = train(make_cfg("trainer.max_epochs=3", f"paths.output_dir={tmp_path / 'full'}"))
    save = GNNGMM.save

    def stopped(self, path):  # a time-limit signal while the final stage writes: submitit exits the job
        raise SystemExit(SUBMITIT_EXIT)

    monkeypatch.setattr(GNNGMM, "save", stopped)
    with pytest.raises(SystemExit):
        train(make_cfg("trainer.max_epochs=3", "auto_resume=true"))
    out = tmp_path / "out"
    assert (out / "predictions.csv").exists() and not (out / "metrics.json").exists(), "in between: resumable"
    monkeypatch.setattr(GNNGMM, "save", save)
    epochs_trained = []
    refit_epoch_end = EMRefit.on_train_epoch_end
    monkeypatch.setattr(EMRefit, "on_train_epoch_end", lambda *a: (epochs_trained.append(1), refit_epoch_end(*a)))
    resumed = train(make_cfg("trainer.max_epochs=3", "auto_resume=true"))
    assert not epochs_trained, "only the final stage ran again"
    for name in ("predictions.csv", "history.csv"):
        assert (out / name).read_bytes() == (tmp_path / "full" / name).read_bytes(), name
    for key in ("nmi", "ari", "cluster_sizes", "modularity", "epochs", "k"):
        assert resumed[key] == full[key], key
    assert json.loads((out / "metrics.json").read_text())["cluster_sizes"] == full["cluster_sizes"]


@pytest.mark.parametrize("moment", ["signal right after metrics.json", "preempted after finishing"])
def test_a_requeued_job_whose_run_is_complete_exits_0_and_changes_nothing(make_cfg, tmp_path, monkeypatch, moment):
    """The race: a time-limit signal (USR2) right after metrics.json stops the job there, before its
    last lines; a preemption (SIGTERM, which submitit only logs) lets it finish. Either way SLURM
    starts the job again with the same arguments."""
    cfg = make_cfg("auto_resume=true", "optimized_metric=modularity")
    if moment.startswith("signal"):
        write = gnngmm.outputs.write_text_atomic

        def write_then_stop(path, text):
            write(path, text)
            raise SystemExit(SUBMITIT_EXIT)

        monkeypatch.setattr(gnngmm.outputs, "write_text_atomic", write_then_stop)
        with pytest.raises(SystemExit):
            _hydra_main(cfg)
        monkeypatch.undo()
    else:
        _hydra_main(cfg)
    out = tmp_path / "out"
    before = snapshot(out)
    monkeypatch.setattr(lightning.Trainer, "fit", lambda *a, **k: pytest.fail("trained a complete run again"))
    value = _hydra_main(make_cfg("auto_resume=true", "optimized_metric=modularity"))
    assert value == json.loads((out / "metrics.json").read_text())["modularity"]
    assert snapshot(out) == before and not (out / "failure.json").exists()


def test_auto_resume_starts_again_an_unfinished_run_without_a_checkpoint(make_cfg, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "history.csv").write_text("stale\n")  # stopped after an epoch's history row, before last.ckpt
    assert train(make_cfg("auto_resume=true"))["epochs"] == 2
    assert (out / "history.csv").read_text() != "stale\n"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, mirror):
    """The arguments of a small job and the run dir of its uninterrupted run."""
    root = tmp_path_factory.mktemp("uninterrupted")
    common = [f"paths.data_dir={root}/data", f"paths.mirror_dir={mirror}", *SMALL, "num_threads=1"]
    full = run_cli(["train.py", *common, f"hydra.run.dir={root}/full"], cwd=ROOT)
    assert full.returncode == 0, full.stderr[-2000:]
    return common, root / "full"


@pytest.mark.slow  # subprocesses, each stopped by a real signal
@pytest.mark.parametrize("name", ["USR2", "TERM"])
@pytest.mark.parametrize("moment", ["final_stage", "after_metrics"])
def test_a_real_signal_at_the_final_stage_then_auto_resume(tmp_path, uninterrupted, moment, name):
    """USR2 as a time limit under submitit (its handler exits), TERM as plain ``kill`` (the process
    dies at once); then the job runs again as SLURM would requeue it, with ``auto_resume=true``."""
    common, full = uninterrupted
    cut = tmp_path / "cut"
    job = [*common, f"hydra.run.dir={cut}", "auto_resume=true"]
    stopped = run_cli(["tests/hooks/signal_at.py", moment, name, "train.py", *job], cwd=ROOT)
    assert stopped.returncode == (SUBMITIT_EXIT % 256 if name == "USR2" else -signal.SIGTERM), stopped.stderr[-2000:]
    assert (cut / "metrics.json").exists() == (moment == "after_metrics")
    before = snapshot(cut)
    again = run_cli(["train.py", *job], cwd=ROOT)
    assert again.returncode == 0, again.stderr[-2000:]
    assert not (cut / "failure.json").exists()
    if moment == "after_metrics":
        assert snapshot(cut) == before, "a complete run dir is left as it is"
        assert "nothing to do" in (cut / "train.log").read_text()
    for output in ("predictions.csv", "history.csv"):
        assert (cut / output).read_bytes() == (full / output).read_bytes(), output
    assert os.listdir(cut / "checkpoints") == ["last.ckpt"]
