"""Tiny datasets written in the exact raw formats PyG's classes (and BOND) read.

PubMed and Reddit cannot be downloaded here, so their real loaders are tested on these; the
pipeline tests use them too, so no test depends on the shared mirror being present.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from torch_geometric.data import Data

from gnngmm.data.synthetic import planted_partition

PLANETOID_STEMS = {"Cora": "cora", "CiteSeer": "citeseer", "PubMed": "pubmed"}


def graph(num_nodes=560, blocks=7, features=48, seed=0, **kw) -> Data:
    return planted_partition(
        num_nodes,
        blocks,
        features,
        avg_degree=6,
        homophily=0.9,
        feature_signal=2.0,
        binary_features=True,
        seed=seed,
        **kw,
    )


def write_planetoid(root: Path, name: str, data: Data, n_train: int = 20, n_test: int = 20) -> Path:
    """``ind.<name>.{x,tx,allx,y,ty,ally,graph,test.index}`` as in kimiyoung/planetoid.

    PyG needs ``num_nodes >= n_train + 500`` (its validation split is the next 500 nodes)."""
    stem = PLANETOID_STEMS[name]
    raw = Path(root) / name / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    n = data.num_nodes
    n_all = n - n_test
    x = data.x.numpy()
    onehot = np.eye(int(data.y.max()) + 1, dtype=np.float32)[data.y.numpy()]
    test_index = np.random.RandomState(0).permutation(np.arange(n_all, n))
    parts = {
        "x": sp.csr_matrix(x[:n_train]),
        "allx": sp.csr_matrix(x[:n_all]),
        "tx": sp.csr_matrix(x[test_index]),
        "y": onehot[:n_train],
        "ally": onehot[:n_all],
        "ty": onehot[test_index],
    }
    adjacency = defaultdict(list)
    for s, d in data.edge_index.t().tolist():
        adjacency[s].append(d)
    parts["graph"] = adjacency
    for part, value in parts.items():
        with open(raw / f"ind.{stem}.{part}", "wb") as f:
            pickle.dump(value, f, protocol=2)
    (raw / f"ind.{stem}.test.index").write_text("\n".join(str(i) for i in test_index) + "\n")
    return raw


def write_shchur_npz(path: Path, data: Data) -> Path:
    """The gnn-benchmark npz format read by PyG's ``Amazon`` and ``Coauthor``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    adj = sp.csr_matrix(
        (np.ones(data.edge_index.shape[1], dtype=np.float32), data.edge_index.numpy()), shape=(data.num_nodes,) * 2
    )
    attr = sp.csr_matrix(data.x.numpy())
    np.savez(
        path,
        adj_data=adj.data,
        adj_indices=adj.indices,
        adj_indptr=adj.indptr,
        adj_shape=adj.shape,
        attr_data=attr.data,
        attr_indices=attr.indices,
        attr_indptr=attr.indptr,
        attr_shape=attr.shape,
        labels=data.y.numpy(),
    )
    return path


def write_reddit(root: Path, data: Data) -> Path:
    """``reddit_data.npz`` (feature, label, node_types) + ``reddit_graph.npz`` (scipy COO)."""
    raw = Path(root) / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    node_types = np.random.RandomState(0).choice([1, 2, 3], size=data.num_nodes)
    np.savez(raw / "reddit_data.npz", feature=data.x.numpy(), label=data.y.numpy(), node_types=node_types)
    adj = sp.coo_matrix((np.ones(data.edge_index.shape[1]), data.edge_index.numpy()), shape=(data.num_nodes,) * 2)
    sp.save_npz(raw / "reddit_graph.npz", adj)
    return raw


def write_bond(path: Path, data: Data, outliers: torch.Tensor) -> Path:
    """A zip holding one ``torch.save``d PyG ``Data`` whose ``y`` is 1 for outliers."""
    path.parent.mkdir(parents=True, exist_ok=True)
    bond = Data(x=data.x, edge_index=data.edge_index, y=outliers.long())
    buffer = io.BytesIO()
    torch.save(bond, buffer)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(path.name.removesuffix(".zip"), buffer.getvalue())
    return path


def write_mirror(root: Path) -> Path:
    """A mirror laid out like ``../shared/datasets`` with every dataset the configs name."""
    root = Path(root)
    for i, (name, blocks) in enumerate([("Cora", 7), ("CiteSeer", 6), ("PubMed", 3)]):
        write_planetoid(root / "planetoid", name, graph(blocks=blocks, seed=i))
    write_shchur_npz(root / "amazon/Photo/raw/amazon_electronics_photo.npz", graph(200, 8, seed=3))
    write_shchur_npz(root / "amazon/Computers/raw/amazon_electronics_computers.npz", graph(200, 10, seed=4))
    write_shchur_npz(root / "coauthor/CS/raw/ms_academic_cs.npz", graph(300, 15, seed=5))
    write_shchur_npz(root / "coauthor/Physics/raw/ms_academic_phy.npz", graph(200, 5, seed=6))
    write_reddit(root / "reddit", graph(400, 41, features=32, seed=7))
    g = graph(300, 4, seed=8)
    outliers = torch.zeros(300, dtype=torch.bool)
    outliers[::15] = True
    for stem in ("inj_cora", "reddit", "inj_amazon", "weibo"):
        write_bond(root / "bond" / f"{stem}.pt.zip", g, outliers)
    return root


# --------------------------------------------------------------------------- OGB (issue 15)
OGB_DIRS = {"ogbn-arxiv": "ogbn_arxiv", "ogbn-products": "ogbn_products", "ogbn-papers100M": "ogbn_papers100M"}


def write_ogb(root: Path, name: str, data: Data, labelled: float = 1.0) -> Path:
    """``<root>/<ogbn_name>/raw`` as OGB's zip unpacks it: CSV.gz files (``edge``, ``node-feat``,
    ``node-label``, ``num-node-list``, ``num-edge-list``, ``node_year`` for arxiv) or, for
    papers100M (binary), ``data.npz`` + ``node-label.npz`` (NaN for unlabelled nodes). arxiv and
    papers100M store one direction per edge (OGB adds no inverse edges), products both."""
    import gzip

    raw = Path(root) / OGB_DIRS[name] / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    n = data.num_nodes
    edges = data.edge_index.numpy()
    if name != "ogbn-products":  # directed in OGB: keep one direction of each pair
        edges = edges[:, edges[0] < edges[1]]
    label = data.y.numpy().astype(np.float64 if name == "ogbn-papers100M" else np.int64).reshape(-1, 1)
    if labelled < 1.0:
        label[np.random.RandomState(0).rand(n) >= labelled] = np.nan
    year = np.random.RandomState(1).randint(1990, 2020, size=(n, 1))
    if name == "ogbn-papers100M":
        np.savez(
            raw / "data.npz",
            edge_index=edges,
            node_feat=data.x.numpy().astype(np.float16),
            node_year=year,
            num_nodes_list=np.array([n]),
            num_edges_list=np.array([edges.shape[1]]),
        )
        np.savez(raw / "node-label.npz", node_label=label)
        return raw

    def csv(file, rows, fmt):
        with gzip.open(raw / f"{file}.csv.gz", "wt") as f:
            np.savetxt(f, rows, fmt=fmt, delimiter=",")

    csv("edge", edges.T, "%d")
    csv("node-feat", data.x.numpy(), "%.6f")
    csv("node-label", label, "%d")
    csv("num-node-list", np.array([[n]]), "%d")
    csv("num-edge-list", np.array([[edges.shape[1]]]), "%d")
    if name == "ogbn-arxiv":
        csv("node_year", year, "%d")
    return raw


def write_ogb_mirror(root: Path) -> Path:
    """The three OGB node-property graphs, tiny, under ``<root>/ogb`` (the data dir's layout)."""
    for i, (name, blocks) in enumerate([("ogbn-arxiv", 40), ("ogbn-products", 47), ("ogbn-papers100M", 17)]):
        g = planted_partition(400, blocks, 16, avg_degree=6, homophily=0.9, feature_signal=2.0, seed=20 + i)
        write_ogb(Path(root) / "ogb", name, g, labelled=0.5 if name == "ogbn-papers100M" else 1.0)
    return Path(root)


# The session mirror (conftest's ``mirror`` fixture) holds the OGB graphs too, so that every
# experiment config, ogbn_* included, runs in the tests. Appended rather than edited in place.
_write_mirror_without_ogb = write_mirror


def write_mirror(root: Path) -> Path:  # noqa: F811
    _write_mirror_without_ogb(root)
    return write_ogb_mirror(root)
