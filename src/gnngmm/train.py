"""``train(cfg)``: the command line's run. The config becomes objects once, here, at the top:

* the estimator (:class:`gnngmm.GNNGMM`, whose parameters are the config groups) and the data
  module (``instantiate(cfg.data)``), loggers and callbacks;
* :meth:`GNNGMM.fit`, the same fit ``GNNGMM(...).fit(data)`` runs;
* the outputs (:mod:`gnngmm.outputs`): labels meet results only in :func:`gnngmm.metrics.evaluate`.

``main`` is the Hydra entry point (``python train.py ...`` or ``gnngmm-train ...``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import time
import traceback
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig

from gnngmm.anomaly import COMBINATION_RULES
from gnngmm.callbacks import HistoryCSV
from gnngmm.errors import InputError
from gnngmm.estimator import GNNGMM
from gnngmm.loggers import build_loggers, finish_loggers, resolved_config
from gnngmm.metrics import evaluate
from gnngmm.outputs import run_metrics, write_outputs
from gnngmm.pipeline import instantiate_component
from gnngmm.rundir import RunComplete, claim_run_dir

log = logging.getLogger("gnngmm")

# metrics.json keys a sweep may optimise: computed without labels. modularity compares trials
# whatever they change; bic / gmm_log_likelihood only trials with the same embedding and loss weight
UNSUPERVISED_METRICS = ("modularity", "bic", "gmm_log_likelihood")
# the config groups that are estimator parameters of the same name
ESTIMATOR_GROUPS = (
    "encoder",
    "objective",
    "optimizer",
    "gmm",
    "head",
    "loss",
    "steer",
    "safeguard",
    "reference",
    "trainer",
)


def check_config(cfg: DictConfig) -> None:
    """Refuse run-level values that would only fail (or silently mislead) after training."""
    name = cfg.get("optimized_metric")
    if name is not None and name not in UNSUPERVISED_METRICS:
        raise InputError(
            f"optimized_metric={name!r} is not allowed: a sweep may only optimise an unsupervised metric "
            f"({', '.join(UNSUPERVISED_METRICS)}); label metrics (nmi, ari, acc, auroc, ...) are reported, "
            "never optimised"
        )


def estimator_arguments(cfg: DictConfig) -> dict:
    """:class:`GNNGMM`'s arguments from the config: each group of :data:`ESTIMATOR_GROUPS` is the
    parameter of the same name; ``gmm.k`` is ``n_clusters`` and ``seed`` is ``random_state``."""
    config = resolved_config(cfg)
    arguments = {group: config.get(group) for group in ESTIMATOR_GROUPS}
    arguments["gmm"] = {k: v for k, v in (arguments["gmm"] or {}).items() if k != "k"}
    arguments["steer"] = arguments["steer"] or "none"
    arguments["safeguard"] = arguments["safeguard"] or {}
    arguments["reference"] = arguments["reference"] or None
    return {
        **arguments,
        "n_clusters": config["gmm"].get("k"),
        "anomaly_score": config["anomaly_score"],
        "contamination": config["contamination"],
        "random_state": config["seed"],
        "verbose": True,
    }


class LabelMonitor:
    """Each refit's clusters and NLL scores against the data module's labels, for the per-epoch
    log (reporting only; a class, not a closure, so that DDP's spawned processes can take it)."""

    def __init__(self, datamodule):
        self.datamodule = datamodule

    def __call__(self, result) -> dict:
        return evaluate(self.datamodule.labels, result.pred, -result.score_samples)


@contextlib.contextmanager
def process_threads(num_threads):
    """``num_threads`` for DDP's processes too: they read ``OMP_NUM_THREADS`` (Lightning otherwise
    gives each one cores / processes threads). Restored afterwards."""
    saved = os.environ.get("OMP_NUM_THREADS")
    if num_threads:
        os.environ["OMP_NUM_THREADS"] = str(int(num_threads))
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = saved


def train(cfg: DictConfig) -> dict:
    """Run one experiment; returns the flat metrics dict that is also written to metrics.json."""
    start = time.perf_counter()
    check_config(cfg)
    model = GNNGMM(**estimator_arguments(cfg))
    model.settings()  # every argument checked, before any data is read
    data = resolved_config(cfg)["data"]
    datamodule = instantiate_component(data, keep_raw_features=model.anomaly_score in COMBINATION_RULES)
    if cfg.get("num_threads"):
        torch.set_num_threads(int(cfg.num_threads))
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = claim_run_dir(
        output_dir, cfg.get("ckpt_path"), bool(cfg.get("overwrite")), bool(cfg.get("auto_resume"))
    )
    loggers = build_loggers(cfg, output_dir)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    if cfg.trainer.get("enable_progress_bar") is False:  # `trainer.enable_progress_bar=false` wins
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    callbacks.append(HistoryCSV(output_dir / "history.csv"))
    try:
        with process_threads(cfg.get("num_threads")):
            model.fit(
                datamodule, callbacks=callbacks, logger=loggers, ckpt_path=ckpt_path, monitor=LabelMonitor(datamodule)
            )
        run = {
            "dataset": cfg.data.name,
            "encoder": cfg.encoder.get("arch", "?"),
            "objective": (cfg.get("objective") or {}).get("_target_", "none").rsplit(".", 1)[-1],
            "seed": int(cfg.seed),
        }
        metrics = run_metrics(model, datamodule, time.perf_counter() - start, run)
        if model.is_global_zero_:
            write_outputs(
                output_dir,
                metrics,
                model,
                datamodule.labels,
                loggers=loggers,
                pictures=cfg.get("save_pictures", True),
                report=cfg.get("save_report", True),
                projection=cfg.get("picture_projection", "pca"),
            )
        return metrics
    finally:
        finish_loggers(loggers)


def _in_multirun() -> bool:
    try:
        return HydraConfig.get().mode.name == "MULTIRUN"
    except ValueError:
        return False


CONFIG_GROUPS = (
    "data",
    "encoder",
    "objective",
    "optimizer",
    "gmm",
    "head",
    "loss",
    "steer",
    "safeguard",
    "reference",
    "trainer",
    "logger",
    "callbacks",
    "paths",
    "experiment",
    "hparams_search",
    "launcher",
    "stage1",
)


def check_group_choices(argv: list[str]) -> None:
    """``group=option`` arguments name an existing option (each of a multirun's comma-separated
    values too): one line and status 2 instead of Hydra's multi-line composition error."""
    from gnngmm.options import group_options

    for arg in argv:
        key, sep, value = arg.partition("=")
        key = key.lstrip("+")
        if not sep or key not in CONFIG_GROUPS or value in ("null", ""):
            continue
        options = group_options(key)
        for choice in value.split(","):
            if choice not in options:
                print(f"gnngmm: error: {key}={choice!r} is not one of {', '.join(options)}", file=sys.stderr)
                sys.exit(2)


def main() -> float | None:
    """``python train.py ...`` / ``gnngmm-train ...``: group choices checked, then Hydra."""
    check_group_choices(sys.argv[1:])
    return _hydra_main()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    """Hydra entry point. Bad input exits with one clear line (status 2). In a multirun a failing
    job is recorded in its run dir (``failure.json``) and the sweep goes on. With ``auto_resume`` a
    complete run dir is left as it is (a requeued job whose run had finished). Returns the value
    named by ``optimized_metric`` (an unsupervised one) for sweepers."""
    try:
        metrics = train(cfg)
    except RunComplete as done:  # a requeued job whose run had finished: nothing changes
        log.info("auto_resume: %s; nothing to do", done)
        metrics = done.metrics
    except SIGTERMException:  # Lightning stops at the next step; last.ckpt holds the last whole epoch
        resume = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
        print(f"gnngmm: interrupted by SIGTERM; resume with the same command plus ckpt_path={resume}", file=sys.stderr)
        sys.exit(128 + signal.SIGTERM)
    except Exception as err:  # noqa: BLE001 - reported, then re-raised or recorded
        output_dir = Path(cfg.paths.output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "failure.json").write_text(
            json.dumps(
                {"error": type(err).__name__, "message": str(err), "traceback": traceback.format_exc()}, indent=2
            )
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
