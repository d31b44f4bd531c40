"""The report's plotly figures, each from the tables of :mod:`gnngmm.explain` or the estimator's
``history_`` / ``bic_table_`` rows: the embedding map, heatmaps of the edges between clusters and
of the contingency table, the BIC curve and the training-history curves."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

SVG_POINTS = 20_000  # above this many points the map is drawn by WebGL (scattergl), else as SVG
TEMPLATE = "plotly_white"


def palette(count: int) -> list[str]:
    """``count`` distinct colours (plotly's qualitative sets, then repeated)."""
    from plotly.colors import qualitative

    base = qualitative.Plotly + qualitative.Dark24 + qualitative.Light24 + qualitative.Alphabet
    return [base[i % len(base)] for i in range(count)]


def _categories(values: np.ndarray) -> tuple[list, dict]:
    cats = sorted(pd.unique(values).tolist(), key=lambda v: (isinstance(v, str), v))
    return cats, dict(zip(cats, palette(len(cats))))


def embedding_map(points: pd.DataFrame, *, title: str | None = None, svg_points: int = SVG_POINTS):
    """The interactive 2-D map of :func:`gnngmm.explain.embedding_map`'s table.

    One trace holds every sampled node (trace 0; SVG up to ``svg_points`` points, WebGL above);
    legend-only traces name the colours of the mode shown. Buttons colour the points by
    ``cluster``, ``label`` (when the table has it), ``anomaly score`` (continuous) or ``outlier``
    flag (when it has ``is_outlier``); hovering shows node id, cluster, max responsibility,
    anomaly score (and label).

    Args:
        points (DataFrame): columns ``node``, ``pc1``, ``pc2``, ``cluster``,
            ``max_responsibility``, ``anomaly_score``; optional ``label``, ``is_outlier``.
        title (str, optional): the figure's title (default none: the buttons sit there).
        svg_points (int, optional): most points drawn as SVG (default 20,000).

    Returns:
        plotly.graph_objects.Figure
    """
    import plotly.graph_objects as go

    has_label = "label" in points
    modes: list[tuple[str, str, np.ndarray | None]] = [("cluster", "cluster", points["cluster"].to_numpy())]
    if has_label:
        modes.append(("label", "label", points["label"].to_numpy()))
    modes.append(("anomaly score", "score", None))
    if "is_outlier" in points:
        modes.append(("outlier flag", "outlier", np.where(points["is_outlier"].to_numpy(), "outlier", "inlier")))
    custom = [
        points["node"].astype(str).to_numpy(),
        points["cluster"].to_numpy(),
        points["max_responsibility"].to_numpy(),
        points["anomaly_score"].to_numpy(),
    ]
    hover = (
        "node %{customdata[0]}<br>cluster %{customdata[1]}<br>responsibility %{customdata[2]:.4f}"
        "<br>anomaly score %{customdata[3]:.3f}"
    )
    if has_label:
        custom.append(points["label"].to_numpy())
        hover += "<br>label %{customdata[4]}"
    scatter = go.Scattergl if len(points) > svg_points else go.Scatter
    customdata = np.stack([np.asarray(c, dtype=object) for c in custom], axis=1)
    colourings, legends = [], []  # per mode: the points' colours, and its legend traces
    for _, key, values in modes:
        if values is None:
            colourings.append(points["anomaly_score"].to_numpy())
            legends.append([])
            continue
        cats, colours = _categories(values)
        colourings.append(np.array([colours[v] for v in values], dtype=object))
        legends.append([(f"{key} {c}" if key != "outlier" else str(c), colours[c]) for c in cats])
    fig = go.Figure()
    fig.add_trace(
        scatter(
            x=points["pc1"].to_numpy(),
            y=points["pc2"].to_numpy(),
            mode="markers",
            name="nodes",
            showlegend=False,
            customdata=customdata,
            hovertemplate=hover + "<extra></extra>",
            marker={
                "size": 5 if len(points) <= 5000 else 3,
                "color": colourings[0],
                "opacity": 0.85,
                "line": {"width": 0},
                "colorscale": "Viridis",
                "colorbar": {"title": "anomaly score"},
                "showscale": False,
            },
        )
    )
    owner = []  # which mode each legend trace belongs to
    for m, entries in enumerate(legends):
        for name, colour in entries:
            fig.add_trace(
                go.Scatter(
                    x=[None],
                    y=[None],
                    mode="markers",
                    name=name,
                    marker={"size": 9, "color": colour},
                    visible=m == 0,
                    hoverinfo="skip",
                    showlegend=True,
                )
            )
            owner.append(m)
    buttons = []
    for m, (label, key, _) in enumerate(modes):
        colour = [colourings[m]] + [None] * len(owner)
        visible = [True] + [o == m for o in owner]
        update = {"visible": visible, "marker.showscale": [key == "score"] + [False] * len(owner)}
        update["marker.color"] = [colour[0]] + [legends[o][owner[:i].count(o)][1] for i, o in enumerate(owner)]
        buttons.append({"label": f"colour by {label}", "method": "update", "args": [update]})
    ratio = points.attrs.get("explained_variance_ratio") or [float("nan"), float("nan")]
    fig.update_layout(
        template=TEMPLATE,
        title=title,
        height=620,
        hovermode="closest",
        legend={"itemsizing": "constant"},
        xaxis={"title": f"PC 1 ({100 * ratio[0]:.1f}% of variance)", "zeroline": False},
        yaxis={"title": f"PC 2 ({100 * ratio[1]:.1f}% of variance)", "zeroline": False},
        updatemenus=[
            {
                "type": "buttons",
                "direction": "right",
                "buttons": buttons,
                "x": 0,
                "xanchor": "left",
                "y": 1.02,
                "yanchor": "bottom",
                "showactive": True,
                "pad": {"b": 4},
            }
        ],
        margin={"t": 90 if title else 60},
    )
    return fig


def share_heatmap(table: pd.DataFrame, *, normalise: str, title: str, x_title: str, y_title: str):
    """A heatmap of a count table, coloured by shares (``normalise="rows"`` or ``"columns"``),
    the counts written in the cells when the table is small (at most 30 x 30)."""
    import plotly.graph_objects as go

    counts = table.to_numpy(dtype=np.float64)
    axis = 1 if normalise == "rows" else 0
    share = counts / np.maximum(counts.sum(axis=axis, keepdims=True), 1)
    small = counts.shape[0] <= 30 and counts.shape[1] <= 30
    fig = go.Figure(
        go.Heatmap(
            z=share,
            x=[str(c) for c in table.columns],
            y=[str(i) for i in table.index],
            colorscale="Blues",
            zmin=0,
            zmax=1,
            text=counts.astype(np.int64) if small else None,
            texttemplate="%{text}" if small else None,
            hovertemplate=f"{y_title} %{{y}}<br>{x_title} %{{x}}<br>share %{{z:.3f}}<extra></extra>",
            colorbar={"title": "share"},
        )
    )
    fig.update_layout(
        template=TEMPLATE,
        title=title,
        height=max(320, 28 * counts.shape[0] + 140),
        xaxis={"title": x_title, "type": "category"},
        yaxis={"title": y_title, "type": "category", "autorange": "reversed"},
    )
    return fig


def bic_curve(rows: Sequence[dict], chosen: int | None = None):
    """BIC against K from the estimator's ``bic_table_`` rows (``k``, ``bic``), the chosen K marked."""
    import plotly.graph_objects as go

    frame = pd.DataFrame(list(rows))
    fig = go.Figure(go.Scatter(x=frame["k"], y=frame["bic"], mode="lines+markers", name="BIC"))
    if chosen is not None:
        fig.add_vline(x=chosen, line_dash="dash", line_color="firebrick", annotation_text=f"chosen K={chosen}")
    fig.update_layout(
        template=TEMPLATE,
        title="BIC by number of components (lower is better)",
        height=360,
        xaxis_title="K",
        yaxis_title="BIC",
    )
    return fig


HISTORY_PANELS = (
    ("modularity", ("gmm/modularity", "modularity")),
    ("log-likelihood per node", ("gmm/log_likelihood", "log_likelihood")),
    ("silhouette", ("gmm/silhouette", "silhouette")),
    ("agreement with labels", ("nmi", "ari", "acc")),
)


def history_curves(history: Sequence[dict]):
    """One panel per quantity found in the estimator's ``history_`` rows (one row per refit,
    ``epoch`` on x): modularity, log-likelihood, silhouette, and NMI / ARI / ACC when present.
    Returns None when no row holds any of them."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    frame = pd.DataFrame(list(history))
    if frame.empty:
        return None
    x = frame["epoch"] if "epoch" in frame else pd.Series(range(len(frame)))
    panels = [(title, [k for k in keys if k in frame and frame[k].notna().any()]) for title, keys in HISTORY_PANELS]
    panels = [(title, keys) for title, keys in panels if keys]
    if not panels:
        return None
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[t for t, _ in panels])
    for col, (_, keys) in enumerate(panels, start=1):
        for key in keys:
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=frame[key],
                    mode="lines+markers",
                    name=key.split("/")[-1],
                    marker={"size": 4},
                    showlegend=len(keys) > 1,
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(title_text="epoch", row=1, col=col)
    fig.update_layout(template=TEMPLATE, title="Training history (one point per EM refit)", height=360)
    return fig
