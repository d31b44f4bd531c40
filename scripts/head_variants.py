"""Other final partitions from the same trained embeddings: does the head, or smoothing over the
graph, leave NMI on the table? (docs/experiments.md, rows 7-8)

    python scripts/benchmark.py --datasets cora --methods gnngmm --seeds 10 --runs RUNS
    python scripts/head_variants.py RUNS cora

Loads each ``RUNS/<dataset>/gnngmm/seed*/model.ckpt`` (``GNNGMM.load``) and, without training,
derives partitions from its embedding and responsibilities: the responsibilities smoothed over the
graph (``Â^t r``), the embedding smoothed (``Â^t z``, renormalised, mixture refit warm), the
mixture refit warm as diag / spherical / full, a fresh isotropic fit from a k-means basin. Labels
only score them (mean NMI / ARI over the seeds, one line each).
"""

from __future__ import annotations

import argparse
import glob
import statistics
import sys
from pathlib import Path

import warnings

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from gnngmm import GNNGMM  # noqa: E402
from gnngmm.data import GraphDataModule  # noqa: E402
from gnngmm.encoders.propagation import normalized_adjacency  # noqa: E402
from gnngmm.metrics import clustering_metrics  # noqa: E402
from gnngmm.mixture import GaussianMixture  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")


def warm_refit(z: torch.Tensor, resp: torch.Tensor, covariance_type: str) -> torch.Tensor:
    gmm = GaussianMixture(resp.shape[1], covariance_type=covariance_type, max_iter=100)
    gmm.initialize_from_responsibilities(z, resp)
    return gmm.set_params(warm_start=True).fit(z).predict(z)


def variants(est: GNNGMM, data, adjacency) -> dict[str, torch.Tensor]:
    resp = est.predict_proba(data).double()
    z = est.transform(data).double()
    out = {"final (as trained)": resp.argmax(1)}
    r = resp.float()
    for t in range(1, 5):
        r = adjacency @ r
        out[f"responsibilities smoothed, t={t}"] = r.argmax(1)
    h = z.float()
    for t in range(1, 3):
        h = adjacency @ h
        out[f"embedding smoothed, t={t}"] = warm_refit(torch.nn.functional.normalize(h.double(), dim=1), resp, "isotropic")
    for cov in ("diag", "spherical", "full"):
        out[f"warm {cov}"] = warm_refit(z, resp, cov)
    fresh = GaussianMixture(resp.shape[1], covariance_type="isotropic", max_iter=100, kmeans_n_init=10, random_state=0)
    out["fresh isotropic"] = fresh.fit(z).predict(z)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", help="a scripts/benchmark.py --runs directory")
    p.add_argument("dataset")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    models = sorted(glob.glob(f"{args.runs}/{args.dataset}/gnngmm/seed*/model.ckpt"))
    if not models:
        raise SystemExit(f"no {args.runs}/{args.dataset}/gnngmm/seed*/model.ckpt: run scripts/benchmark.py first")
    first = GNNGMM.load(models[0])
    settings = (first.module_.run_config or {}).get("data", {})
    dm = GraphDataModule(name=args.dataset, data_dir=str(ROOT / "data"), mirror_dir=str(ROOT.parent / "shared" / "datasets"),
                         normalize_features=settings.get("normalize_features", "row"))
    dm.setup("fit")
    data, y = dm.data, dm.labels.y
    adjacency = normalized_adjacency(data.edge_index, data.num_nodes)  # D^-1/2 (A + I) D^-1/2
    scores: dict[str, list[tuple[float, float]]] = {}
    for path in models:
        for name, pred in variants(GNNGMM.load(path), data, adjacency).items():
            m = clustering_metrics(y, pred)
            scores.setdefault(name, []).append((m["nmi"], m["ari"]))
    for name, values in scores.items():
        nmi, ari = (statistics.fmean(v[i] for v in values) for i in (0, 1))
        print(f"{args.dataset} | {name} | {len(values)} seeds | NMI {nmi:.4f} | ARI {ari:.4f}")


if __name__ == "__main__":
    main()
