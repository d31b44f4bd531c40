"""Do trained runs end below the training-free reference, and which label-free criterion tracks NMI?

    python scripts/travel_check.py run --graphs bank_fields cora --seeds 3      # the runs (reused when done)
    python scripts/travel_check.py report --seeds 3 > /tmp/travel.md            # the tables

For every graph (the bank of ``gnngmm.data.bank`` and the development graphs) and seed, three
runs, each in its own process, one thread:

* ``defaults``: ``python train.py data=<graph> seed=S`` (what a new graph gets), with
  :class:`gnngmm.callbacks.refit_dump.RefitDump` saving every refit's partition and scores;
* ``ms2cag``: ``python scripts/ms2cag.py data=<graph> seed=S``, the training-free reference;
* ``ssgc-gmm``: ``scripts/benchmark.py``'s training-free SSGC baseline.

``report`` prints (Markdown) the run table (final NMI / ARI of each, the defaults' peak NMI over
the refits, which graphs end more than 0.01 under the reference), the criteria table (Spearman
rank correlation with NMI across the refits of a run, mean over seeds, per criterion and graph)
and label-free selection rules evaluated post hoc on the dumped partitions. Labels only score.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmark import METHODS as BENCHMARK_METHODS
from benchmark import ROOT, train_run

DEV = ["cora", "citeseer", "photo", "cs"]
DUMP = [
    "+callbacks.dump._target_=gnngmm.callbacks.refit_dump.RefitDump",
    "+callbacks.dump.path=${paths.output_dir}/refits.pt",
]
METHODS = {
    "defaults": lambda g: [f"data={g}", *DUMP],
    "ms2cag": lambda g: ["scripts/ms2cag.py", f"data={g}"],
    "ssgc-gmm": BENCHMARK_METHODS["ssgc-gmm"],
}
MARGIN = 0.01  # "below the reference": NMI or ARI more than this under it


def bank_graphs() -> list[str]:
    from gnngmm.data.bank import BANK

    return [f"bank_{name}" for name in BANK]


def run_all(graphs: list[str], methods: list[str], seeds: int, runs: Path, threads: int) -> None:
    for graph in graphs:
        for seed in range(seeds):
            for method in methods:
                train_run([*METHODS[method](graph), f"seed={seed}"], runs / graph / method / f"seed{seed}", threads)


# --------------------------------------------------------------------------- reading runs
def history(run_dir: Path) -> list[dict]:
    with open(run_dir / "history.csv") as f:
        return [{k: float(v) for k, v in row.items() if k != "cluster_sizes" and v != ""} for row in csv.DictReader(f)]


def metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def final_labels(run_dir: Path) -> torch.Tensor:
    with open(run_dir / "predictions.csv") as f:
        return torch.tensor([int(row["cluster"]) for row in csv.DictReader(f)])


def graph_labels(graph: str) -> torch.Tensor:
    from gnngmm.data.datasets import load_dataset

    return load_dataset(graph, ROOT / "data", ROOT.parent / "shared" / "datasets").y


# --------------------------------------------------------------------------- statistics
def nmi(a: torch.Tensor, b: torch.Tensor) -> float:
    from gnngmm.metrics import nmi_ari

    return nmi_ari(a.long(), b.long())[0]


def ari(a: torch.Tensor, b: torch.Tensor) -> float:
    from gnngmm.metrics import nmi_ari

    return nmi_ari(a.long(), b.long())[1]


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN when either side is constant."""
    from scipy.stats import spearmanr

    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return math.nan
    return float(spearmanr(x, y).statistic)


def _mean(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return statistics.fmean(values) if values else math.nan


def _pm(values: list[float]) -> str:
    if not values:
        return "-"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.4f} ± {std:.4f}"


# --------------------------------------------------------------------------- per-run analysis
CRITERIA = {
    "modularity": "gmm/modularity in history.csv (the input graph)",
    "silhouette": "cosine silhouette of the refit's partition in the mixture's input (RefitDump, every refit)",
    "log_likelihood": "the mixture's mean log-likelihood (history.csv)",
    "ref_nmi": "NMI between the refit's partition and the MS2CAG reference's (same seed)",
    "ref_ari": "ARI between the refit's partition and the reference's",
    "stability": "NMI between the refit's partition and the previous refit's",
    "views_nmi": "NMI between the mixture's partitions of two augmented views (RefitDump)",
    "neg_ssl_loss": "minus the self-supervised loss on the whole graph, fixed random draws (RefitDump)",
    "neg_epoch": "minus the epoch (a run that only declines correlates +1 here)",
}


def refit_table(run_dir: Path, reference: torch.Tensor) -> list[dict]:
    """One row per refit: its epoch, NMI / ARI (reporting) and every criterion's value."""
    rows = {int(r["epoch"]): r for r in history(run_dir)}
    dump = torch.load(run_dir / "refits.pt", weights_only=False)
    out, previous = [], None
    for epoch, labels, scores in zip(dump["epochs"], dump["labels"], dump["scores"]):
        h = rows[int(epoch)]
        labels = labels.long()
        out.append(
            {
                "epoch": epoch,
                "nmi": h["nmi"],
                "ari": h["ari"],
                "labels": labels,
                "modularity": h["gmm/modularity"],
                "silhouette": scores["silhouette"],
                "log_likelihood": h["gmm/log_likelihood"],
                "ref_nmi": nmi(labels, reference),
                "ref_ari": ari(labels, reference),
                "stability": nmi(labels, previous) if previous is not None else math.nan,
                "views_nmi": scores.get("views_nmi", math.nan),
                "neg_ssl_loss": -scores.get("ssl_loss", math.nan),
                "neg_epoch": -float(epoch),
            }
        )
        previous = labels
    return out


def correlations(refits: list[dict]) -> dict:
    """Spearman's rho of every criterion with NMI across the refits (those where it is defined)."""
    out = {}
    for name in CRITERIA:
        pairs = [(r[name], r["nmi"]) for r in refits if not math.isnan(r[name])]
        out[name] = spearman([p[0] for p in pairs], [p[1] for p in pairs]) if pairs else math.nan
    return out


def consensus(partitions: list[torch.Tensor], k: int, seed: int = 0) -> torch.Tensor:
    """A consensus of several partitions: the top-K left singular vectors of their one-hot
    indicator columns side by side (the spectral embedding of their co-association matrix), rows
    scaled to unit norm, then k-means (K)."""
    from gnngmm.baselines.kmeans import kmeans_labels

    h = torch.cat([torch.nn.functional.one_hot(p.long()).float() for p in partitions], 1)
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(h.shape[1], min(h.shape[1], k + 10), generator=g))
    for _ in range(10):  # subspace iteration on H H^T
        q, _ = torch.linalg.qr(h.T @ (h @ q))
    u, _, _ = torch.linalg.svd(h @ q, full_matrices=False)
    return kmeans_labels(torch.nn.functional.normalize(u[:, :k], dim=1), k, seed=seed, n_init=10)


def rules(refits: list[dict], final: torch.Tensor, reference: torch.Tensor, k: int, seed: int) -> dict:
    """Label-free choices of the run's partition, post hoc; each returns a partition."""
    best_ref = max(refits, key=lambda r: r["ref_nmi"])
    best_mod = max(refits, key=lambda r: r["modularity"])
    best_sil = max(refits, key=lambda r: r["silhouette"])
    best_views = max(refits, key=lambda r: r["views_nmi"] if not math.isnan(r["views_nmi"]) else -1)
    return {
        "final (defaults)": final,
        "reference (MS2CAG)": reference,
        "refit most like the reference": best_ref["labels"],
        "refit of highest modularity": best_mod["labels"],
        "refit of highest silhouette": best_sil["labels"],
        "refit of most agreeing views": best_views["labels"],
        "consensus of final and reference": consensus([final, reference], k, seed),
        "consensus of all refits and reference": consensus([*[r["labels"] for r in refits], reference], k, seed),
    }


# --------------------------------------------------------------------------- report
def report(graphs: list[str], seeds: int, runs: Path) -> str:
    run_lines = [
        (
            "| graph | defaults NMI / ARI | peak NMI over refits (epoch) | MS2CAG NMI / ARI | ssgc-gmm NMI / ARI | "
            "defaults - MS2CAG (NMI / ARI) | below the reference | safeguard fired |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    crit_lines = ["| graph | " + " | ".join(CRITERIA) + " |", "|---|" + "---|" * len(CRITERIA)]
    rule_rows: dict[str, dict[str, list]] = {}
    for graph in graphs:
        base = runs / graph
        done = [s for s in range(seeds) if all((base / m / f"seed{s}" / "metrics.json").exists() for m in METHODS)]
        if not done:
            continue
        y = graph_labels(graph)
        m = {meth: [metrics(base / meth / f"seed{s}") for s in done] for meth in METHODS}
        peaks, fired, corr = [], 0, {c: [] for c in CRITERIA}
        for s in done:
            run_dir = base / "defaults" / f"seed{s}"
            reference = torch.load(base / "ms2cag" / f"seed{s}" / "labels.pt")
            refits = refit_table(run_dir, reference)
            peak = max(refits, key=lambda r: r["nmi"])
            peaks.append((peak["nmi"], peak["epoch"]))
            fired += m["defaults"][done.index(s)].get("restored_epoch") is not None
            for c, v in correlations(refits).items():
                corr[c].append(v)
            k = int(m["defaults"][done.index(s)]["k"])
            for name, labels in rules(refits, final_labels(run_dir), reference, k, s).items():
                rule_rows.setdefault(name, {}).setdefault(graph, []).append((nmi(y, labels), ari(y, labels)))
        d = {key: [r[key] for r in m["defaults"]] for key in ("nmi", "ari")}
        r = {key: [r_[key] for r_ in m["ms2cag"]] for key in ("nmi", "ari")}
        gap = (
            statistics.fmean(d["nmi"]) - statistics.fmean(r["nmi"]),
            statistics.fmean(d["ari"]) - statistics.fmean(r["ari"]),
        )
        below = [
            s for i, s in enumerate(done) if d["nmi"][i] < r["nmi"][i] - MARGIN or d["ari"][i] < r["ari"][i] - MARGIN
        ]
        verdict = "**yes**" if gap[0] < -MARGIN or gap[1] < -MARGIN else "no"
        run_lines.append(
            f"| {graph} | {_pm(d['nmi'])} / {_pm(d['ari'])} | "
            f"{statistics.fmean(p[0] for p in peaks):.4f} ({', '.join(str(int(p[1])) for p in peaks)}) | "
            f"{_pm(r['nmi'])} / {_pm(r['ari'])} | "
            f"{_pm([x['nmi'] for x in m['ssgc-gmm']])} / {_pm([x['ari'] for x in m['ssgc-gmm']])} | "
            f"{gap[0]:+.4f} / {gap[1]:+.4f} | {verdict} (seeds {below or 'none'}) | {fired} of {len(done)} |"
        )
        crit_lines.append(f"| {graph} | " + " | ".join(f"{_mean(v):+.2f}" for v in corr.values()) + " |")
    rule_lines = ["| rule | " + " | ".join(g for g in graphs if any(g in v for v in rule_rows.values())) + " |"]
    shown = [g for g in graphs if any(g in v for v in rule_rows.values())]
    rule_lines.append("|---|" + "---|" * len(shown))
    for name, per_graph in rule_rows.items():
        cells = []
        for g in shown:
            vals = per_graph.get(g, [])
            cells.append(f"{_mean([v[0] for v in vals]):.4f} / {_mean([v[1] for v in vals]):.4f}" if vals else "-")
        rule_lines.append(f"| {name} | " + " | ".join(cells) + " |")
    legend = [f"- `{name}`: {text}" for name, text in CRITERIA.items()]
    return "\n".join(
        [
            "## Runs",
            "",
            *run_lines,
            "",
            "## Criteria (Spearman with NMI across refits, mean over seeds)",
            "",
            *crit_lines,
            "",
            *legend,
            "",
            "## Rules (post hoc, NMI / ARI, mean over seeds)",
            "",
            *rule_lines,
            "",
        ]
    )


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=["run", "report"])
    p.add_argument("--graphs", nargs="+", default=None, help="default: the bank, then the development graphs")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", default=str(ROOT / "logs" / "travel" / "runs"))
    args = p.parse_args(argv)
    graphs = args.graphs or [*bank_graphs(), *DEV]
    if args.what == "run":
        run_all(graphs, args.methods, args.seeds, Path(args.runs), args.threads)
    else:
        print(report(graphs, args.seeds, Path(args.runs)))


if __name__ == "__main__":
    main()
