"""Hydra callbacks (``hydra.callbacks`` in ``conf/hydra/default.yaml``).

``FailedJobsExit``: a multirun records a failing job in its ``failure.json`` and goes on with the
others; once all have run, this lists the failed ones and exits non-zero, so scripts and CI that
check the exit status see the failure.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from hydra.experimental.callback import Callback


class FailedJobsExit(Callback):
    def __init__(self) -> None:
        self.start = time.time()

    def on_multirun_start(self, config, **kwargs) -> None:
        self.start = time.time()

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep = Path(config.hydra.sweep.dir)
        failed = sorted(p for p in sweep.rglob("failure.json") if p.stat().st_mtime >= self.start - 1)
        if not failed:
            return
        print(f"gnngmm: {len(failed)} job(s) of this multirun failed:", file=sys.stderr)
        for path in failed:
            try:
                error = json.loads(path.read_text())
                reason = f"{error.get('error')}: {error.get('message')}"
            except (OSError, ValueError):
                reason = "unreadable failure record"
            print(f"  job {path.parent.name}: {reason}  ({path})", file=sys.stderr)
        sys.exit(1)
