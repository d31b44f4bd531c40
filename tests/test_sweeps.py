"""Sweeps: Hydra multiruns of train.py, a sweep's summary (gnngmm.summary), a failing job
(gnngmm.hydra_callbacks), and the hparams_search / launcher presets."""

from __future__ import annotations

import csv
import json
import os
import statistics

import pytest
import yaml
from conftest import ROOT, SMALL, run_cli
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig

from gnngmm.summary import summarize

LABEL_METRICS = {"nmi", "ari", "acc"}


def multirun(tmp_path, mirror, *args, returncode=0):
    sweep = tmp_path / "sweep"
    result = run_cli(
        [
            "train.py",
            "-m",
            *args,
            f"hydra.sweep.dir={sweep}",
            f"paths.data_dir={tmp_path}/data",
            f"paths.mirror_dir={mirror}",
            *SMALL,
        ],
        cwd=ROOT,
    )
    assert result.returncode == returncode, result.stderr[-3000:]
    multirun.stderr = result.stderr
    return sweep


@pytest.mark.slow  # a subprocess / several processes
def test_multirun_two_jobs(tmp_path, mirror):
    sweep = tmp_path / "sweep"
    args = [
        "train.py",
        "-m",
        "seed=0,1",
        f"hydra.sweep.dir={sweep}",
        f"paths.data_dir={tmp_path}/data",
        f"paths.mirror_dir={mirror}",
        *SMALL,
    ]
    result = run_cli(args, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted(sweep.glob("*/metrics.json"))
    assert len(runs) == 2
    seeds = sorted(json.loads(p.read_text())["seed"] for p in runs)
    assert seeds == [0, 1]


@pytest.mark.slow  # a subprocess / several processes
def test_grid_multirun_and_summary_means(tmp_path, mirror):
    sweep = multirun(tmp_path, mirror, "encoder=gcn,sage", "seed=0,1")
    rows = summarize(sweep)
    assert [(r["encoder"], r["runs"]) for r in rows] == [("gcn", 2), ("sage", 2)]
    for row in rows:
        nmis = [
            json.loads(p.read_text())["nmi"]
            for p in sweep.glob("*/metrics.json")
            if json.loads(p.read_text())["encoder"] == row["encoder"]
        ]
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
        [
            str(ROOT / "train.py"),
            "-m",
            "seed=0,1",
            f"paths.data_dir={tmp_path}/data",
            f"paths.mirror_dir={mirror}",
            *SMALL,
        ],
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (tmp_path / "logs" / "train" / "multiruns").iterdir()
    assert sorted(p.parent.name for p in sweep.glob("*/metrics.json")) == ["0", "1"]


@pytest.mark.slow  # a subprocess / several processes
def test_a_failing_job_does_not_stop_the_multirun_which_then_exits_non_zero(tmp_path, mirror):
    sweep = multirun(tmp_path, mirror, "gmm.k=0,7", returncode=1)
    assert len(list(sweep.glob("*/metrics.json"))) == 1, "the job after the failed one ran"
    failed = next(sweep.glob("*/failure.json"))
    assert "1 job(s) of this multirun failed" in multirun.stderr and str(failed) in multirun.stderr
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
    return [
        (group, p.stem)
        for group in ("hparams_search", "launcher")
        for p in sorted((ROOT / "conf" / group).glob("*.yaml"))
    ]


@pytest.mark.slow  # composes every preset with its Hydra plugins
@pytest.mark.parametrize("group, name", _sweep_presets(), ids=lambda v: str(v))
def test_every_sweep_preset_composes_with_the_plugins_the_readme_installs(group, name):
    """Each Hydra plugin a preset selects comes from an extra that the README's first command
    (`make run`, i.e. `make install`) installs, and the preset composes with it."""
    import re
    from importlib.metadata import requires

    GlobalHydra.instance().clear()
    with initialize_config_module("gnngmm.conf", version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[f"{group}={name}", "hparams_search=optuna" if group == "launcher" else "seed=0"],
            return_hydra_config=True,
        )
    GlobalHydra.instance().clear()
    install = re.search(r"^install:\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M).group(1)
    extras = set(re.findall(r'-e "?\.\[([\w,]+)\]', install)[0].split(","))
    installed = {
        r.split(";")[0].split(">")[0].split("=")[0].strip()
        for r in requires("gnngmm")
        if any(f'extra == "{e}"' in r for e in extras)
    }
    plugins = {
        "optuna": "hydra-optuna-sweeper",
        "joblib": "hydra-joblib-launcher",
        "submitit": "hydra-submitit-launcher",
    }
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
