"""Named datasets through PyG's own classes, with an offline mirror and clear failures.

``paths.data_dir`` is laid out like ``../shared/datasets`` (``planetoid/Cora/raw/...``,
``amazon/Photo/raw/...``, ``coauthor/CS/raw/...``, ``reddit/raw/...``, ``bond/<file>.pt.zip``).
When the raw files are missing there and a mirror holding them exists, they are copied first
(PyG writes ``processed/`` next to ``raw/``, so the data dir must be writable; the mirror may be
read-only). Otherwise PyG downloads; when that fails too, the error names the dataset and every
directory tried.
"""

from __future__ import annotations

import errno
import logging
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from torch_geometric.data import Data

from gnngmm.errors import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset lives under the data dir and which loader reads it."""

    loader: str  # planetoid | amazon | coauthor | reddit | bond | ogb
    group: str  # first directory under the data dir
    name: str  # PyG name or BOND file stem
    raw_files: tuple[str, ...]

    @property
    def raw_relpath(self) -> Path:
        if self.loader == "reddit":
            return Path(self.group) / "raw"
        if self.loader == "bond":
            return Path(self.group)
        if self.loader == "ogb":  # ogb's own layout: <root>/ogbn_arxiv/raw
            return Path(self.group) / self.name.replace("-", "_") / "raw"
        return Path(self.group) / self.name / "raw"


def _planetoid(name: str) -> DatasetSpec:
    stem = name.lower()
    files = tuple(f"ind.{stem}.{part}" for part in ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index"))
    return DatasetSpec("planetoid", "planetoid", name, files)


def _bond(stem: str) -> DatasetSpec:
    return DatasetSpec("bond", "bond", stem, (f"{stem}.pt.zip",))


_OGB_CSV = ("edge.csv.gz", "node-feat.csv.gz", "node-label.csv.gz", "num-node-list.csv.gz", "num-edge-list.csv.gz")


DATASETS: dict[str, DatasetSpec] = {
    "cora": _planetoid("Cora"),
    "citeseer": _planetoid("CiteSeer"),
    "pubmed": _planetoid("PubMed"),
    "photo": DatasetSpec("amazon", "amazon", "Photo", ("amazon_electronics_photo.npz",)),
    "computers": DatasetSpec("amazon", "amazon", "Computers", ("amazon_electronics_computers.npz",)),
    "cs": DatasetSpec("coauthor", "coauthor", "CS", ("ms_academic_cs.npz",)),
    "physics": DatasetSpec("coauthor", "coauthor", "Physics", ("ms_academic_phy.npz",)),
    "reddit": DatasetSpec("reddit", "reddit", "Reddit", ("reddit_data.npz", "reddit_graph.npz")),
    # OGB node-property graphs through the ogb package (pip install ogb): raw files as OGB's zips
    # unpack them under <data_dir>/ogb/<ogbn_name>/raw; papers100M's labels cover ~1.5% of nodes
    "ogbn_arxiv": DatasetSpec("ogb", "ogb", "ogbn-arxiv", (*_OGB_CSV, "node_year.csv.gz")),
    "ogbn_products": DatasetSpec("ogb", "ogb", "ogbn-products", _OGB_CSV),
    "ogbn_papers100m": DatasetSpec("ogb", "ogb", "ogbn-papers100M", ("data.npz", "node-label.npz")),
    # BOND anomaly-detection sets (pygod-team/data): y > 0 marks an outlier.
    "inj_cora": _bond("inj_cora"),
    "inj_amazon": _bond("inj_amazon"),
    "inj_flickr": _bond("inj_flickr"),
    "bond_reddit": _bond("reddit"),
    "weibo": _bond("weibo"),
    "disney": _bond("disney"),
    "books": _bond("books"),
    "enron": _bond("enron"),
}


def dataset_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name.lower()]
    except KeyError:
        raise InputError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}") from None


def ensure_raw_files(spec: DatasetSpec, data_dir: Path, mirror_dir: Path | None) -> bool:
    """Copy missing raw files from the mirror. Returns True when all raw files are present."""
    raw = Path(data_dir) / spec.raw_relpath
    missing = [f for f in spec.raw_files if not (raw / f).exists()]
    if missing and mirror_dir is not None:
        source = Path(mirror_dir) / spec.raw_relpath
        if all((source / f).exists() for f in missing):
            raw.mkdir(parents=True, exist_ok=True)
            for f in missing:
                shutil.copy2(source / f, raw / f)
                (raw / f).chmod(0o644)
            log.info("copied %d raw file(s) of %s from the mirror %s", len(missing), spec.name, source)
            missing = []
    return not missing


def load_dataset(name: str, data_dir: str | Path, mirror_dir: str | Path | None = None, download: bool = True) -> Data:
    """Load dataset ``name`` as one PyG ``Data`` (features, edges, and ``y`` when it has labels).
    ``bank_<name>``: a planted graph of :mod:`gnngmm.data.bank`, generated once into ``data_dir``."""
    if name.lower().startswith("bank_"):
        from gnngmm.data.bank import load_bank

        return load_bank(name, data_dir)
    spec = dataset_spec(name)
    data_dir = Path(data_dir).expanduser()
    mirror = Path(mirror_dir).expanduser() if mirror_dir else None
    try:
        present = ensure_raw_files(spec, data_dir, mirror)
    except OSError as err:
        if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise _not_writable(data_dir, err) from None
        raise
    tried = f"{data_dir / spec.raw_relpath}" + (f" and the mirror {mirror / spec.raw_relpath}" if mirror else "")
    if not present and not download:
        raise InputError(
            f"dataset {name!r}: raw files {list(spec.raw_files)} not found in {tried}, and download is off"
        )
    if spec.loader == "ogb":
        _require_ogb(name)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        data = _read_or_rebuild(spec, data_dir)
    except InputError:
        raise
    except Exception as err:  # PyG's download or processing failed: say what was tried.
        if isinstance(err, OSError) and err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise _not_writable(data_dir, err) from None
        if present:
            raise InputError(f"dataset {name!r}: could not process the raw files in {tried}: {err}") from err
        raise InputError(
            f"dataset {name!r}: raw files {list(spec.raw_files)} not found in {tried}, and the download "
            f"failed ({type(err).__name__}: {err}). Put the files there, set paths.mirror_dir, or "
            "connect to the network."
        ) from None
    return data


def _not_writable(data_dir: Path, err: OSError) -> InputError:
    return InputError(
        f"paths.data_dir={data_dir} must be writable ({err.strerror}): PyG writes processed/ next to raw/; point "
        "paths.data_dir at a writable directory (the raw files are copied there from paths.mirror_dir)"
    )


def _processed_dir(spec: DatasetSpec, data_dir: Path) -> Path | None:
    if spec.loader == "bond":
        return None
    return (Path(data_dir) / spec.raw_relpath).parent / "processed"


def _read_or_rebuild(spec: DatasetSpec, data_dir: Path) -> Data:
    """PyG's loader; a processed/ file that cannot be read (a run killed while writing it, a disk
    that filled up) is rebuilt once from the raw files, with a logged line naming it."""
    try:
        return _read(spec, data_dir)
    except (EOFError, RuntimeError, pickle.UnpicklingError, ValueError, KeyError, AttributeError) as err:
        processed = _processed_dir(spec, data_dir)
        if processed is None or not processed.is_dir():
            raise
        log.warning(
            "%s: could not read %s (%s: %s); rebuilding it from the raw files",
            spec.name,
            processed,
            type(err).__name__,
            str(err).splitlines()[0] if str(err) else "",
        )
        shutil.rmtree(processed)
        try:
            return _read(spec, data_dir)
        except Exception as again:  # noqa: BLE001 - named, with the file, below
            raise InputError(
                f"dataset {spec.name!r}: {processed} could not be rebuilt from the raw files: {again}"
            ) from again


def _read(spec: DatasetSpec, data_dir: Path) -> Data:
    if spec.loader == "planetoid":
        from torch_geometric.datasets import Planetoid

        return Planetoid(str(data_dir / spec.group), spec.name)[0]
    if spec.loader == "amazon":
        from torch_geometric.datasets import Amazon

        return Amazon(str(data_dir / spec.group), spec.name)[0]
    if spec.loader == "coauthor":
        from torch_geometric.datasets import Coauthor

        return Coauthor(str(data_dir / spec.group), spec.name)[0]
    if spec.loader == "reddit":
        from torch_geometric.datasets import Reddit

        return Reddit(str(data_dir / spec.group))[0]
    if spec.loader == "bond":
        from gnngmm.data.bond import read_bond

        return read_bond(data_dir / spec.raw_relpath / spec.raw_files[0])
    if spec.loader == "ogb":
        return _read_ogb(spec, data_dir)
    raise AssertionError(spec.loader)


def _require_ogb(name: str) -> None:
    import os

    os.environ.setdefault("OUTDATED_IGNORE", "1")  # ogb asks PyPI for a newer version on import
    try:
        import ogb  # noqa: F401
    except ImportError:
        raise InputError(
            f"dataset {name!r} is read by the ogb package: pip install ogb (or pip install -e '.[ogb]')"
        ) from None


def _read_ogb(spec: DatasetSpec, data_dir: Path) -> Data:
    """``ogb``'s ``PygNodePropPredDataset`` on ``<data_dir>/ogb``. Two adaptations, both local:
    ogb asks on stdin whether to re-download when its version marker ``RELEASE_v<k>.txt`` is
    missing next to raw files copied from a mirror, so the marker is written first; and ogb
    1.3.6 reads its own ``processed/`` file with ``torch.load``, which torch >= 2.6 restricts to
    weights -- the file is the one ogb just wrote from the raw files, so it is read with
    ``weights_only=False`` (as the BOND files are). Labels become one ``long`` per node, -1 where
    OGB has none (papers100M: NaN); metrics skip those nodes."""
    import functools

    from ogb.nodeproppred import PygNodePropPredDataset

    root = data_dir / spec.group
    folder = root / spec.raw_relpath.parent.name
    if (folder / "raw").is_dir():
        import ogb.nodeproppred as nodeproppred
        import pandas as pd

        master = pd.read_csv(Path(nodeproppred.__file__).parent / "master.csv", index_col=0, keep_default_na=False)
        marker = folder / f"RELEASE_v{master[spec.name]['version']}.txt"
        if not marker.exists():
            marker.write_text("written by gnngmm: raw files supplied by the user or the mirror\n")
    load = torch.load
    torch.load = functools.partial(load, weights_only=False)
    try:
        data = PygNodePropPredDataset(spec.name, root=str(root))[0]
    except SystemExit:  # ogb exits when a >1 GB download is declined at its prompt
        raise RuntimeError(f"ogb did not download {spec.name}") from None
    finally:
        torch.load = load
    y = data.y.reshape(-1)
    if y.is_floating_point():
        y = torch.where(torch.isnan(y), torch.full_like(y, -1), y)
    out = Data(x=data.x, edge_index=data.edge_index, y=y.long(), num_nodes=data.num_nodes)
    if getattr(data, "node_year", None) is not None:
        out.node_year = data.node_year.reshape(-1)
    return out


def validate_graph(data: Data, name: str) -> Data:
    """Reject graphs the pipeline cannot use, with the offending value in the message."""
    if data.num_nodes is None or data.num_nodes == 0:
        raise InputError(f"dataset {name!r} has no nodes")
    if data.x is None:
        raise InputError(f"dataset {name!r} has no node features (data.x is None)")
    bad = ~torch.isfinite(data.x)
    if bool(bad.any()):
        rows = torch.nonzero(bad.any(1)).flatten()
        raise InputError(
            f"dataset {name!r}: node features contain {int(bad.sum())} NaN/inf values in "
            f"{rows.numel()} nodes (first: node {int(rows[0])}); clean or impute them first"
        )
    if data.edge_index.numel() and int(data.edge_index.max()) >= data.num_nodes:
        raise InputError(f"dataset {name!r}: edge_index refers to node {int(data.edge_index.max())} >= num_nodes")
    return data
