"""Run a command-line entry point with a signal sent at a chosen moment of the final stage.

    python tests/hooks/signal_at.py MOMENT SIGNAL train.py [overrides ...]

MOMENT is ``final_stage`` (just before ``model.ckpt`` is written: predictions are on disk,
``metrics.json`` is not) or ``after_metrics`` (just after ``metrics.json`` is written). SIGNAL is
``USR2`` (a time limit: as under submitit, its handler exits the process at once), ``TERM``
(the default action kills the process) or ``requeue`` (inside a SLURM job: ``scontrol requeue`` of
this job, a preemption: SIGTERM, then the job is queued again). The signal is sent at most once per
marker file named by ``GNNGMM_SIGNAL_ONCE`` (when set), so a requeued copy of the job runs
undisturbed. Inside SLURM jobs the same hook is installed at interpreter start-up by
``tests/cluster/hook/sitecustomize.py`` from ``GNNGMM_SIGNAL_AT`` and ``GNNGMM_SIGNAL``.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
from pathlib import Path


def install(moment: str, name: str) -> None:
    """Patch the final stage so that signal ``name`` (or a SLURM requeue) reaches this process at ``moment``."""
    import subprocess

    import gnngmm.estimator
    import gnngmm.outputs
    import gnngmm.train

    once = os.environ.get("GNNGMM_SIGNAL_ONCE")

    def fire(mtime_ns: int = 0) -> None:
        if once:  # the marker holds metrics.json's modification time (0 before it exists)
            if Path(once).exists():
                return
            Path(once).write_text(str(mtime_ns))
        if name == "requeue":
            subprocess.run(["scontrol", "requeue", os.environ["SLURM_JOB_ID"]], check=True)
        else:
            os.kill(os.getpid(), getattr(signal, f"SIG{name}"))

    if moment == "final_stage":
        save = gnngmm.estimator.GNNGMM.save

        def save_then_signal(self, path):
            fire()
            return save(self, path)

        gnngmm.estimator.GNNGMM.save = save_then_signal
    elif moment == "after_metrics":
        write = gnngmm.outputs.write_text_atomic

        def write_then_signal(path, text):
            write(path, text)
            fire(Path(path).stat().st_mtime_ns)

        gnngmm.outputs.write_text_atomic = write_then_signal
    else:
        raise SystemExit(f"unknown moment {moment!r}")


def main() -> None:
    moment, name, script, *args = sys.argv[1:]
    if name == "USR2":
        signal.signal(signal.SIGUSR2, lambda *_: sys.exit(-1))  # submitit's handler ends the job so
    install(moment, name)
    sys.argv = [script, *args]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
