"""report.html and summary.html opened as a person would: in headless Chromium (selenium), from
the file, offline. Skipped, with the reason, where chromium, chromedriver or selenium are missing
(``tests/browser/install.sh`` installs them)."""

from __future__ import annotations

import json
import warnings

import pytest
from browser.chromium import chromium, console_errors, unavailable_reason
from test_explain import SMALL, K, fake_multirun, planted_graph

from gnngmm import GNNGMM
from gnngmm.explain import explain_model
from gnngmm.report import write_report

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason())),
]

MAP_POINTS = "var g = document.getElementById('map'); return g._fullData[0]._length;"
SVG_POINTS = "return document.querySelectorAll('#map .scatterlayer .trace')[0].querySelectorAll('path.point').length;"
MAP_TYPE = "return document.getElementById('map')._fullData[0].type;"


def rows(driver, table_id: str) -> int:
    return driver.execute_script(f"return document.querySelectorAll('#{table_id} tbody tr').length;")


@pytest.fixture(scope="module")
def driver():
    with chromium() as d:
        yield d


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A planted graph's report whose map is a sample (300 of 400 nodes): as SVG and as WebGL."""
    data, cliques, _ = planted_graph()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = GNNGMM(K, **SMALL).fit(data)
    tables = explain_model(model, data, labels=data.y, node_ids=cliques[:3].tolist(), max_points=300)
    out = tmp_path_factory.mktemp("report")
    metrics = {"dataset": "planted", "nmi": 0.9}
    svg = write_report(out / "report.html", tables, model, metrics=metrics)
    gl = write_report(out / "report_gl.html", tables, model, metrics=metrics, svg_points=0)
    return svg, gl, tables


def test_report_loads_without_errors_and_draws_the_sample(driver, report):
    svg, _, tables = report
    driver.get(svg.resolve().as_uri())
    assert console_errors(driver) == []
    assert driver.execute_script(MAP_TYPE) == "scatter"
    assert driver.execute_script(MAP_POINTS) == driver.execute_script(SVG_POINTS) == len(tables["map"]) == 300
    meta = json.loads(driver.execute_script("return document.getElementById('gnngmm-report-meta').textContent;"))
    assert meta["map_points"] == 300 and meta["clusters"] == K
    assert rows(driver, "table-clusters") == K and rows(driver, "table-edges") == K
    assert rows(driver, "table-contingency") == K
    assert rows(driver, "table-anomalies") == len(tables["anomalies"])
    for div in ("edges-heatmap", "contingency-heatmap", "history"):
        assert driver.execute_script(f"return document.getElementById('{div}')._fullData.length;") >= 1, div


def test_colour_buttons_and_sorting_work(driver, report):
    from selenium.webdriver.common.by import By

    svg, _, tables = report
    driver.get(svg.resolve().as_uri())
    buttons = driver.find_elements(By.CSS_SELECTOR, "#map .updatemenu-button")
    assert len(buttons) == 4  # cluster, label, anomaly score, outlier flag
    scale = []
    for button in buttons:
        button.click()
        scale.append(driver.execute_script("return document.getElementById('map')._fullData[0].marker.showscale;"))
        assert driver.execute_script(SVG_POINTS) == 300
    assert scale == [False, False, True, False]  # only the score has a colour bar
    header = driver.find_element(By.CSS_SELECTOR, "#table-clusters thead th:nth-child(2)")  # size
    header.click()
    sizes = driver.execute_script(
        "return Array.from(document.querySelectorAll('#table-clusters tbody tr td:nth-child(2)'))"
        ".map(td => parseFloat(td.textContent));"
    )
    assert sizes == sorted(tables["clusters"]["size"].tolist())
    assert console_errors(driver) == []


def test_report_map_by_webgl(driver, report):
    _, gl, tables = report
    driver.get(gl.resolve().as_uri())
    assert console_errors(driver) == []
    assert driver.execute_script(MAP_TYPE) == "scattergl"
    assert driver.execute_script(MAP_POINTS) == len(tables["map"])


def test_summary_page_loads_with_one_row_per_configuration(driver, tmp_path):
    from gnngmm.summary import summarize

    sweep = fake_multirun(tmp_path / "sweep")
    summarize(sweep)
    driver.get((sweep / "summary.html").resolve().as_uri())
    assert console_errors(driver) == []
    assert rows(driver, "table-summary") == 2
    points = driver.execute_script(
        "return document.getElementById('summary-figure')._fullData.filter(t => t.type === 'box').map(t => t._length);"
    )
    # 5 metrics (nmi, ari, acc, seconds, memory) x 2 configurations, each with its 3 seeds' points
    assert points == [3] * 10
    assert driver.execute_script("return document.querySelectorAll('#failures li').length;") == 1


def test_the_console_check_sees_a_javascript_error(driver, tmp_path):
    """The error check above is live: a page whose script fails is reported."""
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>no_such_function();</script></body></html>")
    driver.get(page.resolve().as_uri())
    assert any("no_such_function" in message for message in console_errors(driver))
