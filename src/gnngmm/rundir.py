"""The run dir's completion contract.

A run dir is either *complete* or *resumable*, never in between: the final stage writes every
output first and ``metrics.json`` last, atomically (a temporary file, then a rename). So
``metrics.json`` present means every output is there; absent, the dir holds an unfinished run,
which ``auto_resume`` continues from ``checkpoints/last.ckpt`` (a stop during the final stage
redoes only that stage). A requeued job that finds its dir complete changes nothing and exits 0.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

COMPLETION_MARKER = "metrics.json"


class RunComplete(Exception):
    """``auto_resume`` found the run dir complete: nothing to do. ``metrics`` holds its
    ``metrics.json`` (an empty dict when it cannot be read)."""

    def __init__(self, output_dir: Path, metrics: dict):
        super().__init__(f"{output_dir} already holds a complete run ({COMPLETION_MARKER})")
        self.output_dir = output_dir
        self.metrics = metrics


def read_metrics(output_dir: Path) -> dict:
    """The dir's ``metrics.json``, or ``{}`` when absent or unreadable."""
    try:
        return json.loads((Path(output_dir) / COMPLETION_MARKER).read_text())
    except (OSError, ValueError):
        return {}


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader (or a kill at any moment) sees the old file or the
    whole new one, never a part: a temporary file beside it, flushed to disk, then renamed."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
