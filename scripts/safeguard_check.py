"""The safeguards (``safeguard.modularity``, ``safeguard.silhouette``) on runs that decline, and what
they cost on runs that do not.

    python scripts/safeguard_check.py                      # 5 seeds; reads logs/benchmark for part 2
    python scripts/safeguard_check.py --seeds 3 --benchmark /tmp/b/runs

1. **A provoked decline** on a graph whose labels we made: a degree-corrected planted partition
   (8,000 nodes, 5 blocks, heavy-tailed degrees) trained as a new user trains a graph that no
   experiment was tuned for, with the closest experiment's settings (``experiment=cs
   data=planted``, Coauthor-CS's NS4GC settings). Its NMI peaks in the first 30 epochs and then
   falls through pretraining, as issue 16 reports on a co-authorship graph. Every seed runs with
   the safeguards off (both ``null``) and on (the defaults), and with the defaults a new graph
   gets (no experiment: NS4GC's Photo settings since 2026-11-27).
2. **A decline modularity does not see**: CiteSeer trained with Photo's settings (``experiment=photo
   data=citeseer``, what the defaults give it): NMI peaks by epoch 20 and falls while modularity rises; the clusters
   blur
   (their silhouette falls), which ``safeguard.silhouette`` catches. Off and on, as in 1.
3. **Their cost on the development graphs**: the runs ``scripts/benchmark.py`` left (every refit's
   modularity and, before the GMM phase, silhouette are in their ``history.csv``): how far each
   run fell under its best refit, and whether a safeguard fired.

Labels only score the runs. Prints Markdown (the tables of docs/experiments.md).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmark import ROOT, train_run  # noqa: E402

GRAPH = [
    "data=planted",
    "data.num_classes=5",
    "data.planted.generator=dcsbm",
    "data.planted.num_nodes=8000",
    "data.planted.avg_degree=14",
    "data.planted.homophily=0.7",
    "data.planted.feature_signal=0.3",
]
PLANTED = ["experiment=cs", *GRAPH]
# safeguard off / on with CS's settings; the defaults a new graph gets (no experiment)
OFF = ["safeguard=none"]
SETTINGS = {"off": [*PLANTED, *OFF], "on": PLANTED, "defaults": GRAPH}
BLURRING = ["experiment=photo", "data=citeseer"]


def history(run_dir: Path) -> list[dict]:
    with open(run_dir / "history.csv") as f:
        return [{k: float(v) for k, v in row.items() if k != "cluster_sizes" and v != ""} for row in csv.DictReader(f)]


def drop(rows: list[dict]) -> float:
    """How far (relative) the last refit's modularity ended under the best refit's."""
    best = max(r["gmm/modularity"] for r in rows)
    return 1.0 - rows[-1]["gmm/modularity"] / best


def silhouette_drop(rows: list[dict]) -> float | None:
    """How far (relative) the refit opening the GMM phase fell under the best silhouette before it
    (as the safeguard saw it: the refit before going back, when it went back), or None."""
    scored = [r for r in rows if "gmm/silhouette" in r]
    if len(scored) < 2:
        return None
    best = max(r["gmm/silhouette"] for r in scored[:-1])
    return 1.0 - scored[-1]["gmm/silhouette"] / best if best > 0 else None


def seed_runs(settings: dict[str, list[str]], seeds: int, runs: Path, threads: int) -> list[dict]:
    """For each seed, every setting's run (``runs/<setting>/seed<S>``, reused when done): its metrics."""
    return [
        {
            name: train_run([*overrides, f"seed={seed}"], runs / name / f"seed{seed}", threads)
            for name, overrides in settings.items()
        }
        for seed in range(seeds)
    ]


def mean_row(outs: list[dict], name: str) -> str:
    """``NMI mean ± std / ARI mean ± std`` of one setting over the seeds."""
    return " / ".join(_pm([out[name][key] for out in outs]) for key in ("nmi", "ari"))


def provoked(seeds: int, runs: Path, threads: int) -> list[str]:
    lines = [
        f"Provoked decline: `python train.py {' '.join(PLANTED)} seed=S`, safeguards off (`{' '.join(OFF)}`) "
        "and on (the defaults); defaults: the same graph without `experiment=cs`.",
        "",
        "| seed | peak NMI (epoch) | modularity: best refit -> last | off: NMI / ARI | on: NMI / ARI | restored epoch "
        "| defaults: NMI / ARI |",
        "|---|---|---|---|---|---|---|",
    ]
    outs = seed_runs(SETTINGS, seeds, runs, threads)
    for seed, out in enumerate(outs):
        rows = history(runs / "off" / f"seed{seed}")
        peak = max(rows, key=lambda r: r["nmi"])
        best = max(rows, key=lambda r: r["gmm/modularity"])
        lines.append(
            f"| {seed} | {peak['nmi']:.4f} ({int(peak['epoch'])}) | {best['gmm/modularity']:.4f} -> "
            f"{rows[-1]['gmm/modularity']:.4f} ({100 * drop(rows):.0f}% drop) | {out['off']['nmi']:.4f} / "
            f"{out['off']['ari']:.4f} | {out['on']['nmi']:.4f} / {out['on']['ari']:.4f} | "
            f"{out['on'].get('restored_epoch')} | {out['defaults']['nmi']:.4f} / {out['defaults']['ari']:.4f} |"
        )
    lines.append(f"| mean | | | {mean_row(outs, 'off')} | {mean_row(outs, 'on')} | | {mean_row(outs, 'defaults')} |")
    return lines


def blurring(seeds: int, runs: Path, threads: int) -> list[str]:
    lines = [
        f"A decline modularity does not see: `python train.py {' '.join(BLURRING)} seed=S`, safeguards off "
        f"(`{' '.join(OFF)}`) and on (the defaults).",
        "",
        "| seed | peak NMI (epoch) | modularity: first refit -> last | off: NMI / ARI | on: NMI / ARI "
        "| restored epoch |",
        "|---|---|---|---|---|---|",
    ]
    outs = seed_runs({"blurring_off": [*BLURRING, *OFF], "blurring_on": BLURRING}, seeds, runs, threads)
    for seed, out in enumerate(outs):
        rows = history(runs / "blurring_off" / f"seed{seed}")
        peak = max(rows, key=lambda r: r["nmi"])
        off, on = out["blurring_off"], out["blurring_on"]
        lines.append(
            f"| {seed} | {peak['nmi']:.4f} ({int(peak['epoch'])}) | {rows[0]['gmm/modularity']:.4f} -> "
            f"{rows[-1]['gmm/modularity']:.4f} | {off['nmi']:.4f} / {off['ari']:.4f} | "
            f"{on['nmi']:.4f} / {on['ari']:.4f} | {on.get('restored_epoch')} |"
        )
    lines.append(f"| mean | | | {mean_row(outs, 'blurring_off')} | {mean_row(outs, 'blurring_on')} | |")
    return lines


def development(benchmark: Path) -> list[str]:
    from omegaconf import OmegaConf

    guards = OmegaConf.load(ROOT / "conf" / "safeguard" / "default.yaml")  # the thresholds the runs used by default
    lines = [
        f"Development graphs: the `gnngmm` runs of `scripts/benchmark.py` under `{benchmark}`.",
        "",
        f"| dataset | runs | a safeguard fired | modularity drop at the end: mean / largest (threshold "
        f"{guards.modularity.tolerance:.0%}) | silhouette drop at the GMM phase's start: mean / largest (threshold "
        f"{guards.silhouette.tolerance:.0%}) |",
        "|---|---|---|---|---|",
    ]
    for dataset in ("cora", "citeseer", "photo", "cs"):
        dirs = sorted(p.parent for p in (benchmark / dataset / "gnngmm").glob("seed*/metrics.json"))
        if not dirs:
            continue
        drops = [drop(history(d)) for d in dirs]
        blur = [b for b in (silhouette_drop(history(d)) for d in dirs) if b is not None]
        fired = sum(json.loads((d / "metrics.json").read_text()).get("restored_epoch") is not None for d in dirs)
        blurred = f"{100 * statistics.fmean(blur):.1f}% / {100 * max(blur):.1f}%" if blur else "not logged"
        lines.append(
            f"| {dataset} | {len(dirs)} | {fired} | {100 * statistics.fmean(drops):.2f}% / "
            f"{100 * max(drops):.2f}% | {blurred} |"
        )
    return lines


def _pm(values: list[float]) -> str:
    return f"{statistics.fmean(values):.4f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.4f}"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--runs", default=str(ROOT / "logs" / "safeguard"), help="where the planted runs go (reused)")
    p.add_argument("--benchmark", default=str(ROOT / "logs" / "benchmark"), help="scripts/benchmark.py's --runs")
    args = p.parse_args(argv)
    runs = Path(args.runs)
    print(
        "\n".join(
            [
                *provoked(args.seeds, runs, args.threads),
                "",
                *blurring(args.seeds, runs, args.threads),
                "",
                *development(Path(args.benchmark)),
            ]
        )
    )


if __name__ == "__main__":
    main()
