"""``train(cfg)``: the one place that reads the config. Instantiates data, encoder, objective, GMM,
module, loggers and trainer; trains; refits the GMM a last time; writes ``metrics.json``.

``main`` is the Hydra entry point (``python train.py ...`` or ``gnngmm-train ...``).
"""

from __future__ import annotations

import json
import logging
import resource
import sys
import time
import traceback
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ProgressBar
from omegaconf import DictConfig

from gnngmm.anomaly import anomaly_report, check_score
from gnngmm.callbacks.em_refit import EMRefit, refit
from gnngmm.embedding import EmbeddingTransform
from gnngmm.errors import InputError
from gnngmm.loggers import build_loggers, finish_loggers, resolved_config
from gnngmm.mixture import GaussianMixture
from gnngmm.mixture.criteria import CRITERIA
from gnngmm.module import GNNGMM

log = logging.getLogger("gnngmm")


def resolve_k(k, num_nodes: int | None = None) -> int | None:
    """``gmm.k`` as an int (None for ``auto``), or an InputError naming the bad value. Without
    ``num_nodes`` only the value itself is checked (before any data is loaded)."""
    if isinstance(k, str) and k.strip().lower() == "auto":
        return None
    if isinstance(k, bool) or not isinstance(k, int):
        raise InputError(f"gmm.k must be an integer >= 1 or 'auto', got {k!r}")
    if k < 1:
        raise InputError(f"gmm.k must be >= 1, got {k}")
    if num_nodes is not None and k > num_nodes:
        raise InputError(f"gmm.k={k} exceeds the number of nodes ({num_nodes})")
    return k


def build_gmm(gcfg: DictConfig, k: int, seed: int) -> GaussianMixture:
    return GaussianMixture(
        k, covariance_type=gcfg.covariance_type, tol=gcfg.tol, reg_covar=gcfg.reg_covar,
        max_iter=gcfg.max_iter, n_init=gcfg.n_init, init_params=gcfg.init_params,
        random_state=seed, min_component_size=gcfg.min_component_size, kmeans_n_init=gcfg.kmeans_n_init,
    )


def gmm_loss_start(cfg: DictConfig) -> int:
    """First epoch of the GMM term: ``gmm.loss_start_epoch``, or the last ``gmm.finetune_epochs``."""
    if cfg.gmm.get("loss_start_epoch") is not None:
        return int(cfg.gmm.loss_start_epoch)
    return max(1, int(cfg.trainer.max_epochs) - int(cfg.gmm.finetune_epochs))


def build_module(cfg: DictConfig, num_features: int, k: int, loss_start: int = 0) -> GNNGMM:
    """Encoder, objective, GMM and embedding transform as the config says (also used by predict)."""
    encoder = instantiate(cfg.encoder)(in_channels=num_features)
    objective = instantiate(cfg.objective)(dim=encoder.out_channels) if cfg.get("objective") else None
    return GNNGMM(
        encoder, objective, build_gmm(cfg.gmm, k, cfg.seed), EmbeddingTransform(**cfg.gmm.embedding),
        optimizer=instantiate(cfg.optimizer), gmm_loss_weight=cfg.gmm.loss_weight,
        gmm_loss_start_epoch=loss_start, gmm_loss_scale_free=cfg.gmm.loss_scale_free,
        gmm_loss_on=cfg.gmm.loss_on,
    )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def train(cfg: DictConfig) -> dict:
    """Run one experiment; returns the flat metrics dict that is also written to metrics.json."""
    start = time.perf_counter()
    if cfg.get("num_threads"):
        torch.set_num_threads(int(cfg.num_threads))
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    resolve_k(cfg.gmm.k)  # fail on a bad value before loading anything
    check_score(cfg.get("anomaly_score", "nll"))

    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    data = datamodule.data
    # issue 15: a full-batch step that would not fit the device switches to data.loader=neighbor (or stops)
    from gnngmm.memory import guard_full_batch
    from omegaconf import OmegaConf

    guard_full_batch(datamodule, OmegaConf.to_container(cfg.encoder), OmegaConf.to_container(cfg.get("objective") or {}), cfg.trainer.get("accelerator"))
    k = resolve_k(cfg.gmm.k, data.num_nodes)
    k_range = list(cfg.gmm.k_range) if k is None else None
    if k_range is not None and int(k_range[0]) > data.num_nodes:
        raise InputError(f"gmm.k_range={k_range} starts above the number of nodes ({data.num_nodes})")
    k_criterion = cfg.gmm.get("k_criterion", "bic")
    if k_criterion not in CRITERIA:
        raise InputError(f"gmm.k_criterion={k_criterion!r} is not one of {', '.join(CRITERIA)}")

    loss_start = gmm_loss_start(cfg)
    module = build_module(cfg, datamodule.num_features, k or int(k_range[0]), loss_start)
    module.run_config = resolved_config(cfg)
    loggers = build_loggers(cfg)
    callbacks = [
        EMRefit(
            cfg.gmm.refit_every_n_epochs, cfg.gmm.refit_max_iter, k_range, output_dir / "history.csv",
            loss_start_epoch=loss_start if cfg.gmm.loss_weight > 0 else None,
            reseed_at_loss_start=cfg.gmm.reseed_at_loss_start, k_criterion=k_criterion,
        )
    ]
    callbacks += [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    if cfg.trainer.get("enable_progress_bar") is False:  # `trainer.enable_progress_bar=false` wins
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)

    try:
        epochs = 0
        if module.trainable and module.objective is not None and cfg.trainer.get("max_epochs", 1) != 0:
            trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
            epochs = trainer.current_epoch
        else:
            log.info("encoder %s has nothing to train: fitting the GMM on its output directly", cfg.encoder.get("arch"))
        module.to(trainer.strategy.root_device)  # Lightning's teardown left it on the CPU: refit on the device
        final = refit(
            module, data, max_iter=cfg.gmm.max_iter, k_range=k_range, k_criterion=k_criterion,
            fresh_inits=cfg.gmm.n_init if cfg.gmm.final_fresh_fit else 0,
        )
        train_seconds = time.perf_counter() - start
        metrics = {
            "dataset": cfg.data.name,
            "encoder": cfg.encoder.get("arch", "?"),
            "objective": (cfg.get("objective") or {}).get("_target_", "none").rsplit(".", 1)[-1],
            "k": final["k"],
            "covariance_type": module.gmm.covariance_type,
            "seed": int(cfg.seed),
            **{m: final[m] for m in ("nmi", "ari", "acc") if m in final},
            "gmm_log_likelihood": final["log_likelihood"],
            "bic": final["bic"],
            "epochs": int(epochs),
            "train_seconds": round(train_seconds, 3),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "num_nodes": int(data.num_nodes),
            "num_edges": int(data.edge_index.shape[1] // 2),
            "cluster_sizes": final["cluster_sizes"],
        }
        if module.history:
            for key, name in (("time/epoch_seconds", "epoch_seconds"), ("time/em_refit_seconds", "em_seconds")):
                values = [row[key] for row in module.history if key in row]
                metrics[name] = round(sum(values) / len(values), 4) if values else None
        if getattr(data, "outlier", None) is not None:
            metrics.update(anomaly_report(module, data, cfg.get("anomaly_score", "nll"), final["z"], final["log_prob"]))
        if trainer.is_global_zero:
            write_outputs(output_dir, metrics, final, module, data, cfg, loggers)
        return metrics
    finally:
        finish_loggers(loggers)


def write_outputs(output_dir: Path, metrics: dict, final: dict, module, data, cfg, loggers) -> None:
    """metrics.json, the per-epoch history, the BIC table, predictions and pictures."""
    from gnngmm import reporting

    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    reporting.write_predictions(output_dir, module, data, final["log_prob"])
    if module.bic_table:
        reporting.write_bic(output_dir, module.bic_table, final["k"], cfg.gmm.get("k_criterion", "bic"))
    if cfg.get("save_pictures", True):
        reporting.save_pictures(output_dir, data, final, cfg.get("picture_projection", "pca"))
    reporting.log_to_loggers(loggers, metrics, output_dir)
    line = "  ".join(f"{m.upper()} {metrics[m]:.4f}" for m in ("nmi", "ari", "acc", "auroc") if m in metrics)
    print(
        f"[gnngmm] {metrics['dataset']} {metrics['encoder']} k={metrics['k']} seed={metrics['seed']}: "
        f"{line or 'no labels'}  LL {metrics['gmm_log_likelihood']:.4f}  ({metrics['train_seconds']:.1f} s) -> {output_dir}",
        flush=True,
    )


def _in_multirun() -> bool:
    try:
        return HydraConfig.get().mode.name == "MULTIRUN"
    except ValueError:
        return False


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point. Bad input exits with one clear line (status 2). In a multirun a failing
    job is recorded in its run dir (``failure.json``) and the sweep goes on. Returns the value
    named by ``optimized_metric`` (an unsupervised one) for sweepers."""
    try:
        metrics = train(cfg)
    except Exception as err:  # noqa: BLE001 - reported, then re-raised or recorded
        output_dir = Path(cfg.paths.output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "failure.json").write_text(
            json.dumps({"error": type(err).__name__, "message": str(err), "traceback": traceback.format_exc()}, indent=2)
        )
        if _in_multirun():
            log.error("job failed (%s: %s); recorded in %s/failure.json", type(err).__name__, err, output_dir)
            return None
        if isinstance(err, InputError):
            print(f"gnngmm: error: {err}", file=sys.stderr)
            sys.exit(2)
        raise
    name = cfg.get("optimized_metric")
    return metrics.get(name) if name else None


if __name__ == "__main__":
    main()
