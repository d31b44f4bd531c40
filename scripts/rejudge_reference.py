"""What the training-free reference (``conf/reference``, :mod:`gnngmm.reference`) decides for
finished runs, from their ``predictions.csv`` (runs made before it existed, or with
``reference=none``): the graph loaded as ``train.py`` loads it, the check seeded by the run's seed.

    python scripts/rejudge_reference.py logs/travel/runs/*/defaults/seed* [--json out.json]

Prints one line per run: graph, seed, the run's NMI / ARI, the decision and the NMI / ARI the run
would end with (labels score only; they are never read by the check).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def datamodule(name: str):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from gnngmm.pipeline import instantiate_component

    GlobalHydra.instance().clear()
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"data={name}", f"paths.root_dir={ROOT}"])
    module = instantiate_component(OmegaConf.to_container(cfg.data, resolve=True))
    module.setup("fit")
    return module


def rejudge(run_dir: Path, cache: dict) -> dict:
    from gnngmm.estimator import GNNGMM
    from gnngmm.metrics import evaluate
    from gnngmm.pipeline import build_reference, resolve_settings

    metrics = json.loads((run_dir / "metrics.json").read_text())
    name = metrics["dataset"]
    if name not in cache:
        cache[name] = datamodule(name)
    dm = cache[name]
    with open(run_dir / "predictions.csv") as f:
        pred = torch.tensor([int(row["cluster"]) for row in csv.DictReader(f)])
    reference = build_reference(resolve_settings(GNNGMM().get_params()))
    check = reference.check(dm.data.x, dm.data.edge_index, pred, seed=int(metrics["seed"]))
    final = check.labels if check.decision == "reference" else pred
    after = evaluate(dm.labels, final)
    return {
        "run": str(run_dir),
        "graph": name,
        "seed": int(metrics["seed"]),
        "trained_nmi": metrics["nmi"],
        "trained_ari": metrics["ari"],
        "reference_nmi": evaluate(dm.labels, check.labels)["nmi"] if check.labels is not None else None,
        "reference_ari": evaluate(dm.labels, check.labels)["ari"] if check.labels is not None else None,
        "nmi": after["nmi"],
        "ari": after["ari"],
        **check.summary(),
    }


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    cache, rows = {}, []
    for run_dir in args.runs:
        row = rejudge(run_dir, cache)
        rows.append(row)
        print(
            f"{row['graph']:18s} seed {row['seed']}  trained {row['trained_nmi']:.4f} / {row['trained_ari']:.4f}  "
            f"reference {row['reference_nmi']:.4f} / {row['reference_ari']:.4f}  -> {row['decision']:9s} "
            f"{row['nmi']:.4f} / {row['ari']:.4f}  ({row['reason']})",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
