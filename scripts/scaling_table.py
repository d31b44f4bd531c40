"""Table and growth slopes from ``bench_scale.py`` runs (the tables of docs/scaling.md).

    python scripts/bench_scale.py --scale 0.125 > r0125.log    # ... and 0.25, 0.5, 1
    python scripts/scaling_table.py r0125.log r025.log r05.log r1.log

Reads the last JSON line of each log (the benchmark's result) and prints a Markdown table of the
stages' seconds and peak memory by size, then, for every stage, the slope ``b`` of a least-squares
fit of ``log(value) = a + b log(directed edges)`` over the runs of one preset: ``b = 1`` is linear
growth. The runs of one preset keep its mean degree, so nodes grow like edges.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

STAGES = (
    "generate_seconds",
    "propagate_seconds",
    "epoch_seconds",
    "em_seconds",
    "final_seconds",
    "total_seconds",
    "peak_rss_mb",
)


def read_result(path: Path) -> dict:
    lines = [line for line in path.read_text().splitlines() if line.startswith("{") and '"edges_directed"' in line]
    if not lines:
        raise SystemExit(f"{path}: no bench_scale.py result line (did the run finish?)")
    return json.loads(lines[-1])


def slope(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of ``log y`` against ``log x`` (None when every run has one size)."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    spread = sum((a - mx) ** 2 for a in lx)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / spread if spread > 0 else None


def table(results: list[dict]) -> list[str]:
    head = ("preset", "scale", "nodes", "edges", "epochs", "NMI", "raw k-means", "propagated k-means", *STAGES)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in sorted(results, key=lambda r: (r["preset"], r["edges_directed"])):
        cells = [
            r["preset"],
            r["scale"],
            f"{r['nodes']:,}",
            f"{r['edges_directed']:,}",
            r["epochs"],
            r["nmi"],
            r.get("raw_kmeans_nmi"),
            r.get("propagated_kmeans_nmi"),
            *(r.get(s) for s in STAGES),
        ]
        lines.append("| " + " | ".join("-" if c is None else str(c) for c in cells) + " |")
    return lines


def slopes(results: list[dict]) -> list[str]:
    lines = ["| preset | runs | " + " | ".join(STAGES) + " |", "|" + "---|" * (len(STAGES) + 2)]
    for preset in sorted({r["preset"] for r in results}):
        runs = [r for r in results if r["preset"] == preset]
        if len(runs) < 2:
            continue
        cells = []
        for stage in STAGES:
            pairs = [(r["edges_directed"], r[stage]) for r in runs if r.get(stage) and r[stage] > 0]
            b = slope(*zip(*pairs)) if len(pairs) >= 2 else None
            cells.append("-" if b is None else f"{b:.2f}")
        lines.append(f"| {preset} | {len(runs)} | " + " | ".join(cells) + " |")
    return lines


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("logs", nargs="+", type=Path)
    args = p.parse_args(argv)
    results = [read_result(path) for path in args.logs]
    print("\n".join(table(results) + [""] + slopes(results)))


if __name__ == "__main__":
    main()
