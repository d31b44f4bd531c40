"""Run a command-line entry point with a signal sent at a chosen moment of the final stage.

    python tests/hooks/signal_at.py MOMENT SIGNAL train.py [overrides ...]

MOMENT is ``final_stage`` (just before ``model.ckpt`` is written: predictions are on disk,
``metrics.json`` is not) or ``after_metrics`` (just after ``metrics.json`` is written). SIGNAL is
``USR2`` (a time limit: as under submitit, its handler exits the process at once) or ``TERM``
(preemption: the default action kills the process). The signal is sent at most once per marker
file named by ``GNNGMM_SIGNAL_ONCE`` (when set), so a requeued copy of the job runs undisturbed.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
from pathlib import Path


def install(moment: str, signum: int) -> None:
    """Patch the final stage so that ``signum`` reaches this process at ``moment``."""
    import gnngmm.estimator
    import gnngmm.train

    once = os.environ.get("GNNGMM_SIGNAL_ONCE")

    def fire() -> None:
        if once:
            if Path(once).exists():
                return
            Path(once).write_text(str(os.getpid()))
        os.kill(os.getpid(), signum)

    if moment == "final_stage":
        save = gnngmm.estimator.GNNGMM.save

        def save_then_signal(self, path):
            fire()
            return save(self, path)

        gnngmm.estimator.GNNGMM.save = save_then_signal
    elif moment == "after_metrics":
        write = gnngmm.train.write_text_atomic

        def write_then_signal(path, text):
            write(path, text)
            fire()

        gnngmm.train.write_text_atomic = write_then_signal
    else:
        raise SystemExit(f"unknown moment {moment!r}")


def main() -> None:
    moment, name, script, *args = sys.argv[1:]
    signum = getattr(signal, f"SIG{name}")
    if signum == signal.SIGUSR2 and signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL:
        signal.signal(signal.SIGUSR2, lambda *_: sys.exit(-1))  # submitit's handler ends the job so
    install(moment, signum)
    sys.argv = [script, *args]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
