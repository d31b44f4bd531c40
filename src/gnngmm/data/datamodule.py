"""LightningDataModule over one graph: full-batch or sampled mini-batches, same ``Data`` object.

The whole graph stays available as ``self.data`` because the EM refit embeds every node; the
preprocessing is :func:`gnngmm.data.preprocess.preprocess`, shared with the estimator.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader
from torch_geometric.data import Data

from gnngmm.data.datasets import load_dataset, validate_graph
from gnngmm.data.preprocess import GraphLabels, clean_edges, preprocess, split_labels
from gnngmm.errors import InputError

log = logging.getLogger(__name__)

LOADERS = ("full", "random_nodes", "neighbor", "nodes")


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


class GraphDataModule(L.LightningDataModule):
    """One graph: a named dataset (``name``), a planted partition (``planted``), files
    (``name="files"`` with ``edges``/``features``/``labels``) or a given ``Data`` (``data``).
    After ``setup`` the model's graph is ``self.data`` and its labels, set aside, ``self.labels``.

    Its arguments are ``conf/data``'s (``conf/data/default.yaml`` documents each): which graph
    (``name``, ``data_dir``, ``mirror_dir``, ``download``, ``planted``, ``edges``, ``features``,
    ``labels``, ``inject``, ``seed``; ``num_classes`` is only the command line's default K), how it
    is prepared (``normalize_features``, ``clean``, ``keep_raw_features``, ``precompute*``:
    :meth:`preparation`) and how it is batched (``loader``, ``num_parts``, ``batch_size``,
    ``num_neighbors``, ``num_workers``, ``full_batch_guard``, ``memory_limit_gb``).
    """

    #: the arguments that say how a graph is prepared: another graph scored by a fitted model
    #: goes through the same preparation
    PREPARATION = (
        "normalize_features",
        "clean",
        "keep_raw_features",
        "precompute",
        "precompute_hops",
        "precompute_norm",
    )

    def __init__(
        self,
        name: str,
        data_dir: str | None = None,
        mirror_dir: str | None = None,
        normalize_features: str = "none",
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
        edges: str | None = None,
        features: str | None = None,
        labels: str | None = None,
        seed: int = 0,
        data: Data | None = None,
        clean: bool = True,
        keep_raw_features: bool = False,
        num_classes: int | None = None,
    ):
        arguments = {k: v for k, v in locals().items() if k not in ("self", "data", "__class__")}
        super().__init__()
        from gnngmm.validation import check_group

        check_group("data", arguments)
        self.arguments = arguments
        self.name = name
        self.num_classes = num_classes
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.mirror_dir = mirror_dir
        self.feature_norm = normalize_features
        self.download = download
        self.loader = loader
        self.num_parts = num_parts
        self.batch_size = batch_size
        self.num_neighbors = list(num_neighbors or [10, 10])
        self.num_workers = num_workers
        self.inject = dict(inject or {})
        self.precompute, self.precompute_hops, self.precompute_norm = precompute, precompute_hops, precompute_norm
        self.planted = dict(planted or {})
        self.full_batch_guard, self.memory_limit_gb = full_batch_guard, memory_limit_gb  # read by gnngmm.memory
        self.timings: dict[str, float] = {}  # seconds of the setup stages (load, precompute)
        self.files = {"edges": edges, "features": features, "labels": labels}
        self.seed = seed
        self.source = data  # the caller's graph, never modified
        self.clean = clean
        self.keep_raw_features = keep_raw_features
        self.data: Data | None = None
        self.labels = GraphLabels()
        self.node_ids: list | None = None  # the files' node ids, in node order
        self.feature_names: list[str] | None = None  # the input features' names, where the source has them

    def preparation(self) -> dict:
        """How this module prepares its graph (:attr:`PREPARATION`), to prepare another the same way."""
        return {key: self.arguments[key] for key in self.PREPARATION}

    def describe(self) -> dict:
        """Its arguments (without a given ``Data``): enough to load the same graph again."""
        return dict(self.arguments)

    def prepare_data(self) -> None:  # download / copy once, on one process
        if self.source is None and self.name not in ("planted", "files"):
            load_dataset(self.name, self.data_dir, self.mirror_dir, self.download)

    def _load(self) -> Data:
        if self.source is not None:
            return self.source
        if self.name == "planted":  # generated on the fly: any size, known blocks
            from gnngmm.data.synthetic import make_planted

            return make_planted(seed=self.seed, **self.planted)
        if self.name == "files":
            from gnngmm.data.files import read_graph

            return read_graph(**self.files)
        if self.data_dir is None:
            raise InputError(f"dataset {self.name!r}: no data_dir given")
        return load_dataset(self.name, self.data_dir, self.mirror_dir, self.download)

    def load_raw(self) -> Data:
        """The graph as loaded (labels included, outliers injected when asked), before preprocessing."""
        raw = validate_graph(self._load(), self.name)
        if any(self.inject.get(key, 0) for key in ("structural_cliques", "contextual")):
            from gnngmm.data.inject import inject_outliers

            raw = inject_outliers(clean_edges(raw, self.name), seed=self.seed, **self.inject)
        return raw

    def setup(self, stage: str | None = None) -> None:
        if self.data is not None:
            return
        start = time.perf_counter()
        raw = self.load_raw()
        self.timings["load_seconds"] = time.perf_counter() - start
        graph, self.labels = split_labels(raw)
        self.node_ids = getattr(raw, "node_ids", None)
        self.feature_names = getattr(raw, "feature_names", None)
        own = self.source is None  # a graph this module loaded may give up its raw features early
        del raw
        self.data = preprocess(
            graph,
            self.feature_norm,
            clean=self.clean,
            keep_raw_features=self.keep_raw_features,
            precompute=self.precompute,
            precompute_hops=self.precompute_hops,
            precompute_norm=self.precompute_norm,
            name=self.name,
            own=own,
            timings=self.timings,
        )
        self.timings["setup_seconds"] = time.perf_counter() - start

    @property
    def num_features(self) -> int:
        return self.data.num_features

    def _rank(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        return (int(trainer.global_rank), int(trainer.world_size)) if trainer is not None else (0, 1)

    def train_dataloader(self):
        """One whole-graph batch (``full``), or this process's share of every epoch's seed nodes
        (``nodes``, ``neighbor``) or random node sets (``random_nodes``): under DDP the ranks divide
        the work instead of repeating it (:class:`ShardSampler`; Lightning's own distributed sampler
        is off)."""
        if self.loader == "full":
            return DataLoader([self.data], batch_size=1, collate_fn=_first)
        from gnngmm.data.sampling import FullDegree, InducedSubgraph, NeighborSampler, ShardSampler

        rank, world = self._rank()
        n = self.data.num_nodes
        sampler = ShardSampler(n, rank, world, seed=self.seed)
        if self.loader == "nodes":
            collate, batch_size = NodeBatches(self.data.x), self.batch_size
        elif self.loader == "random_nodes":
            collate, batch_size = (
                InducedSubgraph(self.data),
                math.ceil(n / self.num_parts),
            )  # num_parts sets, all ranks together
        else:
            from torch_geometric.typing import WITH_PYG_LIB, WITH_TORCH_SPARSE

            if WITH_PYG_LIB or WITH_TORCH_SPARSE:  # PyG's compiled sampler, on this rank's seed nodes
                from torch_geometric.loader import NeighborLoader

                return NeighborLoader(
                    self.data,
                    num_neighbors=self.num_neighbors,
                    batch_size=self.batch_size,
                    sampler=sampler,
                    num_workers=self.num_workers,
                    transform=FullDegree(self.data),
                )
            log.info("data.loader=neighbor: pyg-lib/torch-sparse not installed, sampling in plain PyTorch")
            collate, batch_size = NeighborSampler(self.data, self.num_neighbors, undirected=self.clean), self.batch_size
        return DataLoader(
            range(n), batch_size=batch_size, sampler=sampler, collate_fn=collate, num_workers=self.num_workers
        )
