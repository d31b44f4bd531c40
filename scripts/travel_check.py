"""Do trained runs end below the training-free reference, and which label-free criterion tracks NMI?

    python scripts/travel_check.py run --graphs bank_fields cora --seeds 3      # the runs (reused when done)
    python scripts/travel_check.py report --seeds 3 > /tmp/travel.md            # the tables

For every graph (the bank of ``gnngmm.data.bank`` and the development graphs) and seed, three
runs, each in its own process, one thread:

* ``defaults``: ``python train.py data=<graph> seed=S reference=none`` (what training gives a new
  graph before the training-free reference judges it), with
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
    # the defaults before the end check (reference=none): what training alone ends with
    "defaults": lambda g: [f"data={g}", "reference=none", *DUMP],
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


def load_graph(graph: str):
    from gnngmm.data.datasets import load_dataset

    return load_dataset(graph, ROOT / "data", ROOT.parent / "shared" / "datasets")


class FixedSpaces:
    """Label-free scores of any partition of one graph in spaces no training changes: MS2CAG's
    objective (the modularity of the propagated rows' cosine affinity, default setting) and the
    silhouette in the MS2CAG embedding (seed 0)."""

    def __init__(self, data, k: int):
        from gnngmm.baselines.ms2cag import DEFAULT_ALPHA, DEFAULT_GAMMA, DEFAULT_HOPS, SmoothedGram, ms2cag_labels

        self.gram = SmoothedGram(data.x, data.edge_index, DEFAULT_HOPS, DEFAULT_ALPHA)
        self.edge_index = data.edge_index
        self.gamma = DEFAULT_GAMMA
        self.omega = self.gram(torch.ones(data.num_nodes, 1)).double().flatten()
        self.total = float(self.omega.sum())
        _, self.embedding = ms2cag_labels(data.x, data.edge_index, k, seed=0, return_embedding=True)

    def attr_modularity(self, labels: torch.Tensor) -> float:
        h = torch.nn.functional.one_hot(labels.long()).float()
        zt_h = self.gram.x_t @ self.gram.smooth_t(self.gram.inv_norm[:, None] * h)  # Z^T H: (F, K)
        inside = zt_h.double().square().sum(0) / self.total
        degree = (self.omega @ h.double()) / self.total
        return float((inside - self.gamma * degree.square()).sum())

    def silhouette(self, labels: torch.Tensor) -> float:
        from gnngmm.quality import silhouette

        return silhouette(self.embedding, labels)


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
    "attr_modularity": "MS2CAG's own objective for the partition: modularity of the propagated rows' cosine "
    "affinity (the reference's default setting; fixed across epochs, features and graph)",
    "ref_space_silhouette": "cosine silhouette of the partition in the MS2CAG embedding (fixed across epochs)",
    "neg_epoch": "minus the epoch (a run that only declines correlates +1 here)",
}


def refit_table(run_dir: Path, reference: torch.Tensor, spaces: FixedSpaces) -> list[dict]:
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
                "attr_modularity": spaces.attr_modularity(labels),
                "ref_space_silhouette": spaces.silhouette(labels),
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


def basin(z: torch.Tensor, labels: torch.Tensor, k: int) -> tuple[torch.Tensor, float]:
    """An isotropic mixture fitted by EM on ``z`` from ``labels``' one-hot responsibilities (lightly
    smoothed, so that an empty cluster cannot break the first M-step): its partition and its mean
    log-likelihood (comparable with any other basin on the same ``z``)."""
    from gnngmm.mixture import GaussianMixture

    z = z.double()
    resp = torch.nn.functional.one_hot(labels.long(), k).double() + 1e-3
    gmm = GaussianMixture(k, covariance_type="isotropic", max_iter=100, random_state=0)
    gmm.initialize_from_responsibilities(z, resp / resp.sum(1, keepdim=True))
    gmm.set_params(warm_start=True)
    gmm.fit(z)
    return gmm.predict(z).cpu(), float(gmm.score(z))


def kmeans_basin(z: torch.Tensor, k: int, seed: int) -> tuple[torch.Tensor, float]:
    """The reseed's kind of basin: 10 k-means restarts by inertia, then EM (isotropic)."""
    from gnngmm.mixture import GaussianMixture

    gmm = GaussianMixture(k, covariance_type="isotropic", max_iter=100, kmeans_n_init=10, random_state=seed)
    gmm.fit(z.double())
    return gmm.predict(z.double()).cpu(), float(gmm.score(z.double()))


def dominates(candidate: torch.Tensor, reference: torch.Tensor, spaces: FixedSpaces) -> bool:
    """``candidate`` scores above ``reference`` on both yardsticks no training changes: modularity
    on the input graph and MS2CAG's objective on the propagated features."""
    from gnngmm.quality import modularity

    edges, n = spaces.edge_index, candidate.numel()
    return modularity(edges, candidate, n) > modularity(edges, reference, n) and spaces.attr_modularity(
        candidate
    ) > spaces.attr_modularity(reference)


def yardsticks(final: torch.Tensor, reference: torch.Tensor, spaces: FixedSpaces) -> dict:
    """How the final partition compares with the reference on the fixed yardsticks."""
    from gnngmm.quality import modularity

    n = final.numel()
    return {
        "graph": modularity(spaces.edge_index, final, n) - modularity(spaces.edge_index, reference, n),
        "attr": spaces.attr_modularity(final) / spaces.attr_modularity(reference) - 1,
        "agree": nmi(final, reference),
        "dominates": dominates(final, reference, spaces),
    }


def rules(
    refits: list[dict], final: torch.Tensor, reference: torch.Tensor, k: int, seed: int, zs: dict, spaces: FixedSpaces
) -> dict:
    """Label-free choices of the run's partition, post hoc; each returns a partition. ``zs``: the
    saved mixture inputs by epoch (end of pretraining, last epoch), or {}."""
    from gnngmm.quality import modularity

    best_ref = max(refits, key=lambda r: r["ref_nmi"])
    best_mod = max(refits, key=lambda r: r["modularity"])
    best_sil = max(refits, key=lambda r: r["silhouette"])
    best_views = max(refits, key=lambda r: r["views_nmi"] if not math.isnan(r["views_nmi"]) else -1)
    out = {
        "final (defaults)": final,
        "reference (MS2CAG)": reference,
        "refit most like the reference": best_ref["labels"],
        "refit of highest modularity": best_mod["labels"],
        "refit of highest silhouette": best_sil["labels"],
        "refit of most agreeing views": best_views["labels"],
        "the highest attributed modularity among refits, final, reference": max(
            [*(r["labels"] for r in refits), final, reference], key=spaces.attr_modularity
        ),
        "final or reference, the higher attributed modularity": max([final, reference], key=spaces.attr_modularity),
        "final or reference, the higher graph modularity": max(
            [final, reference], key=lambda p: modularity(spaces.edge_index, p, p.numel())
        ),
        "final if it beats the reference on graph AND attributed modularity, else reference": (
            final if dominates(final, reference, spaces) else reference
        ),
        "the last of the refits and final that dominate the reference, else reference": next(
            (c for c in reversed([*(r["labels"] for r in refits), final]) if dominates(c, reference, spaces)), reference
        ),
        "the dominating refit or final of highest graph modularity, else reference": max(
            [c for c in [*(r["labels"] for r in refits), final] if dominates(c, reference, spaces)] or [reference],
            key=lambda p: modularity(spaces.edge_index, p, p.numel()),
        ),
        "final or reference, the higher silhouette in the MS2CAG embedding": max(
            [final, reference], key=spaces.silhouette
        ),
        "consensus of final and reference": consensus([final, reference], k, seed),
        "consensus of all refits and reference": consensus([*[r["labels"] for r in refits], reference], k, seed),
    }
    if len(zs) == 2:
        start, last = sorted(zs)
        own, own_ll = basin(zs[last], final, k)
        from_ref, ref_ll = basin(zs[last], reference, k)
        out["end: the reference's basin on the trained embedding"] = from_ref
        out["end: the likelier of the own and the reference's basin"] = from_ref if ref_ll > own_ll else own
        before = [r for r in refits if r["epoch"] < start]
        candidates = [kmeans_basin(zs[start], k, seed), basin(zs[start], reference, k)]
        if before:
            candidates.append(basin(zs[start], before[-1]["labels"], k))
        out["reseed: k-means basin (as the pipeline)"] = candidates[0][0]
        out["reseed: the likeliest of k-means, warm and reference basins"] = max(candidates, key=lambda c: c[1])[0]
    return out


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
    margin_lines = [
        (
            "| graph | graph modularity: final - reference (per seed) | attributed modularity: final / reference - 1 | "
            "NMI(final, reference) | final dominates |"
        ),
        "|---|---|---|---|---|",
    ]
    rule_rows: dict[str, dict[str, list]] = {}
    for graph in graphs:
        base = runs / graph
        done = [s for s in range(seeds) if all((base / m / f"seed{s}" / "metrics.json").exists() for m in METHODS)]
        if not done:
            continue
        data = load_graph(graph)
        y = data.y
        m = {meth: [metrics(base / meth / f"seed{s}") for s in done] for meth in METHODS}
        peaks, fired, corr, spaces, margins = [], 0, {c: [] for c in CRITERIA}, None, []
        for s in done:
            run_dir = base / "defaults" / f"seed{s}"
            reference = torch.load(base / "ms2cag" / f"seed{s}" / "labels.pt")
            k = int(m["defaults"][done.index(s)]["k"])
            spaces = spaces or FixedSpaces(data, k)
            refits = refit_table(run_dir, reference, spaces)
            peak = max(refits, key=lambda r: r["nmi"])
            peaks.append((peak["nmi"], peak["epoch"]))
            fired += m["defaults"][done.index(s)].get("restored_epoch") is not None
            for c, v in correlations(refits).items():
                corr[c].append(v)
            final = final_labels(run_dir)
            margins.append(yardsticks(final, reference, spaces))
            z_file = run_dir / "refits_z.pt"
            zs = torch.load(z_file) if z_file.exists() else {}
            for name, labels in rules(refits, final, reference, k, s, zs, spaces).items():
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
        margin_lines.append(
            f"| {graph} | "
            + " | ".join(", ".join(f"{m[key]:+.4f}" for m in margins) for key in ("graph", "attr", "agree"))
            + f" | {sum(m['dominates'] for m in margins)} of {len(margins)} |"
        )
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
            "## The final partition against the reference, by the fixed yardsticks",
            "",
            *margin_lines,
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
