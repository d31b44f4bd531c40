"""The bank of planted graphs (gnngmm.data.bank): write their data configs, generate and describe them.

    python scripts/graph_bank.py --write-configs       # conf/data/bank_<name>.yaml for every bank graph
    python scripts/graph_bank.py                       # generate (cached in the data dir) and describe all
    python scripts/graph_bank.py --names fields hetero

The description (Markdown, printed) gives each graph's size, classes and communities, the share
of its largest class, edge homophily at the class and the community level, words per node, the
modularity of the class partition and of the community partition on the graph, and the NMI of
k-means (K = classes) on the raw bag-of-words rows: how much the features alone say.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def write_configs(names: list[str]) -> list[Path]:
    """``conf/data/bank_<name>.yaml``: the dataset name and its class count (the default gmm.k)."""
    from gnngmm.data.bank import BANK

    paths = []
    for name in names:
        spec = BANK[name]
        path = ROOT / "conf" / "data" / f"bank_{name}.yaml"
        path.write_text(
            f"# Planted bank graph (gnngmm.data.bank, scripts/graph_bank.py): {spec.description}\n"
            f"# Generated from its own seed on first use, cached in paths.data_dir/bank; labels for reporting only.\n"
            f"defaults:\n  - default\n\nname: bank_{name}\nnum_classes: {spec.num_classes}\n"
        )
        paths.append(path)
    return paths


def describe(name: str, data_dir: Path) -> dict:
    """The numbers of the table for bank graph ``name``."""
    from gnngmm.baselines.kmeans import kmeans_labels
    from gnngmm.data.bank import BANK, bank_communities, load_bank
    from gnngmm.metrics import clustering_metrics
    from gnngmm.quality import modularity

    spec = BANK[name]
    data = load_bank(name, data_dir)
    community = bank_communities(name, data_dir)
    src, dst = data.edge_index
    y = data.y
    words = data.x.sum(1)
    rows = torch.nn.functional.normalize(data.x, dim=1)
    raw = kmeans_labels(rows, spec.num_classes, seed=0, n_init=3)
    return {
        "graph": f"bank_{name}",
        "nodes": data.num_nodes,
        "edges": data.edge_index.shape[1] // 2,
        "features": data.x.shape[1],
        "classes": spec.num_classes,
        "communities": int(community.max()) + 1,
        "largest class": float(torch.bincount(y).max()) / data.num_nodes,
        "class homophily": float((y[src] == y[dst]).float().mean()),
        "community homophily": float((community[src] == community[dst]).float().mean()),
        "words per node": float(words.mean()),
        "modularity (classes)": modularity(data.edge_index, y, data.num_nodes),
        "modularity (communities)": modularity(data.edge_index, community, data.num_nodes),
        "k-means on words NMI": clustering_metrics(y, raw)["nmi"],
        "what it covers": spec.description,
    }


def table(rows: list[dict]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in r.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    from gnngmm.data.bank import BANK

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--names", nargs="+", default=None, help="bank graphs (default: all)")
    p.add_argument("--write-configs", action="store_true", help="write conf/data/bank_<name>.yaml and stop")
    p.add_argument("--data-dir", default=os.environ.get("GNNGMM_DATA_DIR", str(ROOT / "data")))
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    names = args.names or list(BANK)
    if args.write_configs:
        for path in write_configs(names):
            print(path.relative_to(ROOT))
        return
    torch.set_num_threads(args.threads)
    rows = []
    for name in names:
        rows.append(describe(name, Path(args.data_dir)))
        print(f"  {name} done", file=sys.stderr, flush=True)
    print(table(rows))


if __name__ == "__main__":
    main()
