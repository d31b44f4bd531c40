"""Scale benchmark: planted graphs of the mission's true sizes through the real pipeline (``train(cfg)``).

    python scripts/bench_scale.py                    # --preset reddit: 232,965 nodes, 114,615,892 directed edges,
                                                     #   602 features, 41 blocks
    python scripts/bench_scale.py --preset products  # 2,449,029 nodes, 123,718,280 directed edges, 100 features,
                                                     #   47 blocks
    python scripts/bench_scale.py --preset arxiv     # 169,343 nodes, 2,332,486 directed edges, 128 features, 40 blocks
    python scripts/bench_scale.py --scale 0.25       # a preset shrunk in proportion (same mean degree)
    python scripts/bench_scale.py --encoder gat --epochs 1 # a message-passing encoder on the neighbour loader
    python scripts/bench_scale.py --device cuda
    python scripts/bench_scale.py --nodes 3000 --edges 60000 --features 32 --blocks 5   # CI size

The graph (``gnngmm.data.synthetic.planted_graph``) looks like a real one: log-normal degrees
(hubs two orders of magnitude above the median), Zipf-like block sizes, a per-node homophily, and
a feature signal weak enough that k-means on the raw features stays at NMI <= 0.3.

Default path (``--encoder sign``): SIGN features ``[x, Sx, S^2 x]`` computed once by int32 CSR
products in plain PyTorch, an MLP encoder trained by CCA-SSG on node mini-batches, an EM refit of
the GMM after every epoch. ``--encoder gcn|sage|gat``: that encoder on the raw features, NS4GC,
``data.loader=neighbor``. Beside the result it prints two training-free baselines: k-means on the
raw features and on the features the encoder sees (the pre-propagated ones on the default path).

The last line is one JSON object: sizes, ``edges_directed``, ``nmi``/``ari``, ``raw_kmeans_nmi``,
``propagated_kmeans_nmi``, seconds per stage (``generate_seconds``, ``propagate_seconds``,
``epoch_seconds``, ``em_seconds`` (mean per epoch-end refit), ``final_seconds`` (last refit,
scoring, outputs), ``total_seconds`` (the pipeline, baselines excluded)), ``peak_rss_mb`` and
``peak_gpu_mb``.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from gnngmm.baselines import kmeans_scores  # noqa: E402
from gnngmm.data.synthetic import PRESETS, planted_features, planted_labels, preset  # noqa: E402
from gnngmm.train import train  # noqa: E402


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def graph_params(args) -> dict:
    p = preset(args.preset, args.scale)
    for arg, key in (
        ("nodes", "num_nodes"),
        ("edges", "num_edges"),
        ("features", "num_features"),
        ("blocks", "num_blocks"),
        ("homophily", "homophily"),
        ("signal", "feature_signal"),
        ("degree_sigma", "degree_sigma"),
    ):
        if getattr(args, arg) is not None:
            p[key] = getattr(args, arg)
    return p


def overrides_for(args, p: dict, out: Path) -> list[str]:
    planted = [
        "data=planted",
        "data.planted.generator=dcsbm",
        f"data.num_classes={p['num_blocks']}",
        f"data.planted.num_nodes={p['num_nodes']}",
        f"data.planted.num_edges={p['num_edges']}",
        f"data.planted.num_features={p['num_features']}",
        f"data.planted.homophily={p['homophily']}",
        f"data.planted.feature_signal={p['feature_signal']}",
        f"data.planted.degree_sigma={p['degree_sigma']}",
        f"data.planted.block_size_exponent={p['block_size_exponent']}",
    ]
    if args.encoder == "sign":
        model = [
            "data.precompute=sign",
            "data.precompute_hops=2",
            "data.precompute_norm=l2",
            "data.loader=nodes",
            f"data.batch_size={args.batch_size}",
            "encoder=mlp",
            "encoder.hidden_channels=256",
            "encoder.out_channels=64",
            "objective=cca_ssg",
            "objective.drop_edge=[0.0,0.0]",
            "objective.lam=0.03",
        ]
    else:
        model = [
            f"encoder={args.encoder}",
            "data.loader=neighbor",
            "data.batch_size=1024",
            "data.num_neighbors=[10,10]",
        ]
    gpu = args.device.startswith("cuda")
    return [
        *planted,
        *model,
        f"gmm.covariance_type={args.covariance_type}",
        "gmm.n_init=1",
        "head.refit_max_iter=10",
        "gmm.max_iter=20",
        f"loss.finetune_epochs={max(1, args.epochs // 3)}",
        "head.refit_every_n_epochs=1",
        f"trainer.max_epochs={args.epochs}",
        f"trainer.accelerator={'gpu' if gpu else 'cpu'}",
        "trainer.enable_progress_bar=false",
        "callbacks=none",
        "logger=none",
        "save_pictures=false",
        "+callbacks.kmeans._target_=gnngmm.baselines.KMeansBaseline",
        "+callbacks.kmeans.path=baselines.json",
        f"num_threads={args.threads}" if args.threads else "num_threads=null",
        f"seed={args.seed}",
        f"paths.output_dir={out}",
        f"paths.root_dir={out}",
        *args.overrides,
    ]


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="reddit", choices=sorted(PRESETS))
    p.add_argument("--scale", type=float, default=1.0, help="multiply the preset's nodes and edges (mean degree kept)")
    p.add_argument("--nodes", type=int, default=None)
    p.add_argument("--edges", type=int, default=None, help="directed edges (each undirected edge counts twice), exact")
    p.add_argument("--features", type=int, default=None)
    p.add_argument("--blocks", type=int, default=None)
    p.add_argument("--homophily", type=float, default=None, help="mean per-node homophily")
    p.add_argument("--signal", type=float, default=None, help="class signal in the features (noise std 1)")
    p.add_argument("--degree-sigma", type=float, default=None, help="log-normal spread of the degrees")
    p.add_argument("--encoder", default="sign", choices=["sign", "gcn", "sage", "gat"])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=2048)
    p.add_argument("--covariance-type", default="isotropic", help="the GMM's (default: the pipeline's own, isotropic)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--no-baselines", action="store_true", help="skip the two k-means baselines")
    p.add_argument("--output", default=None, help="run dir (default: a temporary dir)")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. encoder.hidden_channels=256")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    params = graph_params(args)
    out = Path(args.output or tempfile.mkdtemp(prefix="bench_scale_"))
    out.mkdir(parents=True, exist_ok=True)
    device = args.device
    raw = None
    if not args.no_baselines:  # the raw features depend on the labels and the seed only: regenerate them
        y = planted_labels(params["num_nodes"], params["num_blocks"], params["block_size_exponent"], args.seed)
        x = planted_features(y, params["num_blocks"], params["num_features"], params["feature_signal"], args.seed)
        raw = kmeans_scores(x, y, params["num_blocks"], device=device)
        print(
            f"k-means on the raw features: NMI {raw['nmi']:.4f} ARI {raw['ari']:.4f} ({raw['seconds']:.1f} s)",
            flush=True,
        )
        del x, y
        gc.collect()
    overrides = overrides_for(args, params, out)
    if args.no_baselines:
        overrides.append("+callbacks.kmeans.kmeans=false")
    with initialize_config_module("gnngmm.conf", version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    metrics = train(cfg)
    end = time.perf_counter()
    record = json.loads((out / "baselines.json").read_text()) if (out / "baselines.json").exists() else {}
    kmeans = record.get("kmeans", {})
    baseline_seconds = kmeans.get("seconds", 0.0)
    timings = record.get("timings", {})
    rows = (out / "history.csv").read_text().splitlines()
    header = rows[0].split(",")
    history = [dict(zip(header, r.split(","))) for r in rows[1:]]
    for r in history:  # history.csv holds no wall-clock times: the means are metrics.json's
        print(f"epoch {r['epoch']}: NMI {float(r['nmi']):.4f}, GMM log-likelihood {float(r['gmm/log_likelihood']):.3f}")
    result = {
        "preset": args.preset,
        "scale": args.scale,
        "nodes": metrics["num_nodes"],
        "edges_directed": 2 * metrics["num_edges"],
        "features": params["num_features"],
        "blocks": params["num_blocks"],
        "encoder": args.encoder,
        "device": device,
        "threads": torch.get_num_threads(),
        "epochs": metrics["epochs"],
        "nmi": round(metrics["nmi"], 4),
        "ari": round(metrics["ari"], 4),
        "raw_kmeans_nmi": round(raw["nmi"], 4) if raw else None,
        "raw_kmeans_ari": round(raw["ari"], 4) if raw else None,
        "propagated_kmeans_nmi": round(kmeans["nmi"], 4) if kmeans and kmeans.get("features") != "none" else None,
        "propagated_kmeans_ari": round(kmeans["ari"], 4) if kmeans and kmeans.get("features") != "none" else None,
        "generate_seconds": round(timings.get("load_seconds", float("nan")), 1),
        "propagate_seconds": round(timings.get("precompute_seconds", 0.0), 1),
        "setup_seconds": round(timings.get("setup_seconds", float("nan")), 1),
        "epoch_seconds": round(metrics["epoch_seconds"], 2),
        "em_seconds": round(metrics["em_seconds"], 2),
        "final_seconds": round(end - record["fit_end"], 1) if "fit_end" in record else None,
        "total_seconds": round(end - start - baseline_seconds, 1),
        "baseline_seconds": round(baseline_seconds + (raw["seconds"] if raw else 0.0), 1),
        "peak_rss_mb": round(_rss_mb(), 1),
        "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if device.startswith("cuda") else None,
    }
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
