"""``launcher=slurm`` against a real single-node SLURM (``make test-cluster`` starts it with
``tests/cluster/cluster.sh`` and points ``SLURM_CONF`` at it): a 2-job multirun requeued by
``scontrol requeue`` and by its time limit equals direct runs byte for byte; a signal right after
``metrics.json`` ends in a complete run dir; failed and cancelled jobs are named; an Optuna study
on the cluster's MariaDB is shared by two sweeps and resumed by a third."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from conftest import ROOT, SMALL, run_cli

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.environ.get("GNNGMM_SLURM_STATE"), reason="no test cluster (make test-cluster starts one)"
    ),
]

HOOK = ROOT / "tests" / "cluster" / "hook"
# the SMALL job, on the CPU partition; no trainer.accelerator: launcher=slurm takes it from gpus_per_node
JOB = [o for o in SMALL if not o.startswith("trainer.accelerator")] + ["num_threads=1"]
SLURM = [
    "launcher=slurm",
    "hydra.launcher.partition=cpu",
    "hydra.launcher.gpus_per_node=0",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=null",
    "hydra.launcher.timeout_min=10",
]
LONG = ["trainer.max_epochs=320"]
# every epoch of a LONG job made 0.15 s longer in SLURM (tests/cluster/hook): it outlasts a one-minute
# time limit's signal whatever the machine's speed, computing the same numbers
SLOW_EPOCHS = {"GNNGMM_EPOCH_SLEEP": "0.15"}


def hooked() -> dict:
    """The environment that installs tests/cluster/hook/sitecustomize.py in the jobs."""
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(HOOK), os.environ.get("PYTHONPATH")) if p)}


def slurm(*args: str) -> str:
    return subprocess.run(list(args), capture_output=True, text=True, check=True, timeout=60).stdout


@pytest.fixture(scope="module", autouse=True)
def lift_requeue_holds():
    """SLURM holds a requeued job about two minutes (its begin time) before it starts again: start
    such jobs now, as an administrator would with ``scontrol update JobId=.. StartTime=now``."""
    stop = threading.Event()

    def lift() -> None:
        while not stop.wait(1.0):
            try:
                for line in slurm("squeue", "-h", "-t", "PD", "-o", "%i %r").splitlines():
                    job, _, reason = line.partition(" ")
                    if reason.strip() == "BeginTime":
                        subprocess.run(
                            ["scontrol", "update", f"JobId={job}", "StartTime=now"], capture_output=True, check=False
                        )
            except (subprocess.SubprocessError, OSError):
                pass

    thread = threading.Thread(target=lift, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join()


def start_multirun(sweep: Path, mirror: Path, data: Path, *args: str, env_extra: dict | None = None):
    env = dict(os.environ, WANDB_MODE="offline", HYDRA_FULL_ERROR="0", **(env_extra or {}))
    cmd = [sys.executable, "train.py", "-m", *SLURM, f"hydra.sweep.dir={sweep}", f"paths.data_dir={data}",
           f"paths.mirror_dir={mirror}", *JOB, *args]  # fmt: skip
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def slurm_jobs(sweep: Path) -> list[str]:
    """The SLURM array job ids of a sweep (submitit's folders)."""
    return sorted(p.name for p in (sweep / ".submitit").iterdir() if p.is_dir() and "_" not in p.name)


def history(job: str) -> list[tuple[str, str, str]]:
    """Every run of every task of a SLURM job, requeued ones included: (task id, state, exit code)."""
    out = slurm("sacct", "-n", "-X", "-D", "-P", "-j", job, "-o", "JobID,State,ExitCode")
    return [tuple(line.split("|")) for line in out.splitlines() if line]


def wait_until_gone(job: str, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not slurm("squeue", "-h", "-j", job, "-o", "%i").strip():
            return
        time.sleep(1)
    raise AssertionError(f"SLURM job {job} still queued or running after {timeout} s")


def test_a_multirun_requeued_by_scontrol_and_by_its_time_limit_equals_direct_runs(tmp_path, mirror):
    sweep, data = tmp_path / "sweep", tmp_path / "data"
    # a 1-minute limit: SLURM checks limits every 30 s and signals up to one check early, so with a
    # 5 s delay USR2 comes 25 to 55 s after each start (a kill would come at 60 s or later); a LONG
    # job needs more than that: at least one time-limit requeue each
    proc = start_multirun(sweep, mirror, data, "seed=0,1", *LONG, "hydra.launcher.timeout_min=1",
                          "hydra.launcher.signal_delay_s=5", env_extra={**hooked(), **SLOW_EPOCHS})  # fmt: skip
    direct = {seed: tmp_path / f"direct{seed}" for seed in (0, 1)}
    direct_runs = [
        subprocess.Popen([sys.executable, "train.py", f"hydra.run.dir={direct[seed]}", f"paths.data_dir={data}",
                          f"paths.mirror_dir={mirror}", *JOB, *LONG, "trainer.accelerator=cpu", f"seed={seed}"],
                         cwd=ROOT, env=dict(os.environ, WANDB_MODE="offline"), stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
        for seed in (0, 1)
    ]  # fmt: skip
    # preempt job 0 by hand once it has a checkpoint (SIGTERM, then SLURM queues it again)
    deadline, requeued = time.time() + 300, None
    while requeued is None and time.time() < deadline and proc.poll() is None:
        if (sweep / "0" / "checkpoints" / "last.ckpt").exists() and not (sweep / "0" / "metrics.json").exists():
            (job,) = slurm_jobs(sweep)
            if f"{job}_0" in slurm("squeue", "-h", "-t", "R", "-o", "%i").split():
                slurm("scontrol", "requeue", f"{job}_0")
                requeued = f"{job}_0"
        time.sleep(0.5)
    assert requeued, "job 0 was never seen running with a checkpoint"
    for run in direct_runs:
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err[-2000:]
    _, stderr = proc.communicate(timeout=480)
    assert proc.returncode == 0, stderr[-3000:]
    (job,) = slurm_jobs(sweep)
    runs = history(job)
    for task in (f"{job}_0", f"{job}_1"):
        ends = [(state, code) for task_id, state, code in runs if task_id == task]
        assert [state for state, _ in ends].count("REQUEUED") >= 1, (task, ends)
        # the last run completes; a time-limit signal during the interpreter's exit, once the result
        # is written, ends it with USR2 (128 + 12) instead: the multirun has the result either way
        assert ends[-1] in (("COMPLETED", "0:0"), ("FAILED", "140:0")), (task, ends)
    logs = "".join(p.read_text() for p in (sweep / ".submitit").rglob(f"{job}_1_*log.err"))
    assert "Caught signal SIGUSR2" in logs, "job 1 was requeued by submitit at its time limit"
    for seed in (0, 1):
        for name in ("predictions.csv", "history.csv"):
            assert (sweep / str(seed) / name).read_bytes() == (direct[seed] / name).read_bytes(), (seed, name)
        assert not (sweep / str(seed) / "failure.json").exists()


@pytest.mark.parametrize("signal", ["USR2", "requeue"])
def test_a_signal_right_after_metrics_json_ends_in_a_complete_run_dir(tmp_path, mirror, signal):
    """The race: a time-limit signal (USR2: submitit requeues and exits) or a preemption (scontrol
    requeue: SIGTERM, which submitit only logs, then SLURM queues the job again whatever its exit)
    right after metrics.json. The requeued job finds its run complete: exit 0, nothing changed."""
    sweep, marker = tmp_path / "sweep", tmp_path / "fired"
    env = {**hooked(), "GNNGMM_SIGNAL_AT": "after_metrics", "GNNGMM_SIGNAL": signal, "GNNGMM_SIGNAL_ONCE": str(marker)}
    proc = start_multirun(sweep, mirror, tmp_path / "data", "seed=0", env_extra=env)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    (job,) = slurm_jobs(sweep)
    wait_until_gone(job)  # a preempted job may still be queued again after the multirun has its result
    run_dir = sweep / "0"
    assert marker.exists(), "the signal was sent"
    assert int(marker.read_text()) == (run_dir / "metrics.json").stat().st_mtime_ns, "metrics.json left as it was"
    for name in ("predictions.csv", "history.csv", "model.ckpt"):
        assert (run_dir / name).stat().st_mtime_ns <= int(marker.read_text()), name
    assert not (run_dir / "failure.json").exists()
    runs = history(job)
    assert [s for _, s, _ in runs][-1] == "COMPLETED" and "REQUEUED" in [s for _, s, _ in runs], runs
    assert runs[-1][2] == "0:0"


def test_failed_and_cancelled_jobs_are_named_and_the_multirun_exits_1(tmp_path, mirror):
    sweep = tmp_path / "sweep"
    proc = start_multirun(sweep, mirror, tmp_path / "data", "gmm.k=0,7", *LONG)
    deadline = time.time() + 300
    while time.time() < deadline and not (sweep / "1" / "history.csv").exists():
        time.sleep(0.5)
    (job,) = slurm_jobs(sweep)
    slurm("scancel", f"{job}_1")
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 1, stderr[-3000:]
    assert "2 job(s) of this multirun failed" in stderr, stderr[-3000:]
    assert "job 0: InputError: gmm.k (n_clusters) must be >= 1" in stderr
    assert f"job 1: SLURM job CANCELLED: SLURM job {job}_1 ended CANCELLED" in stderr
    failure = json.loads((sweep / "1" / "failure.json").read_text())
    assert failure["slurm_state"] == "CANCELLED" and failure["slurm_job_id"] == f"{job}_1"


def test_an_optuna_study_on_mariadb_is_shared_by_two_sweeps_and_resumed_by_a_third(tmp_path, mirror):
    import optuna

    storage, study = os.environ["GNNGMM_MARIADB_URL"], f"shared-{uuid.uuid4().hex[:8]}"
    common = ["train.py", "-m", "hparams_search=optuna", f"hydra.sweeper.storage={storage}",
              f"hydra.sweeper.study_name={study}", f"paths.data_dir={tmp_path / 'data'}", f"paths.mirror_dir={mirror}",
              *SMALL, "num_threads=1", "trainer.max_epochs=4"]  # fmt: skip
    env = dict(os.environ, WANDB_MODE="offline", HYDRA_FULL_ERROR="0")
    procs = [subprocess.Popen([sys.executable, *common, "hydra.sweeper.n_trials=6",
                               f"hydra.sweep.dir={tmp_path / f's{i}'}"],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in (0, 1)]  # fmt: skip
    for proc in procs:
        _, stderr = proc.communicate(timeout=400)
        assert proc.returncode == 0, stderr[-3000:]
    trials = optuna.load_study(study_name=study, storage=storage).trials
    runs = [p for i in (0, 1) for p in (tmp_path / f"s{i}").glob("*/metrics.json")]
    assert 6 <= len(trials) <= 7 and len(runs) == len(trials), "one study, one budget for both sweeps"
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    resumed = run_cli(
        [*common, f"hydra.sweeper.n_trials={len(trials) + 1}", f"hydra.sweep.dir={tmp_path / 's2'}"], cwd=ROOT
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert len(list((tmp_path / "s2").glob("*/metrics.json"))) == 1, "started again, it ran only what was missing"
    assert len(optuna.load_study(study_name=study, storage=storage).trials) == len(trials) + 1
