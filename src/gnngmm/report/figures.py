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


def _categories(values: np.ndarray) -> tuple[list, np.ndarray]:
    """The sorted distinct values and each value's position among them."""
    cats, codes = np.unique(np.asarray(values), return_inverse=True)
    return cats.tolist(), codes.astype(np.float64)


def _stepped(colours: list[str]) -> list:
    """A colour scale that gives code ``i`` (of ``len(colours)``, with ``cmin=-0.5`` and
    ``cmax=len - 0.5``) the flat colour ``colours[i]``: categories drawn from one numeric array."""
    count = len(colours)
    scale = []
    for i, colour in enumerate(colours):
        scale += [[i / count, colour], [(i + 1) / count, colour]]
    return scale


def _colour_modes(points: pd.DataFrame) -> list[tuple[str, str, np.ndarray | None]]:
    """The map's colourings, as ``(button label, key, values)``: ``cluster``, ``label`` (when the
    table has it), ``score`` (values None: the continuous anomaly score), ``outlier`` (when it has
    ``is_outlier``)."""
    modes: list[tuple[str, str, np.ndarray | None]] = [("cluster", "cluster", points["cluster"].to_numpy())]
    if "label" in points:
        modes.append(("label", "label", points["label"].to_numpy()))
    modes.append(("anomaly score", "score", None))
    if "is_outlier" in points:
        modes.append(("outlier flag", "outlier", points["is_outlier"].to_numpy().astype(bool)))
    return modes


def _hover(points: pd.DataFrame) -> tuple[np.ndarray, str, list | None]:
    """``(customdata (n, 4 or 5) float64, hover template, text)``: node id (numeric ids in
    ``customdata``, others as ``text``), cluster, responsibility, anomaly score (and label)."""
    nodes = points["node"]
    numeric_ids = pd.api.types.is_integer_dtype(nodes)
    custom = [
        nodes.to_numpy() if numeric_ids else points["index"].to_numpy(),
        points["cluster"].to_numpy(),
        points["max_responsibility"].to_numpy(),
        points["anomaly_score"].to_numpy(),
    ]
    hover = "node %{customdata[0]}" if numeric_ids else "node %{text}"
    hover += "<br>cluster %{customdata[1]}<br>responsibility %{customdata[2]:.4f}<br>anomaly score %{customdata[3]:.3f}"
    if "label" in points:
        custom.append(points["label"].to_numpy())
        hover += "<br>label %{customdata[4]}"
    customdata = np.stack([np.asarray(c, dtype=np.float64) for c in custom], axis=1)
    return customdata, hover, None if numeric_ids else nodes.astype(str).tolist()


def _mode_style(key: str, values: np.ndarray | None, score: np.ndarray) -> tuple[dict, list[tuple[str, str]]]:
    """One colouring's marker settings and its legend entries ``(name, colour)``: the score on a
    continuous scale with a colour bar (no legend), categories as codes on a stepped scale."""
    if values is None:
        low, high = (float(score.min()), float(score.max())) if score.size else (0.0, 1.0)
        return {"color": score, "colorscale": "Viridis", "cmin": low, "cmax": high, "showscale": True}, []
    cats, codes = _categories(values)
    colours = palette(len(cats))
    if key == "outlier":
        colours = ["#9aa5b1", "#d62728"][: len(cats)] if cats != [True] else ["#d62728"]
        names = ["outlier" if c else "inlier" for c in cats]
    else:
        names = [f"{key} {c}" for c in cats]
    style = {"color": codes, "colorscale": _stepped(colours), "cmin": -0.5, "cmax": len(cats) - 0.5, "showscale": False}
    return style, list(zip(names, colours))


def _legend_traces(legends: list[list[tuple[str, str]]]) -> tuple[list, list[int]]:
    """Legend-only traces for every colouring's entries (the first colouring's visible), and the
    colouring each belongs to."""
    import plotly.graph_objects as go

    traces, owner = [], []
    for m, entries in enumerate(legends):
        for name, colour in entries:
            marker = {"size": 9, "color": colour}
            traces.append(
                go.Scatter(
                    x=[None],
                    y=[None],
                    mode="markers",
                    name=name,
                    marker=marker,
                    visible=m == 0,
                    hoverinfo="skip",
                    showlegend=True,
                )
            )
            owner.append(m)
    return traces, owner


def _buttons(modes: list, styles: list[dict], legends: list, owner: list[int]) -> list[dict]:
    """One button per colouring: restyles the node trace and shows that colouring's legend."""
    legend_colours = [colour for entries in legends for _, colour in entries]
    buttons = []
    for m, (label, _, _) in enumerate(modes):
        style = styles[m]
        update = {
            "visible": [True] + [o == m for o in owner],
            "marker.color": [style["color"], *legend_colours],
            "marker.colorscale": [style["colorscale"]] + [None] * len(owner),
            "marker.cmin": [style["cmin"]] + [None] * len(owner),
            "marker.cmax": [style["cmax"]] + [None] * len(owner),
            "marker.showscale": [style["showscale"]] + [False] * len(owner),
        }
        buttons.append({"label": f"colour by {label}", "method": "update", "args": [update]})
    return buttons


def _map_layout(fig, points: pd.DataFrame, title: str | None, buttons: list[dict]) -> None:
    """The map's axes (each PC's share of the variance), legend and buttons above the plot."""
    ratio = points.attrs.get("explained_variance_ratio") or [float("nan"), float("nan")]
    menu = {"type": "buttons", "direction": "right", "buttons": buttons, "x": 0, "xanchor": "left", "y": 1.02}
    menu.update(yanchor="bottom", showactive=True, pad={"b": 4})
    fig.update_layout(
        template=TEMPLATE,
        title=title,
        height=620,
        hovermode="closest",
        legend={"itemsizing": "constant"},
        xaxis={"title": f"PC 1 ({100 * ratio[0]:.1f}% of variance)", "zeroline": False},
        yaxis={"title": f"PC 2 ({100 * ratio[1]:.1f}% of variance)", "zeroline": False},
        updatemenus=[menu],
        margin={"t": 90 if title else 60},
    )


def embedding_map(points: pd.DataFrame, *, title: str | None = None, svg_points: int = SVG_POINTS):
    """The interactive 2-D map of :func:`gnngmm.explain.embedding_map`'s table.

    One trace holds every sampled node (trace 0; SVG up to ``svg_points`` points, WebGL above),
    coloured through numeric arrays only (category codes on a stepped colour scale), so that
    10^4-10^5 points cost no per-point validation; legend-only traces name the colours of the mode
    shown. Buttons colour the points by ``cluster``, ``label`` (when the table has it), ``anomaly
    score`` (continuous, with a colour bar) or ``outlier`` flag (when it has ``is_outlier``);
    hovering shows node id, cluster, max responsibility, anomaly score (and label).

    Args:
        points (DataFrame): columns ``node``, ``pc1``, ``pc2``, ``cluster``,
            ``max_responsibility``, ``anomaly_score``; optional ``label``, ``is_outlier``.
        title (str, optional): the figure's title (default none: the buttons sit there).
        svg_points (int, optional): most points drawn as SVG (default 20,000).

    Returns:
        plotly.graph_objects.Figure
    """
    import plotly.graph_objects as go

    modes = _colour_modes(points)
    customdata, hover, text = _hover(points)
    score = points["anomaly_score"].to_numpy(dtype=np.float64)
    styles, legends = [], []  # per mode: the trace's marker settings, and its legend entries
    for _, key, values in modes:
        style, legend = _mode_style(key, values, score)
        styles.append(style)
        legends.append(legend)
    scatter = go.Scattergl if len(points) > svg_points else go.Scatter
    marker = {"size": 5 if len(points) <= 5000 else 3, "opacity": 0.85, "line": {"width": 0}}
    marker.update(colorbar={"title": {"text": "anomaly score"}}, **styles[0])
    fig = go.Figure()
    fig.add_trace(
        scatter(
            x=points["pc1"].to_numpy(),
            y=points["pc2"].to_numpy(),
            mode="markers",
            name="nodes",
            showlegend=False,
            customdata=customdata,
            text=text,
            hovertemplate=hover + "<extra></extra>",
            marker=marker,
        )
    )
    traces, owner = _legend_traces(legends)
    for trace in traces:
        fig.add_trace(trace)
    _map_layout(fig, points, title, _buttons(modes, styles, legends, owner))
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
