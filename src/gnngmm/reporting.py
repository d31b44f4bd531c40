"""Everything a run leaves behind besides metrics.json: tables (CSV) and pictures (PNG), and the
same pictures and tables sent to W&B when it is on."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import torch

log = logging.getLogger(__name__)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_rows(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    keys = list(dict.fromkeys(k for row in rows for k in row))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k) for k in keys})


def write_history(path: Path, history: list[dict]) -> None:
    """One row per epoch-end refit (cluster sizes as a ``;``-joined column)."""
    rows = [{**row, "cluster_sizes": ";".join(map(str, row.get("cluster_sizes", [])))} for row in history]
    write_rows(Path(path), rows)


def write_table(table: dict, path: Path) -> list[Path]:
    """CSV at ``path`` (columns: tensors or lists), plus a Parquet copy when pyarrow is installed."""
    columns = list(table)
    values = [table[c].tolist() if isinstance(table[c], torch.Tensor) else list(table[c]) for c in columns]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(zip(*values))
    written = [path]
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return written
    parquet = path.with_suffix(".parquet")
    pq.write_table(pa.table(dict(zip(columns, values))), parquet)
    return written + [parquet]


def write_bic(output_dir: Path, rows: list[dict], chosen: int, criterion: str = "bic") -> None:
    write_rows(output_dir / "bic.csv", rows)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ks = [r["k"] for r in rows]
    ax.plot(ks, [r["bic"] for r in rows], marker="o", label="BIC")
    ax.axvline(chosen, color="tab:red", linestyle="--", label=f"chosen K={chosen} ({criterion})")
    ax.set_xlabel("K")
    ax.set_ylabel("BIC (lower is better)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(output_dir / "bic.png", dpi=110)
    plt.close(fig)


def embedding_2d(z: torch.Tensor, method: str = "pca", seed: int = 0) -> tuple[torch.Tensor, str]:
    """2-D projection for pictures: PCA always; t-SNE (scikit-learn) or UMAP (umap-learn) when
    asked for and installed, else PCA. Returns the points and the method used."""
    if method == "umap":
        try:
            import umap

            return torch.as_tensor(umap.UMAP(random_state=seed).fit_transform(z.numpy())), "UMAP"
        except ImportError:
            log.info("umap-learn is not installed: PCA picture instead")
    if method == "tsne":
        try:
            from sklearn.manifold import TSNE

            return torch.as_tensor(TSNE(random_state=seed, init="pca").fit_transform(z.numpy())), "t-SNE"
        except ImportError:
            log.info("scikit-learn is not installed: PCA picture instead")
    z = z.double() - z.double().mean(0)
    _, _, v = torch.linalg.svd(z, full_matrices=False)
    return (z @ v[:2].T).float(), "PCA"


def save_pictures(output_dir: Path, result, y=None, projection: str = "pca") -> list[Path]:
    """embedding.png (coloured by cluster, and by true label ``y`` when known) and
    cluster_sizes.png, from a refit's result (its GMM input ``z``, assignments and sizes)."""
    plt = _plt()
    z = result.z.cpu()
    if z.shape[0] > 20000:  # pictures of a sample: the projection and the scatter stay fast
        keep = torch.randperm(z.shape[0], generator=torch.Generator().manual_seed(0))[:20000]
    else:
        keep = torch.arange(z.shape[0])
    xy, method = embedding_2d(z[keep], projection)
    xy = torch.zeros(z.shape[0], 2).index_copy_(0, keep, xy.float())
    panels = [("predicted cluster", result.pred)]
    if y is not None:
        panels.append(("true label", y.cpu()))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.5), squeeze=False)
    for ax, (title, colour) in zip(axes[0], panels):
        ax.scatter(xy[keep, 0], xy[keep, 1], c=colour[keep], s=3, cmap="tab20", linewidths=0)
        ax.set_title(f"embedding ({method}) by {title}")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    paths = [output_dir / "embedding.png", output_dir / "cluster_sizes.png"]
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)
    sizes = result.cluster_sizes
    fig, ax = plt.subplots(figsize=(max(4, 0.35 * len(sizes) + 2), 3.2))
    ax.bar(range(len(sizes)), sizes)
    ax.set_xlabel("cluster")
    ax.set_ylabel("nodes")
    fig.tight_layout()
    fig.savefig(paths[1], dpi=110)
    plt.close(fig)
    return paths


def log_to_loggers(loggers: list, metrics: dict, output_dir: Path, tables: dict | None = None) -> None:
    """Final metrics, pictures, a prediction sample and the explanation tables (with
    ``report.html`` as an artifact) to W&B (the CSV logger keeps the per-epoch curves; the final
    numbers are in metrics.json)."""
    for logger in loggers:
        if type(logger).__name__ == "WandbLogger":
            _log_wandb(logger, metrics, output_dir)
            if tables is not None:
                from gnngmm.report import log_to_wandb

                report = output_dir / "report.html"
                log_to_wandb(logger.experiment, tables, report if report.exists() else None)


def _log_wandb(logger, metrics: dict, output_dir: Path) -> None:
    import wandb

    run = logger.experiment
    for key, value in metrics.items():
        if isinstance(value, (int, float, str)):
            run.summary[key] = value
    images = {}
    for name in ("embedding", "cluster_sizes", "bic"):
        path = output_dir / f"{name}.png"
        if path.exists():
            images[f"pictures/{name}"] = wandb.Image(str(path))
    predictions = output_dir / "predictions.csv"
    if predictions.exists():
        with open(predictions) as f:
            rows = list(csv.reader(f))
        images["predictions_sample"] = wandb.Table(columns=rows[0], data=rows[1:201])
    bic = output_dir / "bic.csv"
    if bic.exists():
        with open(bic) as f:
            rows = list(csv.reader(f))
        images["bic_table"] = wandb.Table(columns=rows[0], data=rows[1:])
    if images:
        run.log(images)
