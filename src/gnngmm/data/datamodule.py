"""LightningDataModule over one graph: full-batch or sampled mini-batches, same ``Data`` object.

The whole graph stays available as ``self.data`` because the EM refit embeds every node.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader
from torch_geometric.data import Data
from torch_geometric.utils import degree, to_undirected

from gnngmm.data.datasets import load_dataset, validate_graph
from gnngmm.data.transforms import normalize_features

log = logging.getLogger(__name__)

LOADERS = ("full", "random_nodes", "neighbor")


def _first(batch):
    return batch[0]


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
        seed: int = 0,
        data: Data | None = None,
        **_ignored,
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
        self.seed = seed
        self.data = data

    def prepare_data(self) -> None:  # download / copy once, on one process
        if self.data is None:
            load_dataset(self.name, self.data_dir, self.mirror_dir, self.download)

    def setup(self, stage: str | None = None) -> None:
        if self.data is not None and getattr(self.data, "_gnngmm_ready", False):
            return
        data = self.data if self.data is not None else load_dataset(self.name, self.data_dir, self.mirror_dir, self.download)
        data = validate_graph(data, self.name)
        if data.edge_index.numel():
            data.edge_index = to_undirected(data.edge_index, num_nodes=data.num_nodes)
        if any(self.inject.get(key, 0) for key in ("structural_cliques", "contextual")):
            from gnngmm.data.inject import inject_outliers

            data = inject_outliers(data, seed=self.seed, **self.inject)
        data.raw_feature_norm = data.x.norm(dim=1)  # a baseline anomaly score, before normalising
        data.x = normalize_features(data.x, self.feature_norm)
        deg = degree(data.edge_index[0], data.num_nodes) if data.edge_index.numel() else torch.zeros(data.num_nodes)
        isolated = int((deg == 0).sum())
        if isolated:
            log.info("%s: %d isolated node(s); they are embedded from their own features only", self.name, isolated)
        data._gnngmm_ready = True
        self.data = data
        log.info("%s: %d nodes, %d edges, %d features", self.name, data.num_nodes, data.edge_index.shape[1], data.num_features)

    @property
    def num_features(self) -> int:
        return self.data.num_features

    def train_dataloader(self):
        if self.loader == "full":
            return DataLoader([self.data], batch_size=1, collate_fn=_first)
        generator = torch.Generator().manual_seed(self.seed)
        if self.loader == "random_nodes":
            from torch_geometric.loader import RandomNodeLoader

            return RandomNodeLoader(self.data, num_parts=self.num_parts, shuffle=True, num_workers=self.num_workers, generator=generator)
        from torch_geometric.loader import NeighborLoader

        return NeighborLoader(
            self.data, num_neighbors=self.num_neighbors, batch_size=self.batch_size, shuffle=True,
            num_workers=self.num_workers, generator=generator,
        )
