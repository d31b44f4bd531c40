"""A run dir's contract: one run per dir, and complete or resumable, never in between.

A run dir is either *complete* or *resumable*, never in between: the final stage writes every
output first and ``metrics.json`` last, atomically (a temporary file, then a rename). So
``metrics.json`` present means every output is there; absent, the dir holds an unfinished run,
which ``auto_resume`` continues from ``checkpoints/last.ckpt`` (a stop during the final stage
redoes only that stage). A requeued job that finds its dir complete changes nothing and exits 0.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from gnngmm.errors import InputError

log = logging.getLogger("gnngmm")

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


RUN_OUTPUTS = ("metrics.json", "predictions.csv", "model.ckpt", "history.csv", "checkpoints/last.ckpt")
PICTURES_AND_TABLES = (
    "predictions.parquet",
    "bic.csv",
    "bic.png",
    "embedding.png",
    "cluster_sizes.png",
    "report.html",
    "clusters.csv",
    "cluster_features.csv",
    "cluster_typical.csv",
    "cluster_edges.csv",
    "contingency.csv",
    "classes.csv",
    "anomalies.csv",
)


def claim_run_dir(output_dir: Path, ckpt_path, overwrite: bool = False, auto_resume: bool = False):
    """One run per run dir. Returns the checkpoint to resume from (``ckpt_path``, or the dir's own
    ``last.ckpt`` for an unfinished run when ``auto_resume``); refuses a dir holding another run.

    With ``auto_resume`` an unfinished run without ``last.ckpt`` starts again (``None``).

    Raises:
        RunComplete: ``auto_resume`` on a dir whose run is complete (``metrics.json`` is written last).
        InputError: the dir holds another run.
    """
    present = [name for name in RUN_OUTPUTS if (output_dir / name).exists()]
    if not present:
        return ckpt_path
    own = output_dir / "checkpoints" / "last.ckpt"
    if ckpt_path is not None and Path(ckpt_path).resolve() == own.resolve():
        return ckpt_path  # continuing this dir's run in place
    if overwrite:
        log.warning("overwrite=true: removing the previous run's %s from %s", ", ".join(present), output_dir)
        for name in present:
            (output_dir / name).unlink()
        for extra in PICTURES_AND_TABLES:
            (output_dir / extra).unlink(missing_ok=True)
        return ckpt_path
    if auto_resume and ckpt_path is None:
        if (output_dir / COMPLETION_MARKER).exists():  # written last: every output is there
            raise RunComplete(output_dir, read_metrics(output_dir))
        if own.exists():
            log.info("auto_resume: continuing the unfinished run in %s from %s", output_dir, own)
            return str(own)
        log.info("auto_resume: %s holds an unfinished run without a checkpoint; starting it again", output_dir)
        return None
    raise InputError(
        f"{output_dir} already holds a run ({', '.join(present)}); start a new one elsewhere (hydra.run.dir=...), "
        f"replace it with overwrite=true, or continue it with ckpt_path={own}"
    )
