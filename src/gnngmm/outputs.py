"""What a finished run writes into its run dir (claimed by :func:`gnngmm.rundir.claim_run_dir`).

* :func:`run_metrics`: ``metrics.json``'s content, what was run, what it found, and (where
  labels exist) how it compares;
* :func:`write_outputs`: predictions, the BIC table, the final model, the explanation tables and
  ``report.html``, pictures and the loggers' copies, then ``metrics.json``, last and atomically:
  a run dir holds ``metrics.json`` only once everything else is written, so it is either complete
  or resumable from its ``last.ckpt``, never in between.
"""

from __future__ import annotations

import json
import logging
import resource
from pathlib import Path

import torch

from gnngmm.anomaly import baseline_scores
from gnngmm.metrics import anomaly_metrics, evaluate
from gnngmm.quality import modularity
from gnngmm.rundir import COMPLETION_MARKER, write_text_atomic

log = logging.getLogger("gnngmm")


def provenance(world_size: int = 1) -> dict:
    """Versions, commit, device and parallelism of this run, for metrics.json."""
    import subprocess

    import lightning
    import torch_geometric

    from gnngmm import __version__

    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"],
                cwd=Path(__file__).resolve().parent,
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "gnngmm_version": __version__,
        "git_commit": commit,
        "torch_version": torch.__version__,
        "pyg_version": torch_geometric.__version__,
        "lightning_version": lightning.__version__,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "world_size": int(world_size),
        "torch_threads": torch.get_num_threads(),
    }


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_metrics(model, datamodule, seconds: float, run: dict) -> dict:
    """metrics.json: ``run`` (dataset, encoder, objective, seed), what the fitted ``model`` found on
    ``datamodule``'s graph, and (where labels exist) how it compares with them."""
    graph, labels, result = datamodule.data, datamodule.labels, model.result_
    metrics = {
        **run,
        "k": model.n_clusters_,
        "covariance_type": model.gmm_.covariance_type,
        **evaluate(labels, model.labels_),
        "gmm_log_likelihood": result.log_likelihood,
        "bic": result.bic,
        "modularity": modularity(graph.edge_index, model.labels_, graph.num_nodes),
        "epochs": model.epochs_,
        "restored_epoch": model.restored_epoch_,  # a safeguard's choice, else null
        "reference": model.reference_,  # the training-free reference check (gnngmm.reference), else null
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
        anomaly_score=model.anomaly_score,
        anomaly_channels=list(model.channels_),
        contamination=model.contamination,
        outlier_threshold=model.threshold_,
        outliers_flagged=int((model.decision_scores_ > model.threshold_).sum()),
    )
    if labels.outlier is not None:
        metrics.update(evaluate(labels, scores=model.decision_scores_))
        for name, score in baseline_scores(graph).items():
            metrics.update({f"{name}_{k}": v for k, v in anomaly_metrics(labels.outlier, score).items()})
    metrics.update(provenance(model.world_size_))
    return metrics


def write_outputs(
    output_dir: Path,
    metrics: dict,
    model,
    labels,
    *,
    loggers=(),
    pictures: bool = True,
    report: bool = True,
    projection: str = "pca",
) -> None:
    """Predictions, the BIC table, the final model, the explanation tables and ``report.html``,
    pictures and the loggers' copies; ``metrics.json`` last (atomically), marking the run complete."""
    from gnngmm import reporting

    reporting.write_table(model.prediction_table(), output_dir / "predictions.csv")
    if model.bic_table_:
        reporting.write_bic(output_dir, model.bic_table_, model.n_clusters_, model.module_.head.k_criterion)
    model.save(output_dir / "model.ckpt")
    tables = write_report(output_dir, metrics, model, labels) if report else None
    if pictures:
        reporting.save_pictures(output_dir, model.result_, labels.y, projection)
    reporting.log_to_loggers(loggers, metrics, output_dir, tables)
    write_text_atomic(output_dir / COMPLETION_MARKER, json.dumps(metrics, indent=2) + "\n")
    line = "  ".join(f"{m.upper()} {metrics[m]:.4f}" for m in ("nmi", "ari", "acc", "auroc") if m in metrics)
    print(
        f"[gnngmm] {metrics['dataset']} {metrics['encoder']} k={metrics['k']} seed={metrics['seed']}: "
        f"{line or 'no labels'}  LL {metrics['gmm_log_likelihood']:.4f}  ({metrics['train_seconds']:.1f} s) "
        f"-> {output_dir}",
        flush=True,
    )


def write_report(output_dir: Path, metrics: dict, model, labels) -> dict:
    """The explanation tables (CSV) and ``report.html`` of a fitted model; returns the tables."""
    from gnngmm.report import write_report as write_page
    from gnngmm.report import write_tables

    tables = model.explain(labels=labels.y, outliers=labels.outlier)
    write_tables(output_dir, tables)
    write_page(output_dir / "report.html", tables, model, metrics=metrics)
    return tables
