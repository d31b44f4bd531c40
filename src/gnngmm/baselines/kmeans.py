"""Training-free baselines printed beside a result: k-means on the raw or pre-propagated features.

``KMeansBaseline`` is a Lightning callback: at the start of training it clusters the features the
encoder is about to see (``trainer.datamodule.data.x``: after ``data.precompute``, the SIGN /
SSGC features) with k-means and writes the NMI/ARI against the labels (reported only, nothing
reads them back) and the data module's stage timings to a JSON file. ``scripts/bench_scale.py``
adds it; any run can: ``+callbacks.kmeans._target_=gnngmm.baselines.KMeansBaseline
+callbacks.kmeans.path=baselines.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor

from gnngmm.metrics import clustering_metrics
from gnngmm.mixture import kmeans as km


@torch.no_grad()
def kmeans_labels(
    x: Tensor,
    k: int,
    *,
    seed: int = 0,
    n_init: int = 3,
    max_iter: int = 100,
    chunk: int = 65536,
    sample_size: int = 20_000,
    device: str | torch.device | None = None,
) -> Tensor:
    """Lloyd's k-means (k-means++ seeding, ``n_init`` restarts, lowest inertia wins), chunk by
    chunk in float32: memory O(chunk x k) besides ``x``. With more rows than ``sample_size`` the
    restarts compete on a sample and only the winner runs on every row (3 full-data restarts took
    30 minutes at 2.4M rows on one thread). Returns CPU labels."""
    device = torch.device(device) if device is not None else x.device
    chunks = (
        [c.to(device=device, dtype=torch.float32) for c in x.split(chunk)]
        if x.device != device or x.dtype != torch.float32
        else list(x.split(chunk))
    )
    g = torch.Generator().manual_seed(seed)
    sample = km.seeding_sample(chunks, sample_size, g)
    on = [sample] if sample.shape[0] < x.shape[0] else chunks
    best, best_inertia = None, float("inf")
    for _ in range(max(1, n_init)):
        centers, inertia = km.lloyd(on, sample[km.kmeans_plusplus(sample, k, g)], max_iter=max_iter)
        if inertia < best_inertia:
            best, best_inertia = centers, inertia
    if on is not chunks:
        best, _ = km.lloyd(chunks, best, max_iter=max_iter)
    return torch.cat([km.assign(c, best).cpu() for c in chunks])


def kmeans_scores(x: Tensor, y: Tensor, k: int, **kw) -> dict:
    """NMI / ARI of k-means on ``x`` against ``y``, and the seconds it took."""
    start = time.perf_counter()
    labels = kmeans_labels(x, k, **kw)
    scores = clustering_metrics(y, labels)
    return {"nmi": scores["nmi"], "ari": scores["ari"], "seconds": time.perf_counter() - start}


class KMeansBaseline(Callback):
    """At fit start: k-means (k = ``n_clusters`` or the number of label values) on the features
    the encoder sees, scored against the labels; plus the data module's ``timings``; written to
    ``path`` (relative paths: in the trainer's root dir). Records when training starts and ends,
    so the benchmark can tell stage times apart."""

    def __init__(
        self,
        path: str = "baselines.json",
        n_clusters: int | None = None,
        n_init: int = 3,
        seed: int = 0,
        kmeans: bool = True,
    ):
        self.path, self.n_clusters, self.n_init, self.seed, self.kmeans = path, n_clusters, n_init, seed, kmeans
        self.record: dict = {}

    def _write(self, trainer) -> None:
        if trainer.is_global_zero:
            path = Path(self.path)
            if not path.is_absolute():
                path = Path(trainer.default_root_dir) / path
            path.write_text(json.dumps(self.record, indent=2) + "\n")

    def on_fit_start(self, trainer, pl_module) -> None:
        data = trainer.datamodule.data
        y = getattr(getattr(trainer.datamodule, "labels", None), "y", None)  # set aside from the graph
        self.record["timings"] = dict(getattr(trainer.datamodule, "timings", {}) or {})
        if self.kmeans and y is not None and trainer.is_global_zero:
            k = self.n_clusters or int(y.max()) + 1
            scores = kmeans_scores(data.x, y, k, seed=self.seed, n_init=self.n_init, device=pl_module.device)
            self.record["kmeans"] = {"features": getattr(trainer.datamodule, "precompute", "none"), **scores}
        self.record["fit_start"] = time.perf_counter()
        self._write(trainer)

    def on_fit_end(self, trainer, pl_module) -> None:
        self.record["fit_end"] = time.perf_counter()
        self._write(trainer)
