"""LightningDataModule over one graph: full-batch or sampled mini-batches, same ``Data`` object.

The whole graph stays available as ``self.data`` because the EM refit embeds every node.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader
from torch_geometric.data import Data
from torch_geometric.utils import remove_self_loops, to_undirected

from gnngmm.data.datasets import load_dataset, validate_graph
from gnngmm.data.transforms import normalize_features

log = logging.getLogger(__name__)

LOADERS = ("full", "random_nodes", "neighbor", "nodes")
PRECOMPUTE = ("none", "sign", "ssgc")


def _first(batch):
    return batch[0]


class NodeBatches:
    """Collate node ids into a feature-only ``Data`` (no edges): for pre-propagated features,
    where the graph has already been folded into ``x`` and an MLP encoder needs no neighbours."""

    def __init__(self, x):
        self.x = x

    def __call__(self, ids):
        ids = torch.as_tensor(ids)
        return Data(x=self.x[ids], edge_index=torch.zeros(2, 0, dtype=torch.long), num_nodes=len(ids), n_id=ids)


def precompute_features(x, edge_index, hops: int, mode: str, norm: str = "none"):
    """``sign``: ``[x, Sx, ..., S^hops x]`` side by side (SIGN); ``ssgc``: their average. Sparse
    products in plain PyTorch (int32 CSR, chunked by rows): no sampler, no compiled extension,
    and no temporary beyond the matrix and two ``N x F`` hops besides the result.

    ``norm="l2"`` scales every hop of every node to unit length before it is stored (the hops
    are still propagated unnormalised): ``S^k x`` grows like ``sqrt(degree)``, so on a graph with
    heavy-tailed degrees the hubs' rows would otherwise dominate every distance and every batch
    statistic (planted Reddit preset: k-means NMI 0.39 on the raw SIGN features, 0.83 per-hop
    normalised)."""
    from gnngmm.encoders.propagation import normalized_adjacency, propagate

    n, f = x.shape
    adj = normalized_adjacency(edge_index, n)
    if norm not in ("none", "l2"):
        from gnngmm.errors import InputError

        raise InputError(f"data.precompute_norm={norm!r} is not one of none, l2")

    def scaled(h):
        return h if norm == "none" else torch.nn.functional.normalize(h, dim=1)

    if mode == "sign":
        out = torch.empty(n, f * (hops + 1), dtype=x.dtype, device=x.device)
        out[:, :f] = scaled(x)
    else:
        out = scaled(x).clone()
    h = x
    for hop in range(1, hops + 1):
        h = propagate(adj, h)
        if mode == "sign":
            out[:, hop * f : (hop + 1) * f] = scaled(h)
        else:
            out += scaled(h)
    return out if mode == "sign" else out / (hops + 1)


def is_sorted_undirected(edge_index, num_nodes: int, chunk: int = 1 << 24) -> bool:
    """True when ``edge_index`` is sorted by (row, col) without duplicates and holds every edge in
    both directions (what PyG's ``to_undirected`` returns): then it is kept as it is, instead of
    being symmetrised and sorted again (at 10^8 edges that costs minutes and several GB). Exact:
    the sorted reversed keys must equal the keys. Two int64 keys per edge at the peak."""
    e = edge_index.shape[1]
    if e == 0:
        return True
    row, col = edge_index[0].cpu(), edge_index[1].cpu()
    keys = torch.empty(e, dtype=torch.long)
    reverse = torch.empty(e, dtype=torch.long)
    for start in range(0, e, chunk):
        r, c = row[start : start + chunk], col[start : start + chunk]
        torch.add(r * num_nodes, c, out=keys[start : start + chunk])
        torch.add(c * num_nodes, r, out=reverse[start : start + chunk])
    if e > 1 and not bool((keys[1:] > keys[:-1]).all()):
        return False
    reverse.numpy().sort()
    return torch.equal(keys, reverse)


class GraphDataModule(L.LightningDataModule):
    def __init__(
        self,
        name: str,
        data_dir: str,
        mirror_dir: str | None = None,
        normalize_features: str = "row",
        download: bool = True,
        loader: str = "full",
        num_parts: int = 8,
        batch_size: int = 1024,
        num_neighbors: list[int] | None = None,
        num_workers: int = 0,
        inject: dict | None = None,
        precompute: str = "none",
        precompute_hops: int = 2,
        precompute_norm: str = "none",
        full_batch_guard: str = "auto",
        memory_limit_gb: float | None = None,
        planted: dict | None = None,
        num_classes: int | None = None,
        seed: int = 0,
        data: Data | None = None,
    ):
        super().__init__()
        if loader not in LOADERS:
            from gnngmm.errors import InputError

            raise InputError(f"data.loader={loader!r} is not one of {', '.join(LOADERS)}")
        self.name = name
        self.data_dir = Path(data_dir)
        self.mirror_dir = mirror_dir
        self.feature_norm = normalize_features
        self.download = download
        self.loader = loader
        self.num_parts = num_parts
        self.batch_size = batch_size
        self.num_neighbors = list(num_neighbors or [10, 10])
        self.num_workers = num_workers
        self.inject = dict(inject or {})
        if precompute not in PRECOMPUTE:
            from gnngmm.errors import InputError

            raise InputError(f"data.precompute={precompute!r} is not one of {', '.join(PRECOMPUTE)}")
        self.precompute, self.precompute_hops, self.precompute_norm = precompute, precompute_hops, precompute_norm
        self.planted = dict(planted or {})
        self.full_batch_guard, self.memory_limit_gb = full_batch_guard, memory_limit_gb  # read by gnngmm.memory
        self.num_classes = num_classes
        self.seed = seed
        self.data = data
        self.timings: dict[str, float] = {}  # seconds of the setup stages (load, precompute)

    def prepare_data(self) -> None:  # download / copy once, on one process
        if self.data is None and self.name != "planted":
            load_dataset(self.name, self.data_dir, self.mirror_dir, self.download)

    def _load(self) -> Data:
        if self.data is not None:
            return self.data
        if self.name == "planted":  # generated on the fly: any size, known blocks
            from gnngmm.data.synthetic import make_planted

            return make_planted(seed=self.seed, **self.planted)
        return load_dataset(self.name, self.data_dir, self.mirror_dir, self.download)

    def setup(self, stage: str | None = None) -> None:
        if self.data is not None and getattr(self.data, "_gnngmm_ready", False):
            return
        start = time.perf_counter()
        data = validate_graph(self._load(), self.name)
        self.timings["load_seconds"] = time.perf_counter() - start
        if data.edge_index.numel():
            if not is_sorted_undirected(data.edge_index, data.num_nodes):
                data.edge_index = to_undirected(data.edge_index, num_nodes=data.num_nodes)
            # stored self-loops (BOND reddit has one on every node) would count as triangles and
            # neighbours of themselves; encoders that want them add their own
            loops = int((data.edge_index[0] == data.edge_index[1]).sum())
            if loops:
                data.edge_index, _ = remove_self_loops(data.edge_index)
                log.info("%s: removed %d stored self-loop(s)", self.name, loops)
        if any(self.inject.get(key, 0) for key in ("structural_cliques", "contextual")):
            from gnngmm.data.inject import inject_outliers

            data = inject_outliers(data, seed=self.seed, **self.inject)
        data.raw_feature_norm = data.x.norm(dim=1)  # a baseline anomaly score, before normalising
        if getattr(data, "outlier", None) is not None:
            data.raw_x = data.x  # the contextual anomaly channel reads the features as given
        data.x = normalize_features(data.x, self.feature_norm)
        if self.precompute != "none" and self.precompute_hops > 0:
            x, data.x = data.x, None  # let the raw features go once the result exists
            began = time.perf_counter()
            data.x = precompute_features(x, data.edge_index, self.precompute_hops, self.precompute, self.precompute_norm)
            self.timings["precompute_seconds"] = time.perf_counter() - began
            del x
        deg = torch.bincount(data.edge_index[0], minlength=data.num_nodes)
        isolated = int((deg == 0).sum())
        if isolated:
            log.info("%s: %d isolated node(s); they are embedded from their own features only", self.name, isolated)
        data._gnngmm_ready = True
        self.data = data
        self.timings["setup_seconds"] = time.perf_counter() - start
        log.info("%s: %d nodes, %d edges, %d features", self.name, data.num_nodes, data.edge_index.shape[1], data.num_features)

    @property
    def num_features(self) -> int:
        return self.data.num_features

    def train_dataloader(self):
        if self.loader == "full":
            return DataLoader([self.data], batch_size=1, collate_fn=_first)
        generator = torch.Generator().manual_seed(self.seed)
        if self.loader == "nodes":
            return DataLoader(
                range(self.data.num_nodes), batch_size=self.batch_size, shuffle=True, generator=generator,
                collate_fn=NodeBatches(self.data.x), num_workers=self.num_workers,
            )
        if self.loader == "random_nodes":
            from torch_geometric.loader import RandomNodeLoader

            return RandomNodeLoader(self.data, num_parts=self.num_parts, shuffle=True, num_workers=self.num_workers, generator=generator)
        from torch_geometric.loader import NeighborLoader
        from torch_geometric.typing import WITH_PYG_LIB, WITH_TORCH_SPARSE

        if not (WITH_PYG_LIB or WITH_TORCH_SPARSE):  # PyG's sampler is compiled: sample in plain PyTorch
            from gnngmm.data.sampling import NeighborSampler

            log.info("data.loader=neighbor: pyg-lib/torch-sparse not installed, sampling in plain PyTorch")
            return DataLoader(
                range(self.data.num_nodes), batch_size=self.batch_size, shuffle=True, generator=generator,
                collate_fn=NeighborSampler(self.data, self.num_neighbors, undirected=True), num_workers=self.num_workers,
            )
        return NeighborLoader(
            self.data, num_neighbors=self.num_neighbors, batch_size=self.batch_size, shuffle=True,
            num_workers=self.num_workers, generator=generator,
        )
