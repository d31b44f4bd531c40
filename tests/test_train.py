"""End to end: composed configs run, write metrics.json, log offline, and fail clearly."""

from __future__ import annotations

import csv
import json
import os

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from conftest import ROOT, SMALL, run_cli
from raw_fixtures import graph
from gnngmm.errors import InputError
from gnngmm.mixture.criteria import knee
from gnngmm.train import train

METRIC_KEYS = {
    "dataset", "encoder", "k", "covariance_type", "seed", "nmi", "ari", "acc",
    "gmm_log_likelihood", "bic", "epochs", "train_seconds", "peak_rss_mb",
}


def experiment_names() -> list[str]:
    return sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))


def test_default_run_writes_metrics_json(make_cfg, tmp_path):
    cfg = make_cfg("logger=csv")
    metrics = train(cfg)
    written = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert METRIC_KEYS <= set(written)
    assert written == metrics
    assert written["dataset"] == "cora" and written["k"] == 7 and written["epochs"] == 2
    for name in ("nmi", "ari", "acc"):
        assert 0.0 <= written[name] <= 1.0
    # The fixture graph has strong planted clusters: even 2 epochs find them.
    assert written["nmi"] > 0.5
    assert sum(written["cluster_sizes"]) == 560
    history = (tmp_path / "out" / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch") and len(history) == 3  # header + one refit per epoch
    assert list((tmp_path / "out" / "csv").rglob("metrics.csv"))


@pytest.mark.parametrize(
    "overrides",
    [["encoder=gat", "encoder.heads=2"], ["encoder=sage"], ["gmm.covariance_type=diag"], ["encoder=sgc"],
     ["objective=grace"], ["objective=gae"], ["gmm.covariance_type=spherical", "seed=3"]],
    ids=lambda o: ",".join(o),
)
def test_command_line_variants_run(make_cfg, overrides):
    metrics = train(make_cfg(*overrides))
    assert metrics["nmi"] > 0.3
    chosen = [o.split("=", 1)[1] for o in overrides if o.startswith("gmm.covariance_type=")]
    assert metrics["covariance_type"] == (chosen[0] if chosen else "isotropic")
    assert metrics["encoder"] == next((o.split("=")[1] for o in overrides if o.startswith("encoder=")), "gcn")


@pytest.mark.parametrize("name", experiment_names())
def test_every_experiment_runs_with_fast_dev_run(make_cfg, name):
    cfg = make_cfg(f"experiment={name}", "trainer.fast_dev_run=true", *SMALL[1:])
    metrics = train(cfg)
    assert metrics["dataset"] == cfg.data.name
    assert metrics["epochs"] <= 1


def test_wandb_without_key_logs_offline(make_cfg, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("HOME", str(tmp_path))
    metrics = train(make_cfg("logger=wandb", "save_pictures=true"))
    assert "WANDB_MODE" not in os.environ, "the run's offline mode does not outlive it"
    runs = list((tmp_path / "out" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, "one offline run directory"
    assert list(runs[0].glob("*.wandb")), "the run's log file exists"
    assert metrics["nmi"] > 0.3


@pytest.mark.parametrize("k", [0, -2, 100000])
def test_bad_k_is_a_clear_error(make_cfg, k):
    with pytest.raises(InputError, match=rf"gmm.k.*{k}"):
        train(make_cfg(f"gmm.k={k}"))


def test_unknown_dataset_name_is_a_clear_error(make_cfg):
    with pytest.raises(InputError, match="unknown dataset 'nope'.*cora"):
        train(make_cfg("data.name=nope"))


def test_missing_data_without_network_names_dataset_and_dirs(make_cfg, tmp_path, monkeypatch):
    import fsspec

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(fsspec.AbstractFileSystem, "cp_file", offline, raising=False)
    monkeypatch.setattr("urllib.request.urlopen", offline)
    cfg = make_cfg("paths.mirror_dir=" + str(tmp_path / "no-mirror"))
    with pytest.raises(InputError) as err:
        train(cfg)
    message = str(err.value)
    assert "'cora'" in message and str(tmp_path / "data") in message and "no-mirror" in message


@pytest.mark.slow  # a subprocess / several processes
def test_cli_bad_inputs_exit_with_one_clear_line(tmp_path, mirror):
    common = [f"hydra.run.dir={tmp_path}/run", f"paths.data_dir={tmp_path}/data", f"paths.mirror_dir={mirror}", "logger=none"]
    result = run_cli(["train.py", "gmm.k=0", *common], cwd=ROOT)
    assert result.returncode == 2
    assert "gnngmm: error: gmm.k (n_clusters) must be >= 1, got 0" in result.stderr
    assert "Traceback" not in result.stderr
    too_many = run_cli(["train.py", "gmm.k=561", *common], cwd=ROOT)
    assert too_many.returncode == 2
    assert "gnngmm: error: gmm.k=561 exceeds the number of nodes (560)" in too_many.stderr
    unknown = run_cli(["train.py", "data=nope", *common], cwd=ROOT)
    assert unknown.returncode != 0
    assert "Could not find 'data/nope'" in unknown.stderr and "cora" in unknown.stderr
    unknown = run_cli(["train.py", "encoder=nope", *common], cwd=ROOT)
    assert "Could not find 'encoder/nope'" in unknown.stderr and "gcn" in unknown.stderr


@pytest.mark.slow  # a subprocess / several processes
def test_multirun_two_jobs(tmp_path, mirror):
    sweep = tmp_path / "sweep"
    args = [
        "train.py", "-m", "seed=0,1", f"hydra.sweep.dir={sweep}", f"paths.data_dir={tmp_path}/data",
        f"paths.mirror_dir={mirror}", *SMALL,
    ]
    result = run_cli(args, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted(sweep.glob("*/metrics.json"))
    assert len(runs) == 2
    seeds = sorted(json.loads(p.read_text())["seed"] for p in runs)
    assert seeds == [0, 1]


def test_all_groups_compose():
    GlobalHydra.instance().clear()
    with initialize_config_module("gnngmm.conf", version_base="1.3"):
        for group, options in {
            "data": ["cora", "citeseer", "pubmed", "photo", "computers", "cs", "physics", "reddit"],
            "encoder": ["gcn", "sage", "gat", "sgc"],
            "logger": ["wandb", "csv", "none"],
        }.items():
            for option in options:
                cfg = compose("train", overrides=[f"{group}={option}"])
                assert cfg[group] is not None or option == "none"
    GlobalHydra.instance().clear()


def test_resume_from_last_checkpoint_matches_uninterrupted_run(make_cfg, tmp_path):
    keys = ("nmi", "ari", "acc", "gmm_log_likelihood", "bic", "epochs", "cluster_sizes")
    full = train(make_cfg("trainer.max_epochs=4", f"paths.output_dir={tmp_path / 'full'}"))
    train(make_cfg("trainer.max_epochs=2", f"paths.output_dir={tmp_path / 'part'}"))
    last = tmp_path / "part" / "checkpoints" / "last.ckpt"
    assert last.exists()
    resumed = train(make_cfg("trainer.max_epochs=4", f"ckpt_path={last}", f"paths.output_dir={tmp_path / 'resumed'}"))
    assert resumed["epochs"] == 4
    # Same assignments exactly; continuous values to 1e-6: multithreaded float32 sparse products
    # already differ in the last bits between two uninterrupted runs (about 1e-9 relative).
    for key in keys:
        assert resumed[key] == pytest.approx(full[key], rel=1e-6), key
    for key in ("cluster_sizes", "nmi", "ari", "acc"):
        assert resumed[key] == full[key], key
    history = (tmp_path / "resumed" / "history.csv").read_text().splitlines()
    assert len(history) == 5, "the resumed run carries the per-epoch history of the first part"


def test_k_auto_selects_by_bic_and_saves_the_curve(make_cfg, tmp_path):
    metrics = train(make_cfg("gmm.k=auto", "gmm.k_range=[2,9]", "save_pictures=true"))
    rows = (tmp_path / "out" / "bic.csv").read_text().splitlines()
    header = rows[0].split(",")
    table = [dict(zip(header, r.split(","))) for r in rows[1:]]
    assert [int(r["k"]) for r in table] == list(range(2, 10))
    best = min(table, key=lambda r: float(r["bic"]))
    assert metrics["k"] == int(best["k"])
    assert (tmp_path / "out" / "bic.png").stat().st_size > 1000
    assert (tmp_path / "out" / "embedding.png").exists()


def test_k_auto_with_the_knee_criterion(make_cfg, tmp_path):
    metrics = train(make_cfg("gmm.k=auto", "gmm.k_range=[2,9]", "gmm.k_criterion=bic_knee"))
    rows = (tmp_path / "out" / "bic.csv").read_text().splitlines()
    header = rows[0].split(",")
    table = [dict(zip(header, r.split(","))) for r in rows[1:]]
    ks, bics = [int(r["k"]) for r in table], [float(r["bic"]) for r in table]
    lowest = ks[bics.index(min(bics))]
    assert metrics["k"] == (knee(ks, bics) if lowest == ks[-1] else lowest)


def test_unknown_k_criterion_is_a_clear_error(make_cfg):
    with pytest.raises(InputError, match="gmm.k_criterion='elbow'"):
        train(make_cfg("gmm.k=auto", "gmm.k_criterion=elbow"))


@pytest.mark.parametrize("name", ["nmi", "auroc", "accuracy"])
def test_label_based_or_unknown_optimized_metric_is_refused_before_training(make_cfg, name, monkeypatch):
    import lightning

    monkeypatch.setattr(lightning.Trainer, "fit", lambda *a, **k: pytest.fail("trained before checking"))
    with pytest.raises(InputError, match=f"optimized_metric='{name}' is not allowed.*bic"):
        train(make_cfg(f"optimized_metric={name}"))


def test_data_files_from_the_command_line(make_cfg, tmp_path):
    """Edges and features with string node ids; predictions.csv names the nodes by those ids."""
    data = graph(560, 7, seed=0)
    ids = [f"paper-{i:04d}" for i in range(560)]
    with open(tmp_path / "features.csv", "w") as f:
        f.write("id," + ",".join(f"w{j}" for j in range(data.num_features)) + "\n")
        for i, row in enumerate(data.x.tolist()):
            f.write(ids[i] + "," + ",".join(f"{v:g}" for v in row) + "\n")
    src, dst = data.edge_index
    keep = src < dst
    with open(tmp_path / "edges.tsv", "w") as f:
        f.write("source\ttarget\n")
        for a, b in zip(src[keep].tolist(), dst[keep].tolist()):
            f.write(f"{ids[a]}\t{ids[b]}\n")
        a, b = int(src[keep][0]), int(dst[keep][0])
        f.write(f"{ids[0]}\t{ids[0]}\n{ids[b]}\t{ids[a]}\n")  # a self-loop and a duplicate (reversed), dropped
    with open(tmp_path / "labels.csv", "w") as f:
        f.writelines(f"{ids[i]},class-{int(c)}\n" for i, c in enumerate(data.y.tolist()))
    metrics = train(make_cfg("data=files", f"data.edges={tmp_path / 'edges.tsv'}", f"data.features={tmp_path / 'features.csv'}",
                             f"data.labels={tmp_path / 'labels.csv'}", "gmm.k=7"))
    assert metrics["dataset"] == "files" and metrics["num_nodes"] == 560 and metrics["nmi"] > 0.5
    assert metrics["num_edges"] == int(keep.sum())
    rows = list(csv.DictReader(open(tmp_path / "out" / "predictions.csv")))
    assert [r["node"] for r in rows] == ids
    with pytest.raises(InputError, match="gmm.k .*not set"):
        train(make_cfg("data=files", f"data.edges={tmp_path / 'edges.tsv'}", f"data.features={tmp_path / 'features.csv'}"))
