"""gnngmm.baselines.ms2cag: the operator equals the dense formula, the eigenvectors are the dense
ones, a planted partition is recovered, and the runner composes its settings."""

import importlib.util
import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gnngmm.baselines import kmeans_by_distance, ms2cag_embedding, ms2cag_labels
from gnngmm.baselines.ms2cag import PYAGC_SETTINGS, SmoothedGram, hop_weights
from gnngmm.data.synthetic import planted_partition
from gnngmm.errors import InputError
from gnngmm.metrics import clustering_metrics

ROOT = Path(__file__).resolve().parents[1]


def dense_reference(x, edge_index, hops, alpha, gamma):
    """The paper's matrices built densely: Z^, the modularity matrix M."""
    n = x.shape[0]
    a = torch.zeros(n, n, dtype=torch.float64)
    a[edge_index[0], edge_index[1]] = 1.0
    a = ((a + a.T) > 0).double()
    a.fill_diagonal_(1.0)
    p = a / a.sum(1, keepdim=True)
    xh = torch.nn.functional.normalize(x.double(), dim=1)
    z, h = torch.zeros_like(xh), xh
    for w in hop_weights(hops, alpha):
        z += w * h
        h = p @ h
    zh = torch.nn.functional.normalize(z, dim=1)
    gram = zh @ zh.T
    omega = gram.sum(1, keepdim=True)
    return zh, gram - gamma * omega @ omega.T / omega.sum()


def tiny_graph(seed=0, n=60, binary=True):
    return planted_partition(
        n, 3, 40, avg_degree=6, homophily=0.8, feature_signal=2.0, binary_features=binary, seed=seed
    )


def test_hop_weights_sum_to_one_and_grow_by_alpha():
    w = hop_weights(4, 1.5)
    assert len(w) == 5 and sum(w) == pytest.approx(1.0)
    assert all(b / a == pytest.approx(1.5) for a, b in itertools.pairwise(w))
    assert hop_weights(3, 1.0) == [0.25] * 4
    with pytest.raises(InputError):
        hop_weights(-1, 0.9)


@pytest.mark.parametrize("binary", [True, False])  # sparse bag-of-words and dense signed features
def test_operator_equals_the_dense_affinity(binary):
    data = tiny_graph(binary=binary)
    one_direction = data.edge_index[:, data.edge_index[0] < data.edge_index[1]]  # made undirected inside
    op = SmoothedGram(data.x, one_direction, hops=3, alpha=1.2, chunk=100)  # several column blocks
    zh, _ = dense_reference(data.x, data.edge_index, 3, 1.2, 1.0)
    y = torch.randn(data.num_nodes, 4)
    assert torch.allclose(op(y).double(), zh @ (zh.T @ y.double()), atol=1e-4)


def test_embedding_spans_the_top_eigenvectors_of_the_modularity_matrix():
    data = tiny_graph()
    vectors = ms2cag_embedding(data.x, data.edge_index, 3, hops=4, alpha=0.9, gamma=0.9, seed=1)
    _, m = dense_reference(data.x, data.edge_index, 4, 0.9, 0.9)
    values, exact = torch.linalg.eigh(m)
    assert values[0] > -1e-8  # positive semi-definite for gamma <= 1
    assert torch.allclose(vectors.T @ vectors, torch.eye(3, dtype=torch.float64), atol=1e-8)
    cosines = torch.linalg.svdvals(exact[:, -3:].T @ vectors)  # principal angles between subspaces
    assert float(cosines.min()) > 0.999


def test_labels_recover_a_planted_partition_and_repeat_with_the_seed():
    data = tiny_graph(n=300)
    labels, embedding = ms2cag_labels(data.x, data.edge_index, 3, seed=0, hops=2, return_embedding=True)
    assert labels.shape == (300,) and labels.dtype == torch.long and embedding.shape == (300, 3)
    assert clustering_metrics(data.y, labels)["nmi"] > 0.9
    assert torch.equal(labels, ms2cag_labels(data.x, data.edge_index, 3, seed=0, hops=2))
    inertia = ms2cag_labels(data.x, data.edge_index, 3, seed=0, hops=2, kmeans="inertia")
    assert clustering_metrics(data.y, inertia)["nmi"] > 0.9
    with pytest.raises(InputError, match="kmeans"):
        ms2cag_labels(data.x, data.edge_index, 3, kmeans="medoids")


def test_kmeans_by_distance_separates_blobs():
    g = torch.Generator().manual_seed(0)
    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    y = torch.arange(3).repeat_interleave(50)
    x = centers[y] + torch.randn(150, 2, generator=g)
    labels = kmeans_by_distance(x, 3, seed=3, n_init=3)
    assert clustering_metrics(y, labels)["ari"] == pytest.approx(1.0)
    assert torch.equal(labels, kmeans_by_distance(x, 3, seed=3, n_init=3))
    assert kmeans_by_distance(torch.ones(5, 2), 2).shape == (5,)  # fewer distinct rows than clusters


def test_bad_arguments_name_the_value():
    data = tiny_graph()
    with pytest.raises(InputError, match="gamma"):
        ms2cag_embedding(data.x, data.edge_index, 3, gamma=1.5)
    with pytest.raises(InputError, match="k must be"):
        ms2cag_embedding(data.x, data.edge_index, data.num_nodes)


def load_runner():
    spec = importlib.util.spec_from_file_location("ms2cag_runner", ROOT / "scripts" / "ms2cag.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_runner_settings_default_pyagc_and_overrides():
    runner = load_runner()
    assert runner.settings("cora", {})["hops"] == 10
    assert runner.settings("photo", {"settings": "pyagc"}) == {
        **PYAGC_SETTINGS["photo"],
        "n_iter": 20,
        "kmeans": "distance",
    }
    assert runner.settings("citeseer", {"settings": "pyagc"})["hops"] == 10  # PyAGC publishes none for it
    assert runner.settings("cora", {"hops": 3, "alpha": None})["hops"] == 3
    with pytest.raises(InputError):
        runner.settings("cora", {"settings": "tuned"})


def test_benchmark_runs_ms2cag_through_its_script(monkeypatch, tmp_path):
    spec = importlib.util.spec_from_file_location("benchmark", ROOT / "scripts" / "benchmark.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    calls = []

    def fake_run(cmd, **kw):
        calls.append(cmd)
        run_dir = Path(next(a for a in cmd if a.startswith("hydra.run.dir=")).split("=", 1)[1])
        run_dir.mkdir(parents=True)
        (run_dir / "metrics.json").write_text(json.dumps({"nmi": 0.5}))
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    row = bench.run_one("clustering", "cora", "ms2cag-pyagc", 0, tmp_path, 1)
    assert row["nmi"] == 0.5 and calls[0][1] == "scripts/ms2cag.py"
    assert "data=cora" in calls[0] and "+ms2cag.settings=pyagc" in calls[0] and "seed=0" in calls[0]
    assert "ms2cag" in bench.METHODS and "ms2cag-pyagc" in bench.ON_REQUEST


@pytest.mark.slow
def test_runner_end_to_end_on_a_planted_graph(tmp_path):
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "scripts/ms2cag.py",
        "data=planted",
        "data.planted.num_nodes=400",
        "num_threads=1",
        "logger=none",
        f"hydra.run.dir={out}",
    ]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "ms2cag" and metrics["k"] == 8 and 0 <= metrics["nmi"] <= 1
    assert torch.load(out / "labels.pt").shape == (400,)
