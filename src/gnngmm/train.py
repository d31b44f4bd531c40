"""``train(cfg)``: the command line's run. It builds, fits, finalises and reports:

* build: the estimator from the config (:meth:`GNNGMM.from_config`: the one config -> arguments
  mapping), the data module, loggers and callbacks;
* fit: :meth:`GNNGMM.fit_datamodule`, the same fit ``GNNGMM(...).fit(data)`` runs;
* report: labels meet results only in :func:`gnngmm.metrics.evaluate`; ``metrics.json``,
  ``predictions.csv``, ``model.ckpt``, pictures.

``main`` is the Hydra entry point (``python train.py ...`` or ``gnngmm-train ...``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import signal
import sys
import time
import traceback
from functools import partial
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig

from gnngmm.anomaly import baseline_scores
from gnngmm.callbacks import HistoryCSV
from gnngmm.components import build
from gnngmm.errors import InputError
from gnngmm.estimator import COMBINATION_RULES, GNNGMM
from gnngmm.loggers import build_loggers, finish_loggers, resolved_config
from gnngmm.metrics import anomaly_metrics, evaluate
from gnngmm.quality import modularity
from gnngmm.rundir import COMPLETION_MARKER, RunComplete, read_metrics, write_text_atomic

log = logging.getLogger("gnngmm")

# metrics.json keys a sweeper may optimise: computed without labels
# metrics.json keys a sweeper may optimise: computed without labels. modularity compares trials
# whatever they change; bic / gmm_log_likelihood only trials with the same embedding and loss weight
UNSUPERVISED_METRICS = ("modularity", "bic", "gmm_log_likelihood")
# data config keys that are not GraphDataModule arguments
_CONFIG_ONLY_DATA_KEYS = ("num_classes",)


def check_config(cfg: DictConfig) -> None:
    """Refuse values that would only fail (or silently mislead) after training, one line each."""
    name = cfg.get("optimized_metric")
    if name is not None and name not in UNSUPERVISED_METRICS:
        raise InputError(
            f"optimized_metric={name!r} is not allowed: a sweep may only optimise an unsupervised metric "
            f"({', '.join(UNSUPERVISED_METRICS)}); label metrics (nmi, ari, acc, auroc, ...) are reported, never optimised"
        )


RUN_OUTPUTS = ("metrics.json", "predictions.csv", "model.ckpt", "history.csv", "checkpoints/last.ckpt")


def claim_run_dir(output_dir: Path, ckpt_path, overwrite: bool = False, auto_resume: bool = False):
    """One run per run dir. Returns the checkpoint to resume from (``ckpt_path``, or the dir's own
    ``last.ckpt`` for an unfinished run when ``auto_resume``); refuses a dir holding another run.
    With ``auto_resume`` a complete dir (``metrics.json``, written last) raises :class:`RunComplete`
    and an unfinished one without ``last.ckpt`` starts again (``None``)."""
    present = [name for name in RUN_OUTPUTS if (output_dir / name).exists()]
    if not present:
        return ckpt_path
    own = output_dir / "checkpoints" / "last.ckpt"
    if ckpt_path is not None and Path(ckpt_path).resolve() == own.resolve():
        return ckpt_path  # continuing this dir's run in place
    if overwrite:
        log.warning("overwrite=true: removing the previous run's %s from %s", ", ".join(present), output_dir)
        for name in present:
            (output_dir / name).unlink()
        for extra in ("predictions.parquet", "bic.csv", "bic.png", "embedding.png", "cluster_sizes.png"):
            (output_dir / extra).unlink(missing_ok=True)
        return ckpt_path
    if auto_resume and ckpt_path is None:
        if (output_dir / COMPLETION_MARKER).exists():  # written last: every output is there
            raise RunComplete(output_dir, read_metrics(output_dir))
        if own.exists():
            log.info("auto_resume: continuing the unfinished run in %s from %s", output_dir, own)
            return str(own)
        log.info("auto_resume: %s holds an unfinished run without a checkpoint; starting it again", output_dir)
        return None
    raise InputError(
        f"{output_dir} already holds a run ({', '.join(present)}); start a new one elsewhere (hydra.run.dir=...), "
        f"replace it with overwrite=true, or continue it with ckpt_path={own}"
    )


def provenance(trainer_world_size: int = 1) -> dict:
    """Versions, commit, device and parallelism of this run, for metrics.json."""
    import subprocess

    import lightning
    import torch_geometric

    from gnngmm import __version__

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "gnngmm_version": __version__, "git_commit": commit, "torch_version": torch.__version__,
        "pyg_version": torch_geometric.__version__, "lightning_version": lightning.__version__,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "world_size": int(trainer_world_size), "torch_threads": torch.get_num_threads(),
    }


def build_datamodule(data_cfg: dict, **overrides):
    """The data config's :class:`GraphDataModule` (config-only keys such as ``num_classes`` dropped)."""
    spec = {k: v for k, v in data_cfg.items() if k not in _CONFIG_ONLY_DATA_KEYS}
    return build({**spec, **overrides})


@contextlib.contextmanager
def process_threads(num_threads):
    """``num_threads`` for DDP's processes too: they read ``OMP_NUM_THREADS`` (Lightning otherwise
    gives each one cores / processes threads, which made 2 one-thread-sized processes slower than
    one). Restored afterwards."""
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


def evaluate_result(labels, result) -> dict:
    """A refit's clusters and NLL scores against the labels, for the per-epoch log (reporting)."""
    return evaluate(labels, result.pred, -result.score_samples)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def train(cfg: DictConfig) -> dict:
    """Run one experiment; returns the flat metrics dict that is also written to metrics.json."""
    start = time.perf_counter()
    check_config(cfg)
    run_config = resolved_config(cfg)
    model = GNNGMM.from_config(run_config)
    settings = model._check_params()  # every argument, before any data is read
    if cfg.get("num_threads"):
        torch.set_num_threads(int(cfg.num_threads))
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = claim_run_dir(output_dir, cfg.get("ckpt_path"), bool(cfg.get("overwrite")), bool(cfg.get("auto_resume")))
    datamodule = build_datamodule(run_config["data"], keep_raw_features=model.anomaly_score in COMBINATION_RULES)
    datamodule.setup("fit")
    labels = datamodule.labels

    loggers = build_loggers(cfg, output_dir)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    if cfg.trainer.get("enable_progress_bar") is False:  # `trainer.enable_progress_bar=false` wins
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    callbacks.append(HistoryCSV(output_dir / "history.csv"))
    try:
        with process_threads(cfg.get("num_threads")):
            model.fit_datamodule(
                datamodule, callbacks=callbacks, logger=loggers, ckpt_path=ckpt_path, run_config=run_config,
                evaluate=partial(evaluate_result, labels), settings=settings,
            )
        metrics = run_metrics(cfg, model, datamodule, time.perf_counter() - start)
        if model.is_global_zero_:
            write_outputs(output_dir, metrics, model, labels, cfg, loggers)
        return metrics
    finally:
        finish_loggers(loggers)


def run_metrics(cfg: DictConfig, model: GNNGMM, datamodule, seconds: float) -> dict:
    """metrics.json: what was run, what it found, and (where labels exist) how it compares."""
    graph, labels, result = datamodule.data, datamodule.labels, model.result_
    metrics = {
        "dataset": cfg.data.name,
        "encoder": cfg.encoder.get("arch", "?"),
        "objective": (cfg.get("objective") or {}).get("_target_", "none").rsplit(".", 1)[-1],
        "k": model.n_clusters_,
        "covariance_type": model.gmm_.covariance_type,
        "seed": int(cfg.seed),
        **evaluate(labels, model.labels_),
        "gmm_log_likelihood": result.log_likelihood,
        "bic": result.bic,
        "modularity": modularity(graph.edge_index, model.labels_, graph.num_nodes),
        "epochs": model.epochs_,
        "restored_epoch": model.restored_epoch_,  # the safeguard's choice (gmm.keep_best), else null
        "train_seconds": round(seconds, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "num_nodes": int(graph.num_nodes),
        "num_edges": int(graph.edge_index.shape[1] // 2),
        "cluster_sizes": result.cluster_sizes,
    }
    if model.history_:
        for key, name in (("time/epoch_seconds", "epoch_seconds"), ("time/em_refit_seconds", "em_seconds")):
            values = [row[key] for row in model.history_ if key in row]
            metrics[name] = round(sum(values) / len(values), 4) if values else None
    metrics.update(
        anomaly_score=model.anomaly_score, anomaly_channels=list(model.channels_),
        contamination=model.contamination, outlier_threshold=model.threshold_,
        outliers_flagged=int((model.decision_scores_ > model.threshold_).sum()),
    )
    if labels.outlier is not None:
        metrics.update(evaluate(labels, scores=model.decision_scores_))
        for name, score in baseline_scores(graph).items():
            metrics.update({f"{name}_{k}": v for k, v in anomaly_metrics(labels.outlier, score).items()})
    metrics.update(provenance(model.world_size_))
    return metrics


def write_outputs(output_dir: Path, metrics: dict, model: GNNGMM, labels, cfg, loggers) -> None:
    """Predictions, the BIC table, the final model, pictures, the loggers' copies, then metrics.json:
    last and atomically, so that it marks a complete run dir (a stop before it leaves a dir that
    ``auto_resume`` finishes from ``last.ckpt``)."""
    from gnngmm import reporting

    reporting.write_table(model.prediction_table(), output_dir / "predictions.csv")
    if model.bic_table_:
        reporting.write_bic(output_dir, model.bic_table_, model.n_clusters_, model.k_criterion)
    model.save(output_dir / "model.ckpt")
    if cfg.get("save_pictures", True):
        reporting.save_pictures(output_dir, model.result_, labels.y, cfg.get("picture_projection", "pca"))
    reporting.log_to_loggers(loggers, metrics, output_dir)
    write_text_atomic(output_dir / COMPLETION_MARKER, json.dumps(metrics, indent=2) + "\n")
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


CONFIG_GROUPS = ("data", "encoder", "objective", "gmm", "trainer", "logger", "callbacks", "paths", "experiment",
                 "hparams_search", "launcher")


def check_group_choices(argv: list[str]) -> None:
    """``group=option`` arguments name an existing option (each of a multirun's comma-separated
    values too): one line and status 2 instead of Hydra's multi-line composition error."""
    from gnngmm.components import group_options

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
