"""One's own graph from files: an edge list, node features, optional labels.

* **features**: CSV / TSV (or ``.txt``, whitespace) / Parquet whose first column is the node id
  and the others the features; the ids (of any kind: numbers, strings) fix the node order and are
  kept as ``data.node_ids``. Or NumPy ``.npy`` / ``.npz`` (an (N, F) array): row i is node i, and
  the edge list must then use the integers 0..N-1.
* **edges**: CSV / TSV / ``.txt`` / Parquet, the first two columns are source and target (further
  columns, e.g. weights, are ignored); or ``.npy`` / ``.npz`` integer arrays of shape (E, 2) or (2, E).
* **labels** (optional, for reporting only): a node-id column and a label column (labels of any
  kind, mapped to 0..C-1 in sorted order; nodes without a label get -1), or ``.npy`` row i.

A text file's first row is a header when it does not name nodes (edges, labels) or holds
non-numbers among the features. Self-loops and duplicate edges are dropped and counted in the log.
Every problem (a missing file, an edge naming a node that has no feature row, a NaN or inf
feature) is one :class:`InputError` line naming the file, the row and the value.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data

from gnngmm.errors import InputError

log = logging.getLogger(__name__)

TEXT = (".csv", ".tsv", ".txt")
NUMPY = (".npy", ".npz")
PARQUET = (".parquet", ".pq")


def read_graph(edges: str | Path, features: str | Path, labels: str | Path | None = None) -> Data:
    """A PyG ``Data`` (``x``, ``edge_index``, ``node_ids`` when the features name their nodes,
    ``feature_names`` when their file has a header, and ``y`` when labels are given) read from
    files; see the module docstring for the formats."""
    x, ids, names = read_features(_existing(features, "data.features"))
    index = {node: i for i, node in enumerate(ids)} if ids is not None else None
    edge_index = read_edges(_existing(edges, "data.edges"), index, x.shape[0])
    data = Data(x=x, edge_index=edge_index, num_nodes=x.shape[0])
    if ids is not None:
        data.node_ids = ids
    if names is not None:
        data.feature_names = names
    if labels is not None:
        data.y = read_labels(_existing(labels, "data.labels"), index, x.shape[0])
    log.info(
        "read %d nodes with %d features and %d edges from %s, %s",
        x.shape[0],
        x.shape[1],
        edge_index.shape[1],
        edges,
        features,
    )
    return data


def _existing(path, key: str) -> Path:
    if path is None or str(path) in ("", "???"):
        raise InputError(f"{key} is required: give the path of the file, e.g. {key}=path/to/file.csv")
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"{key}={path}: file not found")
    if path.suffix.lower() not in TEXT + NUMPY + PARQUET:
        raise InputError(f"{key}={path}: unknown format {path.suffix!r}; use .csv, .tsv, .txt, .parquet, .npy or .npz")
    return path


# ---------------------------------------------------------------------- raw readers
def _text_rows(path: Path) -> list[list[str]]:
    suffix = path.suffix.lower()
    with open(path, newline="") as f:
        if suffix == ".txt":
            return [line.split() for line in f if line.strip()]
        return [row for row in csv.reader(f, delimiter="\t" if suffix == ".tsv" else ",") if row]


def _parquet_columns(path: Path) -> list[list]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(
            f"{path}: reading Parquet needs pyarrow: pip install pyarrow (or pip install 'gnngmm[export]')"
        ) from None
    table = pq.read_table(path)
    return [table.column(i).to_pylist() for i in range(table.num_columns)]


def _parquet_names(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    return list(pq.read_schema(path).names)


def _numpy_array(path: Path, names: tuple[str, ...]) -> np.ndarray:
    if path.suffix.lower() == ".npy":
        return np.load(path, allow_pickle=False)
    with np.load(path, allow_pickle=False) as archive:
        key = next((n for n in names if n in archive.files), archive.files[0] if archive.files else None)
        if key is None:
            raise InputError(f"{path}: the .npz archive is empty")
        return archive[key]


def _is_number(value) -> bool:
    """Parses as a float (nan and inf included: those are reported as bad values, not headers)."""
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


# ---------------------------------------------------------------------- features
def read_features(path: Path) -> tuple[torch.Tensor, list | None, list[str] | None]:
    """``(x, node_ids, feature_names)``: ``node_ids`` is None for NumPy files (row i is node i),
    ``feature_names`` the header's column names after the id column (None without a header)."""
    suffix = path.suffix.lower()
    if suffix in NUMPY:
        array = _numpy_array(path, ("x", "features"))
        if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
            raise InputError(
                f"{path}: features must be a 2-D numeric array (nodes x features), got {array.dtype} {array.shape}"
            )
        x, ids, columns, first_row = torch.as_tensor(array, dtype=torch.float32), None, None, 0
    else:
        if suffix in PARQUET:
            cols, columns = _parquet_columns(path), _parquet_names(path)
            rows_ids, values, first_row = cols[0], list(zip(*cols[1:])), 0
        else:
            rows = _text_rows(path)
            columns = None
            if rows and not all(_is_number(v) for v in rows[0][1:]):
                columns, rows = rows[0], rows[1:]
            first_row = 2 if columns else 1
            rows_ids, values = [r[0] for r in rows], [r[1:] for r in rows]
        if not rows_ids or not values or not len(values[0]):
            raise InputError(f"{path}: need a node-id column and at least one feature column, found none")
        widths = {len(v) for v in values}
        if len(widths) > 1:
            bad = next(i for i, v in enumerate(values) if len(v) != len(values[0]))
            raise InputError(
                f"{path}: row {bad + first_row} has {len(values[bad])} features, the first row {len(values[0])}"
            )
        try:
            x = torch.tensor(np.asarray(values, dtype=np.float64), dtype=torch.float32)
        except (TypeError, ValueError):
            bad = next((i, j) for i, v in enumerate(values) for j, c in enumerate(v) if not _is_number(c))
            raise InputError(
                f"{path}: row {bad[0] + first_row}, feature column {bad[1] + 2} is not a number: "
                f"{values[bad[0]][bad[1]]!r}"
            ) from None
        ids = [str(i) for i in rows_ids]
        if len(set(ids)) != len(ids):
            seen, dup = set(), None
            for i in ids:
                if i in seen:
                    dup = i
                    break
                seen.add(i)
            raise InputError(f"{path}: node id {dup!r} has more than one feature row")
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        row, col = (int(v) for v in torch.nonzero(bad)[0])
        node = f" (node {ids[row]!r})" if ids is not None else ""
        name = f" {columns[col + 1]!r}" if columns else ""
        raise InputError(
            f"{path}: feature row {row}{node}, column {col}{name} is {float(x[row, col])}; "
            f"every feature must be finite: clean or impute it first ({int(bad.sum())} such values)"
        )
    return x, ids, [str(c) for c in columns[1:]] if columns else None


# ---------------------------------------------------------------------- edges
def read_edges(path: Path, index: dict | None, num_nodes: int) -> torch.Tensor:
    """(2, E) long tensor of node positions, without self-loops or duplicate (unordered) pairs."""
    suffix = path.suffix.lower()
    if suffix in NUMPY:
        array = _numpy_array(path, ("edge_index", "edges"))
        if array.ndim != 2 or 2 not in array.shape or not np.issubdtype(array.dtype, np.integer):
            raise InputError(
                f"{path}: edges must be an integer array of shape (E, 2) or (2, E), got {array.dtype} {array.shape}"
            )
        pairs = array if array.shape[1] == 2 and (array.shape[0] != 2 or array.shape[1] != 2) else array.T
        src, dst = [str(v) for v in pairs[:, 0].tolist()], [str(v) for v in pairs[:, 1].tolist()]
        first_row = 0
    else:
        if suffix in PARQUET:
            cols = _parquet_columns(path)
            if len(cols) < 2:
                raise InputError(f"{path}: an edge list needs two columns (source, target)")
            src, dst, first_row = [str(v) for v in cols[0]], [str(v) for v in cols[1]], 0
        else:
            rows = _text_rows(path)
            short = next((i for i, r in enumerate(rows) if len(r) < 2), None)
            if short is not None:
                raise InputError(
                    f"{path}: row {short + 1} has {len(rows[short])} column(s); an edge needs source and target"
                )
            first_row = 1
            if rows and _looks_like_header(rows[0][:2], index):
                log.info("%s: first row %s read as a header", path, rows[0][:2])
                rows, first_row = rows[1:], 2
            src, dst = [r[0].strip() for r in rows], [r[1].strip() for r in rows]
    positions = []
    for column in (src, dst):
        positions.append(torch.as_tensor(_positions(column, index, num_nodes, path, first_row), dtype=torch.long))
    edge_index = torch.stack(positions) if positions[0].numel() else torch.zeros(2, 0, dtype=torch.long)
    return _drop_loops_and_duplicates(edge_index, num_nodes, path)


def _looks_like_header(first: list[str], index: dict | None) -> bool:
    if index is None:
        return not all(v.strip().lstrip("-").isdigit() for v in first)
    return not any(v.strip() in index for v in first)


def _positions(column: list[str], index: dict | None, num_nodes: int, path: Path, first_row: int) -> list[int]:
    if index is not None:
        out = []
        for i, node in enumerate(column):
            pos = index.get(node)
            if pos is None:
                raise InputError(
                    f"{path}: row {i + first_row} names node {node!r}, which has no row in the features file; "
                    "every node of an edge needs features"
                )
            out.append(pos)
        return out
    out = []
    for i, node in enumerate(column):
        try:
            pos = int(node)
        except ValueError:
            raise InputError(
                f"{path}: row {i + first_row} names node {node!r}; with NumPy features (row i is node i) "
                "edges must use the integers 0..N-1 (or give the features as CSV/Parquet with a node-id column)"
            ) from None
        if not 0 <= pos < num_nodes:
            raise InputError(
                f"{path}: row {i + first_row} names node {pos}, but the features have {num_nodes} rows "
                f"(0..{num_nodes - 1})"
            )
        out.append(pos)
    return out


def _drop_loops_and_duplicates(edge_index: torch.Tensor, num_nodes: int, path: Path) -> torch.Tensor:
    loops = edge_index[0] == edge_index[1]
    edge_index = edge_index[:, ~loops]
    if not edge_index.numel():
        return edge_index
    low, high = edge_index.min(0).values, edge_index.max(0).values
    key = low * num_nodes + high  # an unordered pair: (a, b) and (b, a) are one undirected edge
    _, first = np.unique(key.numpy(), return_index=True)
    keep = torch.as_tensor(np.sort(first), dtype=torch.long)
    duplicates = edge_index.shape[1] - keep.numel()
    if int(loops.sum()) or duplicates:
        log.info("%s: dropped %d self-loop(s) and %d duplicate edge(s)", path, int(loops.sum()), duplicates)
    return edge_index[:, keep]


# ---------------------------------------------------------------------- labels
def read_labels(path: Path, index: dict | None, num_nodes: int) -> torch.Tensor:
    """(N,) long tensor of label indices, -1 for nodes the file does not label."""
    suffix = path.suffix.lower()
    if suffix in NUMPY:
        if index is not None:
            raise InputError(
                f"{path}: NumPy labels (row i is node i) need NumPy features; with named nodes give "
                "the labels as CSV/Parquet with a node-id column"
            )
        values = _numpy_array(path, ("y", "labels")).reshape(-1).tolist()
        if len(values) != num_nodes:
            raise InputError(f"{path}: {len(values)} labels for {num_nodes} nodes")
        nodes, first_row = [str(i) for i in range(num_nodes)], 0
    else:
        if suffix in PARQUET:
            cols = _parquet_columns(path)
            nodes, values, first_row = [str(v) for v in cols[0]], cols[1], 0
        else:
            rows = _text_rows(path)
            first_row = 1
            if rows and _looks_like_header(rows[0][:1], index):
                rows, first_row = rows[1:], 2
            if any(len(r) < 2 for r in rows):
                raise InputError(f"{path}: labels need two columns, node id and label")
            nodes, values = [r[0].strip() for r in rows], [r[1].strip() for r in rows]
    positions = _positions(nodes, index, num_nodes, path, first_row)
    classes = sorted(
        {str(v) for v in values},
        key=lambda v: (not v.lstrip("-").isdigit(), int(v) if v.lstrip("-").isdigit() else 0, v),
    )
    code = {c: i for i, c in enumerate(classes)}
    y = torch.full((num_nodes,), -1, dtype=torch.long)
    y[torch.as_tensor(positions, dtype=torch.long)] = torch.as_tensor([code[str(v)] for v in values], dtype=torch.long)
    unlabelled = int((y < 0).sum())
    if unlabelled:
        log.info("%s: %d node(s) have no label; they are left out of NMI/ARI/ACC", path, unlabelled)
    return y
