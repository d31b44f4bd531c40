"""Sweeps and dashboards: multirun + summariser, Optuna preset, failing jobs, W&B pictures, notebook."""

from __future__ import annotations

import csv
import json
import os
import statistics

import pytest
import torch
import yaml
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig

from conftest import ROOT, SMALL, run_cli
from gnngmm.summary import summarize
from gnngmm.train import train

LABEL_METRICS = {"nmi", "ari", "acc"}


def multirun(tmp_path, mirror, *args, returncode=0):
    sweep = tmp_path / "sweep"
    result = run_cli(
        ["train.py", "-m", *args, f"hydra.sweep.dir={sweep}", f"paths.data_dir={tmp_path}/data",
         f"paths.mirror_dir={mirror}", *SMALL],
        cwd=ROOT,
    )
    assert result.returncode == returncode, result.stderr[-3000:]
    multirun.stderr = result.stderr
    return sweep


@pytest.mark.slow  # a subprocess / several processes
def test_grid_multirun_and_summary_means(tmp_path, mirror):
    sweep = multirun(tmp_path, mirror, "encoder=gcn,sage", "seed=0,1")
    rows = summarize(sweep)
    assert [(r["encoder"], r["runs"]) for r in rows] == [("gcn", 2), ("sage", 2)]
    for row in rows:
        nmis = [json.loads(p.read_text())["nmi"] for p in sweep.glob("*/metrics.json")
                if json.loads(p.read_text())["encoder"] == row["encoder"]]
        assert row["nmi_mean"] == pytest.approx(statistics.fmean(nmis))
        assert row["nmi_std"] == pytest.approx(statistics.stdev(nmis))
    table = (sweep / "summary.md").read_text().splitlines()
    assert table[2].startswith("| encoder | runs | nmi | ari | acc |")
    assert table[4].startswith(f"| gcn | 2 | {rows[0]['nmi_mean']:.4f} ± {rows[0]['nmi_std']:.4f} |")
    assert len(list(csv.DictReader(open(sweep / "summary.csv")))) == 2
    assert (sweep / "summary.png").stat().st_size > 1000


@pytest.mark.slow  # a subprocess / several processes
def test_multirun_with_the_default_sweep_dir_lands_under_the_launch_directory(tmp_path, mirror):
    # no hydra.sweep.dir and no GNNGMM_ROOT, as a user types it: the sweep dir is resolved before
    # any job's HydraConfig exists (it used to fail with "HydraConfig was not set")
    env = {k: v for k, v in os.environ.items() if k != "GNNGMM_ROOT"}
    result = run_cli(
        [str(ROOT / "train.py"), "-m", "seed=0,1", f"paths.data_dir={tmp_path}/data", f"paths.mirror_dir={mirror}", *SMALL],
        cwd=tmp_path, env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (tmp_path / "logs" / "train" / "multiruns").iterdir()
    assert sorted(p.parent.name for p in sweep.glob("*/metrics.json")) == ["0", "1"]


@pytest.mark.slow  # a subprocess / several processes
def test_a_failing_job_does_not_stop_the_multirun_which_then_exits_non_zero(tmp_path, mirror):
    sweep = multirun(tmp_path, mirror, "gmm.k=0,7", returncode=1)
    assert len(list(sweep.glob("*/metrics.json"))) == 1, "the job after the failed one ran"
    failed = next(sweep.glob("*/failure.json"))
    assert f"1 job(s) of this multirun failed" in multirun.stderr and str(failed) in multirun.stderr
    failure = json.loads(failed.read_text())
    assert failure["error"] == "InputError" and "gmm.k (n_clusters) must be >= 1" in failure["message"]
    summarize(sweep)
    assert "1 failed job(s)" in (sweep / "summary.md").read_text()


@pytest.mark.slow  # a subprocess / several processes
def test_optuna_preset_runs_trials_on_an_unsupervised_objective(tmp_path, mirror):
    GlobalHydra.instance().clear()
    with initialize_config_module("gnngmm.conf", version_base="1.3"):
        cfg = compose("train", overrides=["hparams_search=optuna"], return_hydra_config=True)
    GlobalHydra.instance().clear()
    assert cfg.optimized_metric == "modularity" and cfg.hydra.sweeper.direction == "maximize"
    assert not LABEL_METRICS & {key.split(".")[-1] for key in cfg.hydra.sweeper.params}
    # the criterion must not be moved by construction by a searched setting (as BIC is by the
    # embedding dimension and the loss weight)
    assert not {"head.transform.pca_dim", "encoder.out_channels"} & set(cfg.hydra.sweeper.params)
    sweep = multirun(tmp_path, mirror, "hparams_search=optuna", "hydra.sweeper.n_trials=2", "launcher=joblib")
    assert len(list(sweep.glob("*/metrics.json"))) == 2
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    values = [json.loads(p.read_text())["modularity"] for p in sweep.glob("*/metrics.json")]
    assert best["best_value"] == pytest.approx(max(values))


def _sweep_presets() -> list[tuple[str, str]]:
    return [(group, p.stem) for group in ("hparams_search", "launcher") for p in sorted((ROOT / "conf" / group).glob("*.yaml"))]


@pytest.mark.parametrize("group, name", _sweep_presets(), ids=lambda v: str(v))
def test_every_sweep_preset_composes_with_the_plugins_the_readme_installs(group, name):
    """Each Hydra plugin a preset selects comes from an extra that the README's first command
    (`make run`, i.e. `make install`) installs, and the preset composes with it."""
    import re
    from importlib.metadata import requires

    GlobalHydra.instance().clear()
    with initialize_config_module("gnngmm.conf", version_base="1.3"):
        cfg = compose("train", overrides=[f"{group}={name}", "hparams_search=optuna" if group == "launcher" else "seed=0"],
                      return_hydra_config=True)
    GlobalHydra.instance().clear()
    install = re.search(r"^install:\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M).group(1)
    extras = set(re.findall(r'-e "?\.\[([\w,]+)\]', install)[0].split(","))
    installed = {r.split(";")[0].split(">")[0].split("=")[0].strip() for r in requires("gnngmm")
                 if any(f'extra == "{e}"' in r for e in extras)}
    plugins = {"optuna": "hydra-optuna-sweeper", "joblib": "hydra-joblib-launcher", "submitit": "hydra-submitit-launcher"}
    targets = f"{cfg.hydra.sweeper._target_} {cfg.hydra.launcher._target_}".lower()
    for key, package in plugins.items():
        if key in targets:
            assert package in installed, f"{group}={name} needs {package}, which `make install` does not install"
    assert cfg.hydra.mode.name == "MULTIRUN"


def test_presets_compose():
    GlobalHydra.instance().clear()
    with initialize_config_module("gnngmm.conf", version_base="1.3"):
        slurm = compose("train", overrides=["hparams_search=optuna", "launcher=slurm"], return_hydra_config=True)
        joblib = compose("train", overrides=["launcher=joblib"], return_hydra_config=True)
        grid = compose("train", overrides=["hparams_search=encoders"], return_hydra_config=True)
    GlobalHydra.instance().clear()
    HydraConfig.instance().set_config(slurm)  # the trainer follows hydra.launcher.gpus_per_node (1 here)
    assert "submitit" in slurm.hydra.launcher._target_ and slurm.trainer.accelerator == "gpu"
    assert "optuna" in slurm.hydra.sweeper._target_ and slurm.auto_resume and slurm.hydra.launcher.max_num_timeout > 0
    assert "joblib" in joblib.hydra.launcher._target_
    assert grid.hydra.sweeper.params.encoder == "gcn,sage,gat" and grid.wandb_group == "sweep-encoders-cora"


def test_offline_wandb_run_holds_pictures_and_tables(make_cfg, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    train(make_cfg("logger=wandb", "save_pictures=true", "gmm.k=auto", "gmm.k_range=[5,8]"))
    run = next((tmp_path / "out" / "wandb").glob("offline-run-*"))
    media = [p.name for p in run.rglob("*.png")]
    assert any(name.startswith("embedding") for name in media), media
    assert any(name.startswith("cluster_sizes") for name in media), media
    assert any(name.startswith("bic") for name in media), media
    assert list(run.rglob("*.table.json")), "prediction sample and BIC tables"
    for name in ("embedding.png", "cluster_sizes.png", "bic.png"):
        assert (tmp_path / "out" / name).exists()


@pytest.mark.slow  # a subprocess / several processes
def test_quickstart_notebook_executes(tmp_path, mirror):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(ROOT / "notebooks" / "quickstart.ipynb", as_version=4)
    committed = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in committed), "committed with its outputs (plots show on GitHub)"
    assert "GNNGMM(" in "".join(cell.source for cell in nb.cells) and "HydraConfig" not in str(nb), "the estimator, no Hydra"
    os.environ["GNNGMM_NOTEBOOK_EPOCHS"] = "2"
    os.environ["GNNGMM_MIRROR_DIR"] = str(mirror)
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        os.environ.pop("GNNGMM_NOTEBOOK_EPOCHS")
        os.environ.pop("GNNGMM_MIRROR_DIR")
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)


def test_modularity_of_two_separate_cliques_is_one_half_in_any_chunking():
    """Two equal components, each its own cluster: Q = 2 * (1/2 - (1/2)^2) = 0.5; one cluster: 0."""
    from gnngmm.quality import modularity

    clique = torch.tensor([(i, j) for i in range(4) for j in range(4) if i != j]).T
    edges = torch.cat([clique, clique + 4], dim=1)
    labels = torch.tensor([0] * 4 + [1] * 4)
    assert modularity(edges, labels) == pytest.approx(0.5)
    assert modularity(edges, labels, chunk=5) == pytest.approx(0.5)
    assert modularity(edges, torch.zeros(8, dtype=torch.long)) == pytest.approx(0.0)


def test_silhouette_is_scikit_learns_cosine_silhouette_on_a_fixed_sample():
    from sklearn.metrics import silhouette_score

    from gnngmm.quality import silhouette

    g = torch.Generator().manual_seed(0)
    z = torch.randn(300, 6, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 4, (300,), generator=g)
    labels[7] = 9  # a singleton scores 0
    assert silhouette(z, labels, sample=1000) == pytest.approx(silhouette_score(z.numpy(), labels.numpy(), metric="cosine"))
    assert silhouette(z, labels, sample=100) == silhouette(z, labels, sample=100)  # the same nodes each call
    idx = torch.randperm(300, generator=torch.Generator().manual_seed(0))[:100]
    assert silhouette(z, labels, sample=100) == pytest.approx(
        silhouette_score(z[idx].numpy(), labels[idx].numpy(), metric="cosine"))
    assert silhouette(z, torch.zeros(300, dtype=torch.long)) == 0.0
