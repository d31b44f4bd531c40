"""``summary.html``: a sweep's configurations side by side, one self-contained page (plotly.js
inlined), for users who never sync W&B."""

from __future__ import annotations

import html
import math
import statistics
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from gnngmm.report.figures import TEMPLATE, palette
from gnngmm.report.markup import figure_div, html_page, html_table

QUALITY = ("nmi", "ari", "acc", "auroc", "average_precision")
COST = ("train_seconds", "peak_rss_mb")
TITLES = {
    "nmi": "NMI",
    "ari": "ARI",
    "acc": "ACC",
    "auroc": "AUROC",
    "average_precision": "AP",
    "train_seconds": "seconds",
    "peak_rss_mb": "peak RSS (MB)",
}


def _config_label(overrides: dict, swept: Sequence[str]) -> str:
    """A configuration's name: its ``swept`` values as ``key=value``, joined by commas."""
    return ", ".join(f"{k}={overrides.get(k, '')}" for k in swept) or "all runs"


def summary_frame(runs: Sequence[dict], swept: Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """One row per configuration (the values of the ``swept`` keys; seeds averaged): ``runs``,
    then per metric ``<m>`` as text ``mean ± std``, ``<m>_mean``, ``<m>_std`` (0 for one run) and
    ``<m>_seeds`` (each run's value, by seed).

    Args:
        runs (list of dict): each ``{"overrides": {key: value}, "metrics": metrics.json}``.
        swept (sequence of str): the keys that tell configurations apart.
        metrics (sequence of str): metric names of ``metrics.json``.
    """
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        groups.setdefault(tuple(run["overrides"].get(k, "") for k in swept), []).append(run)
    rows = []
    for key, members in sorted(groups.items()):
        members = sorted(members, key=lambda r: (str(r["metrics"].get("seed", "")), str(r.get("job", ""))))
        row = dict(zip(swept, key)) if swept else {"config": "all runs"}
        row["runs"] = len(members)
        row["seeds"] = ", ".join(str(m["metrics"].get("seed", "?")) for m in members)
        for m in metrics:
            values = [float(r["metrics"][m]) for r in members if r["metrics"].get(m) is not None]
            mean = statistics.fmean(values) if values else math.nan
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            digits = 1 if m in COST else 4
            row[m] = f"{mean:.{digits}f} ± {std:.{digits}f}" if values else ""
            row[f"{m}_mean"], row[f"{m}_std"] = mean, std
            row[f"{m}_seeds"] = ", ".join(f"{v:.{digits}f}" for v in values)
        rows.append(row)
    return pd.DataFrame(rows)


def _run_traces(label: str, values: list[float], seeds: list[str], metric: str, colour: str) -> list:
    """One configuration's runs of one metric: every run as a point (its seed on hover), and the
    mean with a ± std bar."""
    import plotly.graph_objects as go

    name = html.escape(label)
    points = go.Box(
        x=[label] * len(values),
        y=values,
        name=label,
        boxpoints="all",
        jitter=0.3,
        pointpos=0,
        marker={"color": colour, "size": 7},
        line={"width": 0},
        fillcolor="rgba(0,0,0,0)",
        customdata=seeds,
        hovertemplate=f"{name}<br>seed %{{customdata}}<br>{metric} %{{y:.4f}}<extra></extra>",
        showlegend=False,
    )
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    bar = go.Scatter(
        x=[label],
        y=[mean],
        mode="markers",
        marker={"symbol": "line-ew-open", "size": 24, "color": "black"},
        error_y={"type": "data", "array": [std], "color": "black"},
        showlegend=False,
        hovertemplate=f"{name}<br>mean {mean:.4f} ± {std:.4f} over {len(values)} run(s)<extra></extra>",
    )
    return [points, bar]


def _figure(runs: Sequence[dict], swept: Sequence[str], metrics: Sequence[str]):
    """One panel per metric (three a row), each configuration's runs side by side in it."""
    from plotly.subplots import make_subplots

    labels = sorted({_config_label(r["overrides"], swept) for r in runs})
    colours = dict(zip(labels, palette(len(labels))))
    cols = min(3, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[TITLES.get(m, m) for m in metrics],
        vertical_spacing=0.22 if rows > 1 else 0.1,
    )
    for i, m in enumerate(metrics):
        for label in labels:
            members = [
                x for x in runs if _config_label(x["overrides"], swept) == label and x["metrics"].get(m) is not None
            ]
            values = [float(x["metrics"][m]) for x in members]
            if not values:
                continue
            seeds = [str(x["metrics"].get("seed", "?")) for x in members]
            for trace in _run_traces(label, values, seeds, m, colours[label]):
                fig.add_trace(trace, row=i // cols + 1, col=i % cols + 1)
    fig.update_layout(template=TEMPLATE, height=380 * rows, title="Each run (points) and mean ± std (bars)")
    fig.update_xaxes(type="category", tickangle=-25)
    return fig


def _failures_html(failures: Sequence[dict]) -> str:
    """The failed jobs as a list (``id="failures"``) under a heading."""
    items = "".join(
        f"<li>job {html.escape(str(f.get('job')))} "
        f"({html.escape(', '.join(f'{k}={v}' for k, v in f.get('overrides', {}).items()))}): "
        f"{html.escape(str(f.get('error')))}</li>"
        for f in failures
    )
    return f'<h2>{len(failures)} failed job(s)</h2><ul id="failures">{items}</ul>'


def _results_html(frame: pd.DataFrame, runs: Sequence[dict], swept: Sequence[str], metrics: list[str]) -> list[str]:
    """The summary table (means ± std and each run's value per metric) and the figure."""
    if not len(frame):
        return ["<p>No finished run found.</p>"]
    keep = [*(swept or ["config"]), "runs", "seeds"]
    for m in metrics:
        keep += [m, f"{m}_seeds"]
    shown = frame[keep].rename(columns={m: f"{TITLES.get(m, m)} (mean ± std)" for m in metrics})
    shown = shown.rename(columns={f"{m}_seeds": f"{TITLES.get(m, m)} per run" for m in metrics})
    parts = [html_table(shown, "table-summary")]
    if metrics:
        parts.append(figure_div(_figure(runs, swept, metrics), "summary-figure"))
    return parts


def write_summary_html(
    path, runs: Sequence[dict], swept: Sequence[str], failures: Sequence[dict] = (), *, source=None
) -> Path:
    """Write ``summary.html``: the table of :func:`summary_frame` (one row per configuration,
    ``id="table-summary"``), a figure with one panel per metric found (NMI, ARI, ACC, AUROC, AP,
    seconds, peak memory) showing every run as a point and the mean ± std, and failed jobs.

    Args:
        path (str or Path): the file to write.
        runs (list of dict): each ``{"job", "overrides", "metrics"}`` (what
            :func:`gnngmm.summary.collect` returns).
        swept (sequence of str): the keys that tell configurations apart (not ``seed``).
        failures (list of dict, optional): each ``{"job", "overrides", "error"}``.
        source (str or Path, optional): the multirun dir, named in the title.

    Returns:
        Path: ``path``.
    """
    path = Path(path)
    metrics = [m for m in (*QUALITY, *COST) if any(r["metrics"].get(m) is not None for r in runs)]
    frame = summary_frame(runs, swept, metrics)
    parts = _results_html(frame, runs, swept, metrics)
    if failures:
        parts.append(_failures_html(failures))
    title = f"gnngmm sweep summary: {source}" if source else "gnngmm sweep summary"
    swept_text = html.escape(", ".join(swept) or "nothing but seeds")
    note = f'<p class="note">{len(runs)} finished run(s) in {len(frame)} configuration(s); swept: {swept_text}.</p>'
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html_page(title, note + "\n" + "".join(parts)), encoding="utf-8")
    return path
