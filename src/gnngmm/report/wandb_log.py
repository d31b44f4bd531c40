"""The explanation tables and ``report.html`` sent to a W&B run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gnngmm.report.page import INDEXED


def _plain(frame: pd.DataFrame, index: bool) -> pd.DataFrame:
    """A copy W&B can hold: the index as a column when it means something, column names as
    strings, lists joined by commas, numpy scalars as Python ones."""
    out = frame.reset_index() if index else frame.copy()
    out.columns = [str(c) for c in out.columns]
    for column in out.columns:
        if out[column].dtype == object:
            out[column] = out[column].map(
                lambda v: ", ".join(map(str, v)) if isinstance(v, (list, tuple, np.ndarray)) else v
            )
    return out


def log_to_wandb(
    run,
    tables: dict[str, pd.DataFrame],
    report_path=None,
    *,
    prefix: str = "explain",
    max_rows: int = 10_000,
    skip: tuple[str, ...] = ("map",),
) -> dict:
    """Log every table as a ``wandb.Table`` (key ``{prefix}/{name}``) and the page as an artifact.

    Args:
        run (wandb.sdk.wandb_run.Run): an active W&B run (``wandb.init(...)``, or a Lightning
            ``WandbLogger``'s ``experiment``); offline runs work the same.
        tables (dict of DataFrame): :func:`gnngmm.explain.explain_model`'s result.
        report_path (str or Path, optional): ``report.html`` to add as an artifact of type
            ``report`` (named ``report-<run id>``).
        prefix (str, optional): key prefix (default ``explain``).
        max_rows (int, optional): rows kept per table (default 10,000, W&B's own table limit).
        skip (tuple of str, optional): tables not logged (default the map's node sample).

    Returns:
        dict: the logged keys -> ``wandb.Table`` (and ``"artifact"`` -> the artifact, if any).
    """
    import wandb

    logged: dict = {}
    for name, frame in tables.items():
        if name in skip:
            continue
        logged[f"{prefix}/{name}"] = wandb.Table(dataframe=_plain(frame.head(max_rows), name in INDEXED))
    if logged:
        run.log(dict(logged))
    if report_path is not None:
        artifact = wandb.Artifact(f"report-{run.id}", type="report", description="gnngmm report.html")
        artifact.add_file(str(Path(report_path)), name=Path(report_path).name)
        run.log_artifact(artifact)
        logged["artifact"] = artifact
    return logged
