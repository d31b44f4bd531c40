"""``predict(cfg)``: one row per node from a trained model -- node id, cluster, max responsibility,
entropy of the responsibilities, NLL, the anomaly score, its channels and the 0/1 outlier flag --
to CSV (and Parquet with pyarrow).

``ckpt_path`` is a run's ``model.ckpt`` (the final model) or ``checkpoints/last.ckpt`` (the last
epoch's state); either records the estimator's parameters and the data module it was trained on,
so the same encoder, transform and GMM are rebuilt. ``data=...`` applies them to another graph
with the same feature dimension.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from gnngmm.data import GraphDataModule
from gnngmm.errors import InputError
from gnngmm.estimator import GNNGMM
from gnngmm.loggers import resolved_config
from gnngmm.reporting import write_table

log = logging.getLogger("gnngmm")


def predict(cfg: DictConfig) -> Path:
    model = GNNGMM.load(cfg.ckpt_path)
    source = dict(model.data_source_ or {})
    if source.get("name") in (None, "data"):
        raise InputError(
            f"{cfg.ckpt_path} was fitted on a graph given in Python, not a dataset: use "
            "GNNGMM.load(...).prediction_table(data)"
        )
    own = resolved_config(cfg)
    if own.get("data"):  # another graph, prepared as the model's was
        source.update({k: v for k, v in own["data"].items() if k not in ("_target_", "defaults")})
    source.update(data_dir=own["paths"]["data_dir"], mirror_dir=own["paths"]["mirror_dir"])
    raw = GraphDataModule(**source).load_raw()
    try:
        table = model.prediction_table(raw)
    except (InputError, RuntimeError) as err:
        raise InputError(
            f"checkpoint {cfg.ckpt_path} does not fit dataset {source['name']!r}: {str(err).splitlines()[-1].strip()}"
        ) from None
    output = Path(cfg.output) if cfg.get("output") else Path(cfg.paths.output_dir) / "predictions.csv"
    output.parent.mkdir(parents=True, exist_ok=True)
    written = write_table(table, output)
    print(f"[gnngmm] predictions for {raw.num_nodes} nodes of {source['name']} -> {', '.join(map(str, written))}")
    return output


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    try:
        predict(cfg)
    except InputError as err:
        print(f"gnngmm: error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
