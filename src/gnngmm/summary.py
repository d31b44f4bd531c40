"""Aggregate the ``metrics.json`` of a multirun: mean ± std per configuration, grouped by the
swept keys (read from each job's ``.hydra/overrides.yaml``; ``seed`` is what gets averaged),
as Markdown, CSV, a PNG bar chart of NMI/ARI with error bars and ``summary.html`` (every run's
point beside the mean ± std, seconds and memory; :func:`gnngmm.report.write_summary_html`). Failed
jobs are listed."""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections import defaultdict
from pathlib import Path

import yaml

METRICS = (
    "nmi",
    "ari",
    "acc",
    "auroc",
    "average_precision",
    "gmm_log_likelihood",
    "bic",
    "train_seconds",
    "peak_rss_mb",
)


def _overrides(job: Path) -> dict[str, str]:
    path = job / ".hydra" / "overrides.yaml"
    if not path.exists():
        return {}
    out = {}
    for item in yaml.safe_load(path.read_text()) or []:
        key, _, value = str(item).partition("=")
        out[key.lstrip("+~")] = value
    return out


def collect(multirun_dir: str | Path) -> tuple[list[dict], list[dict]]:
    """(successful runs: overrides + metrics, failures: overrides + error)."""
    root = Path(multirun_dir)
    runs, failures = [], []
    for job in sorted({p.parent for p in root.rglob("metrics.json")} | {p.parent for p in root.rglob("failure.json")}):
        overrides = _overrides(job)
        if (job / "metrics.json").exists():
            runs.append(
                {"job": job.name, "overrides": overrides, "metrics": json.loads((job / "metrics.json").read_text())}
            )
        else:
            error = json.loads((job / "failure.json").read_text())
            failures.append({"job": job.name, "overrides": overrides, "error": f"{error['error']}: {error['message']}"})
    return runs, failures


def summarize(multirun_dir: str | Path, out_dir: str | Path | None = None) -> list[dict]:
    runs, failures = collect(multirun_dir)
    out_dir = Path(out_dir or multirun_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    all_keys = sorted({k for r in runs for k in r["overrides"]})
    swept = [k for k in all_keys if len({r["overrides"].get(k) for r in runs}) > 1 and k != "seed"]
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in runs:
        groups[tuple(r["overrides"].get(k, "") for k in swept)].append(r["metrics"])
    metrics = [m for m in METRICS if any(m in r["metrics"] for r in runs)]
    rows = []
    for key, members in sorted(groups.items()):
        row = dict(zip(swept, key))
        row["runs"] = len(members)
        for m in metrics:
            values = [float(x[m]) for x in members if m in x and x[m] is not None]
            row[f"{m}_mean"] = statistics.fmean(values) if values else math.nan
            row[f"{m}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        rows.append(row)
    _write_csv(out_dir / "summary.csv", rows)
    _write_markdown(out_dir / "summary.md", rows, swept, metrics, failures, multirun_dir)
    if rows and "nmi" in metrics:
        _plot(out_dir / "summary.png", rows, swept)
    from gnngmm.report import write_summary_html

    write_summary_html(out_dir / "summary.html", runs, swept, failures, source=multirun_dir)
    return rows


def _write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        path.write_text("")
        return
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _write_markdown(path, rows, swept, metrics, failures, source) -> None:
    head = [*(swept or ["config"]), "runs", *metrics]
    lines = [f"Summary of `{source}`", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row[k] for k in swept] if swept else ["all"]
        cells.append(str(row["runs"]))
        for m in metrics:
            digits = 1 if m in ("train_seconds", "peak_rss_mb", "bic") else 4
            cells.append(f"{row[f'{m}_mean']:.{digits}f} ± {row[f'{m}_std']:.{digits}f}")
        lines.append("| " + " | ".join(cells) + " |")
    if failures:
        lines += ["", f"{len(failures)} failed job(s):", ""]
        lines += [
            f"- job {f['job']} ({', '.join(f'{k}={v}' for k, v in f['overrides'].items())}): {f['error']}"
            for f in failures
        ]
    path.write_text("\n".join(lines) + "\n")


def _plot(path: Path, rows: list[dict], swept: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [", ".join(str(row[k]) for k in swept) or "all" for row in rows]
    xs = range(len(rows))
    fig, ax = plt.subplots(figsize=(max(4.5, 1.1 * len(rows) + 2), 3.6))
    width = 0.38
    for offset, metric in ((-width / 2, "nmi"), (width / 2, "ari")):
        if f"{metric}_mean" in rows[0]:
            ax.bar(
                [x + offset for x in xs],
                [r[f"{metric}_mean"] for r in rows],
                width,
                yerr=[r[f"{metric}_std"] for r in rows],
                capsize=3,
                label=metric.upper(),
            )
    ax.set_xticks(list(xs))
    ax.set_xticklabels(labels, rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.legend()
    ax.set_title("mean ± std over seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Summarise a multirun's metrics.json files")
    parser.add_argument("multirun_dir")
    parser.add_argument("--out", default=None, help="output dir (default: the multirun dir)")
    args = parser.parse_args(argv)
    summarize(args.multirun_dir, args.out)
    out = Path(args.out or args.multirun_dir)
    print((out / "summary.md").read_text())
    pictures = f", {out / 'summary.png'}" if (out / "summary.png").exists() else ""
    print(f"wrote {out / 'summary.md'}, {out / 'summary.csv'}{pictures}, {out / 'summary.html'}")


if __name__ == "__main__":
    main()
