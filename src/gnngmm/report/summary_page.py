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
from gnngmm.report.page import SORT_SCRIPT, STYLE, html_table

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


def _figure(runs, swept, metrics):
    import plotly.graph_objects as go
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
        r, c = i // cols + 1, i % cols + 1
        for label in labels:
            members = [
                x for x in runs if _config_label(x["overrides"], swept) == label and x["metrics"].get(m) is not None
            ]
            values = [float(x["metrics"][m]) for x in members]
            if not values:
                continue
            seeds = [str(x["metrics"].get("seed", "?")) for x in members]
            fig.add_trace(
                go.Box(
                    x=[label] * len(values),
                    y=values,
                    name=label,
                    boxpoints="all",
                    jitter=0.3,
                    pointpos=0,
                    marker={"color": colours[label], "size": 7},
                    line={"width": 0},
                    fillcolor="rgba(0,0,0,0)",
                    customdata=seeds,
                    hovertemplate=f"{html.escape(label)}<br>seed %{{customdata}}<br>{m} %{{y:.4f}}<extra></extra>",
                    showlegend=False,
                ),
                row=r,
                col=c,
            )
            mean = statistics.fmean(values)
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            fig.add_trace(
                go.Scatter(
                    x=[label],
                    y=[mean],
                    mode="markers",
                    marker={"symbol": "line-ew-open", "size": 24, "color": "black"},
                    error_y={"type": "data", "array": [std], "color": "black"},
                    showlegend=False,
                    hovertemplate=f"{html.escape(label)}<br>mean {mean:.4f} ± {std:.4f} over {len(values)} run(s)"
                    "<extra></extra>",
                ),
                row=r,
                col=c,
            )
    fig.update_layout(template=TEMPLATE, height=380 * rows, title="Each run (points) and mean ± std (bars)")
    fig.update_xaxes(type="category", tickangle=-25)
    return fig


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
    from plotly.offline import get_plotlyjs

    path = Path(path)
    metrics = [m for m in (*QUALITY, *COST) if any(r["metrics"].get(m) is not None for r in runs)]
    frame = summary_frame(runs, swept, metrics)
    parts = []
    if len(frame):
        keep = [*(swept or ["config"]), "runs", "seeds"]
        for m in metrics:
            keep += [m, f"{m}_seeds"]
        shown = frame[keep].rename(columns={m: f"{TITLES.get(m, m)} (mean ± std)" for m in metrics})
        shown = shown.rename(columns={f"{m}_seeds": f"{TITLES.get(m, m)} per run" for m in metrics})
        parts.append(html_table(shown, "table-summary"))
        if metrics:
            fig = _figure(runs, swept, metrics)
            parts.append(
                fig.to_html(
                    full_html=False, include_plotlyjs=False, div_id="summary-figure", config={"displaylogo": False}
                )
            )
    else:
        parts.append("<p>No finished run found.</p>")
    if failures:
        items = "".join(
            f"<li>job {html.escape(str(f.get('job')))} "
            f"({html.escape(', '.join(f'{k}={v}' for k, v in f.get('overrides', {}).items()))}): "
            f"{html.escape(str(f.get('error')))}</li>"
            for f in failures
        )
        parts.append(f'<h2>{len(failures)} failed job(s)</h2><ul id="failures">{items}</ul>')
    title = f"gnngmm sweep summary: {source}" if source else "gnngmm sweep summary"
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>{STYLE}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p class="note">{len(runs)} finished run(s) in {len(frame)} configuration(s); swept: {html.escape(", ".join(swept) or "nothing but seeds")}.</p>
{"".join(parts)}
<script type="text/javascript">{SORT_SCRIPT}</script>
</body>
</html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
