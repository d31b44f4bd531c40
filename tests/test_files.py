"""One's own graph from files (gnngmm.data.files): formats, id mapping, headers, and one clear line per problem."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from gnngmm.data.files import read_graph
from gnngmm.errors import InputError


def write(path, text):
    path.write_text(text)
    return path


@pytest.fixture
def csv_graph(tmp_path):
    features = write(tmp_path / "f.csv", "node,a,b\nx,1,0\ny,0,1\nz,1,1\nw,0.5,0.5\n")
    edges = write(tmp_path / "e.csv", "x,y\ny,z\nz,x\n")
    return features, edges


def test_string_ids_map_to_feature_order(csv_graph):
    features, edges = csv_graph
    data = read_graph(edges, features)
    assert data.node_ids == ["x", "y", "z", "w"] and data.num_nodes == 4
    torch.testing.assert_close(data.x, torch.tensor([[1.0, 0], [0, 1], [1, 1], [0.5, 0.5]]))
    assert sorted(map(tuple, data.edge_index.t().tolist())) == [(0, 1), (1, 2), (2, 0)]


def test_headers_whitespace_and_tsv_are_read(tmp_path, csv_graph):
    features, _ = csv_graph
    tsv = write(tmp_path / "e.tsv", "source\ttarget\tweight\nx\ty\t0.3\n")
    assert read_graph(tsv, features).edge_index.tolist() == [[0], [1]]
    txt = write(tmp_path / "e.txt", "x  y\n\nz w\n")
    assert read_graph(txt, features).edge_index.shape == (2, 2)


def test_self_loops_and_duplicates_are_dropped_and_counted(tmp_path, csv_graph, caplog):
    features, _ = csv_graph
    edges = write(tmp_path / "e.csv", "x,y\ny,x\nx,y\nz,z\ny,z\n")
    with caplog.at_level(logging.INFO, logger="gnngmm.data.files"):
        data = read_graph(edges, features)
    assert data.edge_index.tolist() == [[0, 1], [1, 2]]
    assert "dropped 1 self-loop(s) and 2 duplicate edge(s)" in caplog.text


def test_numpy_features_with_integer_edges_and_labels(tmp_path):
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "e.npz", edge_index=np.array([[0, 1, 2], [1, 2, 3]]))
    np.save(tmp_path / "y.npy", np.array(["b", "a", "b", "c"]))
    data = read_graph(tmp_path / "e.npz", tmp_path / "x.npy", tmp_path / "y.npy")
    assert getattr(data, "node_ids", None) is None
    assert data.edge_index.tolist() == [[0, 1, 2], [1, 2, 3]] and data.y.tolist() == [1, 0, 1, 2]
    np.save(tmp_path / "bad.npy", np.array([[0, 7]]))
    with pytest.raises(InputError, match="names node 7, but the features have 4 rows"):
        read_graph(tmp_path / "bad.npy", tmp_path / "x.npy")


def test_labels_by_node_id_leave_unlabelled_nodes_at_minus_one(tmp_path, csv_graph):
    features, edges = csv_graph
    labels = write(tmp_path / "l.csv", "node,label\nz,cat\nx,dog\n")
    assert read_graph(edges, features, labels).y.tolist() == [1, -1, 0, -1]


def test_parquet_files(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": [10, 20, 30], "f": [0.1, 0.2, 0.3]}), tmp_path / "f.parquet")
    pq.write_table(pa.table({"s": [10, 20], "t": [20, 30]}), tmp_path / "e.parquet")
    data = read_graph(tmp_path / "e.parquet", tmp_path / "f.parquet")
    assert data.node_ids == ["10", "20", "30"] and data.edge_index.tolist() == [[0, 1], [1, 2]]


@pytest.mark.parametrize(
    "edges, features, message",
    [
        ("x,y\n", None, r"data.features=.*nope.csv: file not found"),
        ("x,y\ny,q\n", "node,a\nx,1\ny,2\n", r"row 2 names node 'q', which has no row in the features file"),
        ("x,y\n", "node,a,b\nx,1,2\ny,nan,3\n", r"feature row 1 \(node 'y'\), column 0 'a' is nan"),
        ("x,y\n", "node,a\nx,1\ny,inf\n", r"feature row 1 \(node 'y'\), column 0 'a' is inf"),
        ("x,y\n", "node,a\nx,1\nx,2\n", r"node id 'x' has more than one feature row"),
        ("x\n", "node,a\nx,1\n", r"row 1 has 1 column\(s\)"),
    ],
)
def test_each_problem_is_one_clear_line(tmp_path, edges, features, message):
    e = write(tmp_path / "e.csv", edges)
    f = write(tmp_path / "f.csv", features) if features is not None else tmp_path / "nope.csv"
    with pytest.raises(InputError, match=message):
        read_graph(e, f)
