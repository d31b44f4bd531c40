"""The command line's run (gnngmm.train): composed configs train and report, every experiment and
config group composes, bad inputs fail with one clear line, and SIGTERM leaves a resumable run."""

from __future__ import annotations

import csv
import os

import pytest
import torch
from conftest import ROOT, SMALL, run_cli
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from raw_fixtures import graph, write_planetoid

from gnngmm.errors import InputError
from gnngmm.mixture.criteria import knee
from gnngmm.train import train


def experiment_names() -> list[str]:
    return sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))


# one variant in the fast suite, the others slow (a training run each)
@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param(["encoder=gat", "encoder.heads=2"], marks=pytest.mark.slow),
        pytest.param(["encoder=sage"], marks=pytest.mark.slow),
        ["gmm.covariance_type=diag"],
        pytest.param(["encoder=sgc"], marks=pytest.mark.slow),
        pytest.param(["objective=grace"], marks=pytest.mark.slow),
        pytest.param(["objective=gae"], marks=pytest.mark.slow),
        pytest.param(["gmm.covariance_type=spherical", "seed=3"], marks=pytest.mark.slow),
    ],
    ids=lambda o: ",".join(o),
)
def test_command_line_variants_run(make_cfg, overrides):
    metrics = train(make_cfg(*overrides))
    assert metrics["nmi"] > 0.3
    chosen = [o.split("=", 1)[1] for o in overrides if o.startswith("gmm.covariance_type=")]
    assert metrics["covariance_type"] == (chosen[0] if chosen else "isotropic")
    assert metrics["encoder"] == next((o.split("=")[1] for o in overrides if o.startswith("encoder=")), "gcn")


# Cora's in the fast suite, the other experiments slow (a training step each)
@pytest.mark.parametrize(
    "name", [name if name == "cora" else pytest.param(name, marks=pytest.mark.slow) for name in experiment_names()]
)
def test_every_experiment_runs_with_fast_dev_run(make_cfg, name):
    cfg = make_cfg(f"experiment={name}", "trainer.fast_dev_run=true", *SMALL[1:])
    metrics = train(cfg)
    assert metrics["dataset"] == cfg.data.name
    assert metrics["epochs"] <= 1


@pytest.mark.slow  # a whole experiment's pipeline (SIGN precompute, MLP)
def test_ogbn_products_experiment_takes_the_scalable_path(make_cfg):
    pytest.importorskip("ogb")
    cfg = make_cfg(
        "experiment=ogbn_products",
        "trainer.max_epochs=2",
        "loss.finetune_epochs=1",
        "data.batch_size=128",
        "encoder.hidden_channels=32",
        "encoder.out_channels=16",
    )
    assert cfg.data.loader == "nodes" and cfg.data.precompute == "sign" and cfg.encoder.arch == "mlp"
    metrics = train(cfg)
    assert metrics["dataset"] == "ogbn_products" and metrics["num_nodes"] == 400 and metrics["nmi"] > 0.3


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
    common = [
        f"hydra.run.dir={tmp_path}/run",
        f"paths.data_dir={tmp_path}/data",
        f"paths.mirror_dir={mirror}",
        "logger=none",
    ]
    result = run_cli(["train.py", "gmm.k=0", *common], cwd=ROOT)
    assert result.returncode == 2
    assert "gnngmm: error: gmm.k (n_clusters) must be >= 1, got 0" in result.stderr
    assert "Traceback" not in result.stderr
    too_many = run_cli(["train.py", "gmm.k=561", *common], cwd=ROOT)
    assert too_many.returncode == 2
    assert "gnngmm: error: gmm.k=561 exceeds the number of nodes (560)" in too_many.stderr
    for arg, line in (
        ("data=nope", "data='nope' is not one of bank_fields, bank_fields_small"),
        ("encoder=nope", "encoder='nope' is not one of gat, gcn, mlp, sage, sgc"),
        ("objective=ns4gc,nope", "objective='nope' is not one of cca_ssg, dgi, gae, grace, ns4gc"),
        ("gmm.covariance_type=bogus", "gmm.covariance_type='bogus' is not one of"),
        ("seed=abc", "seed='abc' is not an integer"),
        ("trainer.max_epochs=-1", "trainer.max_epochs=-1 is not an integer >= 1"),
        ("data.loader=magic", "data.loader='magic' is not one of full"),
    ):
        bad = run_cli(["train.py", arg, *common], cwd=ROOT)
        assert bad.returncode == 2 and f"gnngmm: error: {line}" in bad.stderr, (arg, bad.stderr[-1500:])
        assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr


@pytest.mark.slow  # composes every option of three groups (~3-6 s here)
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


@pytest.mark.slow  # composes five configs
def test_the_defaults_are_ns4gcs_photo_settings():
    """A graph with no experiment gets what `experiment=photo` trains (docs/experiments.md, "What a
    new graph gets"), and the experiments measured before the switch keep NS4GC's Cora settings."""
    GlobalHydra.instance().clear()
    with initialize_config_module("gnngmm.conf", version_base="1.3"):
        default, photo = (compose("train", overrides=o) for o in (["data=photo"], ["experiment=photo"]))
        for key in ("encoder", "objective", "gmm", "trainer", "data"):
            assert default[key] == photo[key], key
        for name in ("cora", "inj_cora", "bond_reddit"):
            cfg = compose("train", overrides=[f"experiment={name}"])
            assert cfg.encoder.out_channels == 64 and list(cfg.objective.drop_edge) == [0.3, 0.3], name
    GlobalHydra.instance().clear()


@pytest.mark.slow  # fits 8 values of K and draws the pictures
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


@pytest.mark.slow  # fits 8 values of K
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


@pytest.mark.slow  # two training runs on files
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
    metrics = train(
        make_cfg(
            "data=files",
            f"data.edges={tmp_path / 'edges.tsv'}",
            f"data.features={tmp_path / 'features.csv'}",
            f"data.labels={tmp_path / 'labels.csv'}",
            "gmm.k=7",
        )
    )
    assert metrics["dataset"] == "files" and metrics["num_nodes"] == 560 and metrics["nmi"] > 0.5
    assert metrics["num_edges"] == int(keep.sum())
    rows = list(csv.DictReader(open(tmp_path / "out" / "predictions.csv")))
    assert [r["node"] for r in rows] == ids
    with pytest.raises(InputError, match="gmm.k .*not set"):
        train(
            make_cfg("data=files", f"data.edges={tmp_path / 'edges.tsv'}", f"data.features={tmp_path / 'features.csv'}")
        )


def test_isolated_nodes_get_clustered(make_cfg, tmp_path):
    data = graph(560, 7, seed=1)
    isolated = torch.arange(500, 520)
    keep = ~(torch.isin(data.edge_index[0], isolated) | torch.isin(data.edge_index[1], isolated))
    data.edge_index = data.edge_index[:, keep]
    iso_mirror = tmp_path / "iso"
    write_planetoid(iso_mirror / "planetoid", "Cora", data)
    metrics = train(make_cfg(f"paths.mirror_dir={iso_mirror}", f"paths.data_dir={tmp_path / 'iso-data'}"))
    assert sum(metrics["cluster_sizes"]) == 560
    assert metrics["nmi"] > 0.5
    assert torch.isfinite(torch.tensor(metrics["gmm_log_likelihood"]))


@pytest.mark.slow  # subprocesses, one of them killed
def test_sigterm_mid_training_then_resume_equals_an_uninterrupted_run(tmp_path, mirror):
    import signal
    import subprocess
    import sys
    import time

    common = [
        f"paths.data_dir={tmp_path}/data",
        f"paths.mirror_dir={mirror}",
        *SMALL,
        "trainer.max_epochs=200",
        "num_threads=1",
        "head.refit_every_n_epochs=1",
    ]
    full = run_cli(["train.py", *common, f"hydra.run.dir={tmp_path}/full"], cwd=ROOT)
    assert full.returncode == 0, full.stderr[-2000:]
    cut = tmp_path / "cut"
    env = dict(os.environ, WANDB_MODE="offline", HYDRA_FULL_ERROR="0")
    proc = subprocess.Popen(
        [sys.executable, "train.py", *common, f"hydra.run.dir={cut}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        history = cut / "history.csv"
        if history.exists() and len(history.read_text().splitlines()) > 4:  # a few epochs done
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert "ckpt_path=" in stderr and not (cut / "metrics.json").exists()
    epochs_done = len((cut / "history.csv").read_text().splitlines()) - 1
    assert 4 <= epochs_done < 200
    last = cut / "checkpoints" / "last.ckpt"
    resumed = run_cli(["train.py", *common, f"hydra.run.dir={cut}", f"ckpt_path={last}"], cwd=ROOT)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    for name in ("predictions.csv", "history.csv"):
        assert (cut / name).read_bytes() == (tmp_path / "full" / name).read_bytes(), name
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.ckpt"]
