"""Datasets (gnngmm.data.datasets, gnngmm.data.bond): the mirror copy, PyG's and OGB's loaders on
raw-format fixtures, BOND files, and one clear line for a missing, broken or bad graph."""

from __future__ import annotations

import pytest
import torch
from raw_fixtures import graph, write_planetoid
from torch_geometric.data import Data

from gnngmm.data import GraphDataModule, load_dataset
from gnngmm.data.datasets import validate_graph
from gnngmm.errors import InputError
from gnngmm.train import train


def test_mirror_files_are_copied_into_a_writable_data_dir(tmp_path, mirror):
    data = load_dataset("cora", tmp_path / "data", mirror)
    raw = tmp_path / "data" / "planetoid" / "Cora" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(p.name for p in (mirror / "planetoid/Cora/raw").iterdir())
    assert all(p.stat().st_mode & 0o200 for p in raw.iterdir()), "copies are writable"
    assert (tmp_path / "data" / "planetoid" / "Cora" / "processed").is_dir()
    assert data.num_nodes == 560 and int(data.y.max()) == 6


@pytest.mark.parametrize(
    "name, nodes, classes",
    [
        ("pubmed", 560, 3),
        ("citeseer", 560, 6),
        ("reddit", 400, 41),
        ("photo", 200, 8),
        ("cs", 300, 15),
        ("physics", 200, 5),
    ],
)
def test_pyg_loaders_read_raw_format_fixtures(tmp_path, mirror, name, nodes, classes):
    data = load_dataset(name, tmp_path / "data", mirror)
    assert data.num_nodes == nodes
    assert int(data.y.max()) + 1 == classes
    assert data.is_undirected()


def test_bond_loader_marks_outliers(tmp_path, mirror):
    data = load_dataset("inj_cora", tmp_path / "data", mirror)
    assert data.outlier.dtype == torch.bool and int(data.outlier.sum()) == 20
    assert getattr(data, "y", None) is None, "no clustering labels on BOND graphs"


@pytest.mark.parametrize("name, classes", [("ogbn_arxiv", 40), ("ogbn_products", 47), ("ogbn_papers100m", 17)])
def test_ogb_loaders_read_raw_format_fixtures(tmp_path, mirror, name, classes):
    pytest.importorskip("ogb")
    from gnngmm.data import load_dataset

    data = load_dataset(name, tmp_path / "data", mirror)
    assert data.num_nodes == 400 and data.x.shape == (400, 16) and data.y.dtype == torch.long
    labelled = data.y >= 0
    if name == "ogbn_papers100m":  # NaN labels in OGB's file -> -1, skipped by the metrics
        assert 0.3 < float(labelled.double().mean()) < 0.7
    else:
        assert bool(labelled.all())
    assert int(data.y[labelled].max()) < classes
    dm = GraphDataModule(name, str(tmp_path / "data"), str(mirror))
    dm.setup()
    assert dm.data.is_undirected()  # arxiv / papers100M store one direction: symmetrised on setup


def test_unknown_dataset(tmp_path):
    with pytest.raises(InputError, match="unknown dataset 'imagenet'"):
        load_dataset("imagenet", tmp_path, None)


def test_nan_and_inf_features_are_named(tmp_path):
    data = graph(50, 2, seed=0)
    data.x[7, 3] = float("nan")
    data.x[9, 0] = float("inf")
    with pytest.raises(InputError, match=r"2 NaN/inf values in 2 nodes \(first: node 7\)"):
        validate_graph(data, "toy")


def test_empty_graph_is_rejected():
    with pytest.raises(InputError, match="has no nodes"):
        validate_graph(Data(x=torch.zeros(0, 3), edge_index=torch.zeros(2, 0, dtype=torch.long)), "empty")


def test_nan_features_stop_a_run_before_training(make_cfg, tmp_path, mirror):
    data = graph(560, 7, seed=0)
    data.x[3, 3] = float("nan")
    bad_mirror = tmp_path / "bad"
    write_planetoid(bad_mirror / "planetoid", "Cora", data)
    with pytest.raises(InputError, match="node 3"):
        train(make_cfg(f"paths.mirror_dir={bad_mirror}", f"paths.data_dir={tmp_path / 'bad-data'}"))


def test_a_truncated_processed_file_is_rebuilt_from_the_raw_files(tmp_path, mirror, caplog):
    import logging

    load_dataset("cora", tmp_path / "data", mirror)
    (processed,) = [
        p for p in (tmp_path / "data" / "planetoid" / "Cora" / "processed").iterdir() if p.name.startswith("data")
    ]
    processed.write_bytes(processed.read_bytes()[:100])
    with caplog.at_level(logging.WARNING, logger="gnngmm.data.datasets"):
        data = load_dataset("cora", tmp_path / "data", mirror)
    assert data.num_nodes == 560 and "rebuilding it from the raw files" in caplog.text


def test_a_read_only_data_dir_says_it_must_be_writable(tmp_path, mirror, monkeypatch):
    import errno
    import shutil

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(shutil, "copy2", read_only)
    with pytest.raises(InputError, match=r"paths.data_dir=.* must be writable \(Read-only file system\)"):
        load_dataset("cora", tmp_path / "ro", mirror)


def test_ogb_missing_files_name_the_directory(tmp_path, monkeypatch):
    pytest.importorskip("ogb")
    from gnngmm.data import load_dataset
    from gnngmm.errors import InputError

    with pytest.raises(InputError) as err:
        load_dataset("ogbn_arxiv", tmp_path / "data", tmp_path / "no-mirror", download=False)
    assert str(tmp_path / "data" / "ogb" / "ogbn_arxiv" / "raw") in str(err.value)

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    with pytest.raises(InputError) as err:
        load_dataset("ogbn_products", tmp_path / "data", tmp_path / "no-mirror")
    message = str(err.value)
    assert "ogbn_products" in message and str(tmp_path / "data" / "ogb" / "ogbn_products" / "raw") in message


def test_ogb_without_the_package_is_one_clear_line(tmp_path, mirror, monkeypatch):
    import builtins

    from gnngmm.data import load_dataset
    from gnngmm.errors import InputError

    real_import = builtins.__import__

    def no_ogb(name, *args, **kwargs):
        if name == "ogb" or name.startswith("ogb."):
            raise ImportError("No module named 'ogb'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ogb)
    with pytest.raises(InputError, match=r"pip install ogb") as err:
        load_dataset("ogbn_arxiv", tmp_path / "data", mirror)
    assert "\n" not in str(err.value)
