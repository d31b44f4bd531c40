"""Datasets: mirror copy, PyG loaders on raw-format fixtures, BOND files, input validation."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Data

from gnngmm.data import GraphDataModule, load_dataset
from gnngmm.data.datasets import validate_graph
from gnngmm.data.transforms import normalize_features
from gnngmm.errors import InputError
from gnngmm.train import train
from raw_fixtures import graph, write_planetoid


def test_mirror_files_are_copied_into_a_writable_data_dir(tmp_path, mirror):
    data = load_dataset("cora", tmp_path / "data", mirror)
    raw = tmp_path / "data" / "planetoid" / "Cora" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(p.name for p in (mirror / "planetoid/Cora/raw").iterdir())
    assert all(p.stat().st_mode & 0o200 for p in raw.iterdir()), "copies are writable"
    assert (tmp_path / "data" / "planetoid" / "Cora" / "processed").is_dir()
    assert data.num_nodes == 560 and int(data.y.max()) == 6


@pytest.mark.parametrize(
    "name, nodes, classes",
    [("pubmed", 560, 3), ("citeseer", 560, 6), ("reddit", 400, 41), ("photo", 200, 8), ("cs", 300, 15), ("physics", 200, 5)],
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


def test_isolated_nodes_get_clustered(make_cfg, tmp_path):
    data = graph(560, 7, seed=1)
    isolated = torch.arange(500, 520)
    keep = ~(torch.isin(data.edge_index[0], isolated) | torch.isin(data.edge_index[1], isolated))
    data.edge_index = data.edge_index[:, keep]
    iso_mirror = tmp_path / "iso"
    write_planetoid(iso_mirror / "planetoid", "Cora", data)
    metrics = train(make_cfg(f"paths.mirror_dir={iso_mirror}", f"paths.data_dir={tmp_path / 'iso-data'}"))
    assert sum(metrics["cluster_sizes"]) == 560
    assert metrics["nmi"] > 0.5
    assert torch.isfinite(torch.tensor(metrics["gmm_log_likelihood"]))


def test_feature_normalisations():
    x = torch.tensor([[1.0, 3.0], [0.0, 0.0], [2.0, 2.0]])
    torch.testing.assert_close(normalize_features(x, "row"), torch.tensor([[0.25, 0.75], [0.0, 0.0], [0.5, 0.5]]))
    standard = normalize_features(x, "standard")
    torch.testing.assert_close(standard.mean(0), torch.zeros(2), atol=1e-6, rtol=0)
    torch.testing.assert_close(normalize_features(x, "l2").norm(dim=1), torch.tensor([1.0, 0.0, 1.0]))
    with pytest.raises(InputError, match="'cube'"):
        normalize_features(x, "cube")


def test_datamodule_full_batch_yields_the_whole_graph(tmp_path, mirror):
    dm = GraphDataModule("cora", str(tmp_path / "d"), str(mirror), normalize_features="row")
    dm.setup()
    batches = list(dm.train_dataloader())
    assert len(batches) == 1 and batches[0].num_nodes == 560
    sums = batches[0].x.sum(1)
    assert int((sums > 0).sum()) > 500
    torch.testing.assert_close(sums[sums > 0], torch.ones(int((sums > 0).sum())))  # row-normalised


def test_stored_self_loops_are_removed(tmp_path):
    data = graph(60, 3, seed=2)
    loops = torch.arange(60).repeat(2, 1)  # BOND reddit stores one on every node
    with_loops = Data(x=data.x, edge_index=torch.cat([data.edge_index, loops], dim=1), num_nodes=60)
    dm = GraphDataModule("toy", str(tmp_path), data=with_loops)
    dm.setup()
    ei = dm.data.edge_index
    assert not bool((ei[0] == ei[1]).any())
    assert set(map(tuple, ei.t().tolist())) == set(map(tuple, data.edge_index.t().tolist()))


def test_a_truncated_processed_file_is_rebuilt_from_the_raw_files(tmp_path, mirror, caplog):
    import logging

    load_dataset("cora", tmp_path / "data", mirror)
    (processed,) = [p for p in (tmp_path / "data" / "planetoid" / "Cora" / "processed").iterdir() if p.name.startswith("data")]
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
