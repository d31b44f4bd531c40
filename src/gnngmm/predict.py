"""``predict(cfg)``: one row per node from a trained checkpoint -- node id, cluster, max
responsibility, entropy of the responsibilities, NLL score -- to CSV (and Parquet with pyarrow).

The checkpoint carries the resolved training config, so ``python predict.py ckpt_path=...``
rebuilds the same encoder, transform and GMM; ``data=...`` applies them to another graph with the
same feature dimension.
"""

from __future__ import annotations

import logging
import pickle
import sys
from pathlib import Path

import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from gnngmm.errors import InputError
from gnngmm.reporting import node_predictions, write_table
from gnngmm.train import build_module

log = logging.getLogger("gnngmm")


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        raise InputError(f"{path} is not a readable checkpoint ({type(err).__name__}: {str(err).splitlines()[0]})") from None
    if not isinstance(state, dict) or not (state.get("gnngmm") or {}).get("config") or not state["gnngmm"].get("gmm"):
        raise InputError(f"{path} is not a gnngmm checkpoint with a fitted GMM (no 'gnngmm' state)")
    return state


def predict(cfg: DictConfig) -> Path:
    state = load_checkpoint(cfg.ckpt_path)
    run_cfg = OmegaConf.create(state["gnngmm"]["config"])
    with open_dict(run_cfg):
        if cfg.get("data"):
            run_cfg.data.name = cfg.data.name
            run_cfg.data.num_classes = cfg.data.get("num_classes")
        run_cfg.data.data_dir = cfg.paths.data_dir
        run_cfg.data.mirror_dir = cfg.paths.mirror_dir
    datamodule = instantiate(run_cfg.data)
    datamodule.setup("predict")
    module = build_module(run_cfg, datamodule.num_features, int(state["gnngmm"]["gmm"]["n_components"]))
    try:
        module.load_state_dict(state["state_dict"])
    except RuntimeError as err:
        raise InputError(
            f"checkpoint {cfg.ckpt_path} does not fit dataset {run_cfg.data.name!r} "
            f"({datamodule.num_features} features): {str(err).splitlines()[-1].strip()}"
        ) from None
    module.on_load_checkpoint(state)
    module.eval()
    output = Path(cfg.output) if cfg.get("output") else Path(cfg.paths.output_dir) / "predictions.csv"
    output.parent.mkdir(parents=True, exist_ok=True)
    written = write_table(node_predictions(module, datamodule.data), output)
    print(f"[gnngmm] predictions for {datamodule.data.num_nodes} nodes of {run_cfg.data.name} -> {', '.join(map(str, written))}")
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
