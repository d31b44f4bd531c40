"""The HTML both pages share: the style sheet, the script that sorts a table by a clicked header,
tables and figures as page fragments, and the page around them (plotly.js inlined: the file opens
offline, without a server)."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 2em 3em; color: #222; }
h1 { margin-bottom: .2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
p.note { color: #555; max-width: 70em; }
dl.run { display: grid; grid-template-columns: max-content auto; gap: .1em 1em; font-size: 90%; }
dl.run dt { color: #666; } dl.run dd { margin: 0; font-family: ui-monospace, monospace; }
div.scroll { max-height: 34em; overflow: auto; border: 1px solid #ddd; margin: .5em 0; }
table.gnngmm { border-collapse: collapse; font-size: 85%; font-variant-numeric: tabular-nums; }
table.gnngmm th, table.gnngmm td { padding: .25em .6em; border-bottom: 1px solid #eee; text-align: right;
  white-space: nowrap; }
table.gnngmm th { position: sticky; top: 0; background: #f6f6f6; cursor: pointer; user-select: none; }
table.gnngmm tbody tr:hover { background: #fff7d6; }
nav a { margin-right: 1em; }
"""

# click a header to sort its table (numbers numerically), click again to reverse
SORT_SCRIPT = """
document.querySelectorAll("table.gnngmm").forEach(function (table) {
  table.querySelectorAll("thead th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var up = th.getAttribute("data-order") !== "asc";
      rows.sort(function (a, b) {
        var x = a.cells[col].textContent, y = b.cells[col].textContent;
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return up ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
      th.setAttribute("data-order", up ? "asc" : "desc");
    });
  });
});
"""


def _cell(value):
    """A list as its items joined by commas; any other value as it is."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return ", ".join(str(v) for v in value)
    return value


def html_table(frame: pd.DataFrame, table_id: str, *, index: bool = False, digits: int = 4) -> str:
    """A DataFrame as an HTML table (``<table id=table_id class="gnngmm">``, escaped), floats at
    ``digits`` significant digits, lists joined by commas, wrapped in a scrolling ``div``."""
    shown = frame.copy()
    for column in shown.columns:
        if shown[column].dtype == object:
            shown[column] = shown[column].map(_cell)
    text = shown.to_html(
        index=index,
        table_id=table_id,
        classes="gnngmm",
        border=0,
        escape=True,
        na_rep="",
        float_format=lambda v: f"{v:.{digits}g}",
    )
    return f'<div class="scroll">{text}</div>'


def figure_div(fig, div_id: str) -> str:
    """A plotly figure as a ``div`` (id ``div_id``) for a page that inlines plotly.js once."""
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config={"displaylogo": False})


def html_page(title: str, content: str, tail: str = "") -> str:
    """A whole page: ``title`` as its title and heading, then ``content``, the sorting script and
    ``tail`` (more scripts or data, each line ending in a newline).

    Args:
        title (str): plain text (escaped here).
        content (str): HTML.
        tail (str, optional): HTML after the sorting script (default none).

    Returns:
        str: the page, with plotly.js and the style sheet inlined.
    """
    from plotly.offline import get_plotlyjs

    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>{STYLE}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head>
<body>
<h1>{html.escape(title)}</h1>
{content}
<script type="text/javascript">{SORT_SCRIPT}</script>
{tail}</body>
</html>
"""
