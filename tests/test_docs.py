"""The README's Python example runs as written (on the fixture Cora)."""

from __future__ import annotations

import re
import shutil

from conftest import ROOT


def readme_block(section: str) -> str:
    text = (ROOT / "README.md").read_text()
    body = text[text.index(f"## {section}"):]
    return re.search(r"```python\n(.*?)```", body, re.S).group(1)


import pytest


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
