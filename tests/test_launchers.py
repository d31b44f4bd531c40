"""The SLURM launcher's additions without a scheduler (tests/cluster has the real one): no
accounting is one clear error; a job that ends without a result is named by the multirun's
failure summary; launcher=slurm picks the trainer from hydra.launcher.gpus_per_node."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobStatus

from gnngmm import launchers
from gnngmm.hydra_callbacks import FailedJobsExit


def fake_sacct(tmp_path, monkeypatch, script: str) -> None:
    (tmp_path / "bin").mkdir()
    sacct = tmp_path / "bin" / "sacct"
    sacct.write_text(f"#!/bin/sh\n{script}\n")
    sacct.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")


def test_without_accounting_the_launcher_stops_before_submitting_naming_what_is_missing(tmp_path, monkeypatch):
    fake_sacct(tmp_path, monkeypatch, "echo 'sacct: error: Slurm accounting storage is disabled' >&2; exit 1")
    with pytest.raises(launchers.AccountingError, match=r"needs SLURM accounting.*storage is disabled.*slurmdbd"):
        launchers.check_accounting()
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    with pytest.raises(launchers.AccountingError, match="sacct, which could not run"):
        launchers.check_accounting()


def test_with_accounting_the_check_passes(tmp_path, monkeypatch):
    fake_sacct(tmp_path, monkeypatch, "exit 0")
    launchers.check_accounting()


class FakeJob:
    def __init__(self, job_id: str, state: str, result=None, error: Exception | None = None, done: bool = True):
        self.job_id, self.state, self._result, self._error, self._done = job_id, state, result, error, done

    def done(self) -> bool:
        return self._done

    def results(self):
        if self._error is not None:
            raise self._error
        return [self._result]


def test_jobs_that_end_without_a_result_are_recorded_and_named_by_the_failure_summary(tmp_path, monkeypatch, capsys):
    from submitit.core.utils import UncompletedJobError

    ok = SimpleNamespace(status=JobStatus.COMPLETED, return_value=0.7)
    jobs = [
        FakeJob("7_0", "COMPLETED", result=ok),
        FakeJob(
            "7_1", "CANCELLED by 0",
            error=UncompletedJobError("Job 7_1 has not produced any output (state: CANCELLED by 0)"),
        ),
        FakeJob("7_2", "TIMEOUT", error=UncompletedJobError("Job 7_2 has not produced any output (state: TIMEOUT)")),
        FakeJob("7_3", "UNKNOWN", done=False),
    ]  # fmt: skip
    monkeypatch.setattr(launchers, "UNKNOWN_LIMIT_S", 0.0)
    monkeypatch.setattr(launchers, "POLL_S", 0.0)
    dirs = [tmp_path / "sweep" / str(i) for i in range(4)]
    callback = FailedJobsExit()
    returns = launchers.collect(jobs, dirs, [[f"seed={i}"] for i in range(4)])
    # no value, as a failed job returns in a multirun: the sweep goes on, a trial is told it failed
    assert returns[0] is ok and [(r.status, r.return_value) for r in returns[1:]] == [(JobStatus.COMPLETED, None)] * 3
    states = [json.loads((d / "failure.json").read_text())["slurm_state"] for d in dirs[1:]]
    assert states == ["CANCELLED", "TIMEOUT", "LOST"]
    with pytest.raises(SystemExit) as stop:
        callback.on_multirun_end(
            SimpleNamespace(hydra=SimpleNamespace(sweep=SimpleNamespace(dir=str(tmp_path / "sweep"))))
        )
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert "3 job(s) of this multirun failed" in err
    assert "job 1: SLURM job CANCELLED: SLURM job 7_1 ended CANCELLED" in err
    assert "job 2: SLURM job TIMEOUT: SLURM job 7_2 ended TIMEOUT" in err
    assert "job 3: SLURM job LOST: SLURM job 7_3 ended LOST: sacct has not known it" in err


def test_a_job_that_recorded_its_own_failure_keeps_it(tmp_path):
    run_dir = tmp_path / "0"
    run_dir.mkdir()
    (run_dir / "failure.json").write_text(json.dumps({"error": "InputError", "message": "gmm.k must be >= 1"}))
    launchers.record_failure(run_dir, "8_0", "FAILED", "exit 1")
    record = json.loads((run_dir / "failure.json").read_text())
    assert record["error"] == "InputError" and record["slurm_state"] == "FAILED"


@pytest.mark.parametrize("gpus, accelerator", [("0", "cpu"), ("null", "cpu"), ("1", "gpu"), ("4", "gpu")])
def test_launcher_slurm_picks_the_trainer_from_gpus_per_node(gpus, accelerator):
    GlobalHydra.instance().clear()
    with initialize_config_module("gnngmm.conf", version_base="1.3"):
        cfg = compose(
            "train", overrides=["launcher=slurm", f"hydra.launcher.gpus_per_node={gpus}"], return_hydra_config=True
        )
    GlobalHydra.instance().clear()
    HydraConfig.instance().set_config(cfg)
    assert cfg.trainer.accelerator == accelerator and cfg.trainer.devices == 1
    assert cfg.hydra.launcher._target_ == "hydra_plugins.gnngmm_plugins.submitit_slurm.SlurmLauncher"


@pytest.mark.parametrize("returncode, stops", [(-15, True), (1, False)])
def test_a_requeue_whose_scontrol_is_killed_by_the_requeue_exits_the_job(returncode, stops):
    """submitit's time-limit handler runs ``scontrol requeue``; SLURM's SIGTERM to the requeued job
    can kill that scontrol: the job then leaves as requeued, while any other error stays an error."""
    import signal
    import subprocess

    def submitit_handler(signum, frame):
        raise subprocess.CalledProcessError(returncode, ["scontrol", "requeue", "12_0"])

    saved = signal.signal(signal.SIGUSR2, submitit_handler)
    try:
        launchers.guard_requeue_handler()
        with pytest.raises(SystemExit if stops else subprocess.CalledProcessError) as raised:
            os.kill(os.getpid(), signal.SIGUSR2)
        if stops:
            assert raised.value.code == -1
    finally:
        signal.signal(signal.SIGUSR2, saved)
