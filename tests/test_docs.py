"""The README's Python example and the quickstart notebook run as written (on the fixture Cora)."""

from __future__ import annotations

import os
import re
import shutil

import pytest
from conftest import ROOT


def readme_block(section: str) -> str:
    text = (ROOT / "README.md").read_text()
    body = text[text.index(f"## {section}") :]
    return re.search(r"```python\n(.*?)```", body, re.S).group(1)


@pytest.mark.slow  # a 220-epoch fit, as the README writes it (~5 s on an idle 2-core machine)
def test_use_it_from_python_section_runs(tmp_path, mirror, monkeypatch):
    shutil.copytree(mirror / "planetoid" / "Cora" / "raw", tmp_path / "data" / "planetoid" / "Cora" / "raw")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(readme_block("Use it from Python"), "README.md", "exec"), scope)
    model, data = scope["model"], scope["data"]
    assert scope["clusters"].shape == (data.num_nodes,) and scope["proba"].shape == (data.num_nodes, 7)
    assert scope["scores"].shape == (data.num_nodes,) and int(scope["outliers"].sum()) == data.num_nodes // 10
    assert (tmp_path / "cora.ckpt").exists() and model.epochs_ == 220


@pytest.mark.slow  # a subprocess / several processes
def test_quickstart_notebook_executes(tmp_path, mirror):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(ROOT / "notebooks" / "quickstart.ipynb", as_version=4)
    committed = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in committed), "committed with its outputs (plots show on GitHub)"
    assert "GNNGMM(" in "".join(cell.source for cell in nb.cells) and "HydraConfig" not in str(nb), (
        "the estimator, no Hydra"
    )
    os.environ["GNNGMM_NOTEBOOK_EPOCHS"] = "2"
    os.environ["GNNGMM_MIRROR_DIR"] = str(mirror)
    try:
        NotebookClient(
            nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
        ).execute()
    finally:
        os.environ.pop("GNNGMM_NOTEBOOK_EPOCHS")
        os.environ.pop("GNNGMM_MIRROR_DIR")
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)
