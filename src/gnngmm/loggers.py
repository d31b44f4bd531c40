"""Experiment loggers from the ``logger`` config group; W&B falls back to offline without a key.

W&B must never need the network: with no API key (``WANDB_API_KEY`` or a ``~/.netrc`` entry)
the run logs offline into its run dir, to be uploaded later with ``wandb sync``.
"""

from __future__ import annotations

import logging
import netrc
import os
import secrets
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def wandb_has_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def resolved_config(cfg: DictConfig) -> dict:
    """The run's config as plain data, without Hydra's own node."""
    return OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=True)


def build_loggers(cfg: DictConfig, run_dir: Path | None = None) -> list:
    loggers = []
    for conf in (cfg.get("logger") or {}).values():
        if not conf:
            continue
        if "Wandb" in conf.get("_target_", ""):
            loggers.append(_wandb_logger(conf, cfg, run_dir))
        else:
            loggers.append(instantiate(conf))
    flat = resolved_config(cfg)
    for logger in loggers:
        logger.log_hyperparams(flat)
    return loggers


def wandb_run_id(run_dir: Path) -> str:
    """The run dir's W&B run id (``wandb_run_id`` file), created on first use: a resumed run, in
    the same dir, continues the same W&B run."""
    path = Path(run_dir) / "wandb_run_id"
    if path.exists():
        return path.read_text().strip()
    run_id = secrets.token_hex(4)
    path.write_text(run_id + "\n")
    return run_id


def _wandb_logger(conf: DictConfig, cfg: DictConfig, run_dir: Path | None = None):
    mode = os.environ.get("WANDB_MODE", "").lower()
    offline = bool(conf.get("offline")) or mode in ("offline", "dryrun") or not wandb_has_credentials()
    if offline and mode not in ("offline", "dryrun", "disabled"):
        # WandbLogger(offline=True) starts the run in offline mode; the environment is left alone
        log.info(
            "W&B: no API key found, logging offline; upload later with `wandb sync %s/wandb/offline-run-*`",
            conf.save_dir,
        )
    os.makedirs(conf.save_dir, exist_ok=True)
    saved = os.environ.get("WANDB_MODE")
    extra = {"tags": [*(conf.get("tags") or []), *(cfg.get("tags") or [])]}
    if run_dir is not None:
        extra.update(id=wandb_run_id(run_dir), resume="allow")
    logger = instantiate(conf, offline=offline, **extra)  # Lightning sets WANDB_MODE=dryrun when offline
    logger._gnngmm_wandb_mode = saved  # restored by finish_loggers: the mode must not outlive the run
    return logger


def finish_loggers(loggers: list) -> None:
    """Close W&B runs so the next job of a multirun starts its own run."""
    for logger in loggers:
        if type(logger).__name__ == "WandbLogger":
            import wandb

            if wandb.run is not None:
                wandb.finish()
            saved = getattr(logger, "_gnngmm_wandb_mode", "unset")
            if saved is None:
                os.environ.pop("WANDB_MODE", None)
            elif saved != "unset":
                os.environ["WANDB_MODE"] = saved
        elif hasattr(logger, "finalize"):
            logger.finalize("success")
