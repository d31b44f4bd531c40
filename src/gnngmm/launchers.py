"""What gnngmm's SLURM launcher (``conf/launcher/slurm.yaml``; the Hydra plugin shell
``hydra_plugins.gnngmm_plugins.submitit_slurm``) adds to hydra-submitit-launcher's:

* before submitting, :func:`check_accounting`: submitit follows its jobs with ``sacct``; where SLURM
  keeps no accounting, ``sacct`` fails, a job that ends without a result (cancelled, killed at its
  time limit) is never seen to end, and the multirun would wait for it forever. It stops instead
  with one line naming the missing piece.
* :func:`collect`: every job's result, waiting on all of them; a job that ended without one
  (``scancel``, a time limit it could not requeue from, a node failure, memory) is recorded in its
  run dir's ``failure.json`` with its SLURM state, so the multirun's failure summary names it, and
  it returns no value (as a job that fails does): its trial fails instead of the whole sweep. A job
  that ``sacct`` does not know for ``UNKNOWN_LIMIT_S`` seconds is recorded so too: the wait is bounded.
* in the job, :func:`guard_requeue_handler`: submitit's time-limit handler requeues the job with
  ``scontrol requeue``, and SLURM's SIGTERM to the requeued job's processes can kill that very
  ``scontrol``; submitit then raises its ``CalledProcessError`` into the training, which recorded
  the requeued job as failed. The guard exits the job instead, as submitit does once it has requeued.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from pathlib import Path

log = logging.getLogger(__name__)

UNKNOWN_LIMIT_S = 900.0  # a job sacct does not know for this long is given up (recorded as failed)
POLL_S = 5.0


class AccountingError(RuntimeError):
    """SLURM accounting (``sacct``) is not available: submitit could not follow the jobs."""


def check_accounting() -> None:
    """Raise :class:`AccountingError` unless ``sacct`` answers."""
    try:
        result = subprocess.run(
            ["sacct", "-n", "-X", "-S", "now"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.SubprocessError) as err:
        raise AccountingError(f"launcher=slurm needs SLURM's sacct, which could not run: {err}") from err
    if result.returncode != 0:
        reason = (result.stderr or result.stdout).strip().splitlines()
        raise AccountingError(
            "launcher=slurm needs SLURM accounting: submitit follows its jobs with sacct, which fails here "
            f"({reason[-1] if reason else f'exit {result.returncode}'}); without it a cancelled job would be "
            "waited for forever. Ask for slurmdbd (AccountingStorageType=accounting_storage/slurmdbd), or run "
            "the sweep with launcher=joblib (docs/clusters.md)"
        )


def record_failure(run_dir: Path, job_id: str, state: str, message: str) -> None:
    """A ``failure.json`` in the job's run dir, as a job that fails writes it (unless it wrote one)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "failure.json"
    record = {
        "error": f"SLURM job {state}",
        "message": f"SLURM job {job_id} ended {state}: {message}",
        "slurm_job_id": job_id,
        "slurm_state": state,
    }
    if path.exists():
        try:
            record = {**json.loads(path.read_text()), "slurm_job_id": job_id, "slurm_state": state}
        except (OSError, ValueError):
            pass
    path.write_text(json.dumps(record, indent=2) + "\n")


def collect(jobs: list, run_dirs: list[Path], overrides: list) -> list:
    """Wait for every submitit job; their ``JobReturn``s, in order. A job that ended without a
    result, or that sacct did not know for ``UNKNOWN_LIMIT_S``, returns ``None`` (as a failed job
    does in a multirun) and gets a ``failure.json`` naming its SLURM state."""
    from hydra.core.utils import JobReturn, JobStatus

    unknown_since: dict[int, float] = {}
    waiting = set(range(len(jobs)))
    lost: dict[int, str] = {}
    while waiting:
        for i in sorted(waiting):
            job = jobs[i]
            if job.done():
                waiting.discard(i)
                continue
            if job.state.upper() == "UNKNOWN":
                since = unknown_since.setdefault(i, time.time())
                if time.time() - since > UNKNOWN_LIMIT_S:
                    lost[i] = f"sacct has not known it for {UNKNOWN_LIMIT_S:.0f} s; no longer waited for"
                    waiting.discard(i)
            else:
                unknown_since.pop(i, None)
        if waiting:
            time.sleep(POLL_S)
    returns = []
    for i, job in enumerate(jobs):
        try:
            if i in lost:
                raise RuntimeError(lost[i])
            returns.append(job.results()[0])
            continue
        except Exception as err:  # noqa: BLE001 - the job's end, recorded and returned as a failure
            state = "LOST" if i in lost else (job.state.upper().split() or ["UNKNOWN"])[0]  # "CANCELLED by 0"
            message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            log.error("SLURM job %s (%s) ended %s without a result: %s", job.job_id, run_dirs[i], state, message)
            record_failure(run_dirs[i], str(job.job_id), state, message)
            returns.append(JobReturn(overrides=list(overrides[i]), status=JobStatus.COMPLETED, _return_value=None))
    return returns


def guard_requeue_handler() -> None:
    """Wrap the job's time-limit signal handler (submitit's, installed before the job runs): an
    ``scontrol requeue`` killed by SIGTERM means SLURM took the requeue and is stopping this copy of
    the job; leave as submitit would after requeueing (``sys.exit(-1)``), without a failure record."""
    import signal
    import sys

    signum = signal.SIGUSR2
    handler = signal.getsignal(signum)
    if not callable(handler):
        return

    def requeue(sig, frame) -> None:
        try:
            handler(sig, frame)
        except subprocess.CalledProcessError as err:
            if err.returncode != -signal.SIGTERM or "requeue" not in list(err.cmd or []):
                raise
            log.warning("scontrol requeue was stopped by the requeue's own SIGTERM: the job is requeued; exiting")
            sys.exit(-1)

    signal.signal(signum, requeue)
