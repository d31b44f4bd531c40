"""Shared fixtures: a dataset mirror in every raw format (tiny planted-partition graphs) and a
helper that composes the real Hydra config with test-sized overrides."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from raw_fixtures import write_mirror

ROOT = Path(__file__).resolve().parents[1]
# Small, fast settings every pipeline test starts from (tests override further).
SMALL = [
    "logger=none",
    "trainer.max_epochs=2",
    "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false",
    "encoder.hidden_channels=32",
    "encoder.out_channels=32",
    "head.transform.pca_dim=8",
    "gmm.n_init=1",
    "save_pictures=false",
    "save_report=false",
]
# SMALL as estimator arguments, for the tests that call GNNGMM directly
SMALL_ARGS = dict(
    trainer={"max_epochs": 2},
    encoder={"hidden_channels": 32, "out_channels": 32},
    head={"transform": {"pca_dim": 8}},
    gmm={"n_init": 1},
    random_state=0,
)

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
# one thread: exact comparisons need it (multithreaded float32 sums differ in the last bits from run
# to run), and on a busy 2-core machine it is also the faster setting
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def mirror(tmp_path_factory) -> Path:
    return write_mirror(tmp_path_factory.mktemp("mirror"))


@pytest.fixture
def make_cfg(tmp_path, mirror):
    """``make_cfg(*overrides, small=True)`` -> composed config writing under ``tmp_path``."""

    def make(*overrides: str, small: bool = True, config: str = "train"):
        base = SMALL if small else []
        if "encoder=sgc" in overrides:  # nothing to size: drop the GNN width overrides
            base = [o for o in base if not o.startswith("encoder.")]
        GlobalHydra.instance().clear()
        with initialize_config_module("gnngmm.conf", version_base="1.3"):
            cfg = compose(
                config,
                overrides=[
                    f"paths.root_dir={tmp_path}",
                    f"paths.data_dir={tmp_path / 'data'}",
                    f"paths.mirror_dir={mirror}",
                    f"paths.output_dir={tmp_path / 'out'}",
                    f"paths.log_dir={tmp_path / 'logs'}",
                ]
                + base
                + list(overrides),
                return_hydra_config=True,
            )
        HydraConfig.instance().set_config(cfg)
        return cfg

    yield make
    GlobalHydra.instance().clear()


def assert_same(a, b, where: str = "state") -> None:
    """Tensors equal exactly (values and dtype), containers by value, key by key."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def without_pyg_extensions(monkeypatch) -> None:
    """Make PyG believe pyg-lib and torch-sparse are missing: the plain-PyTorch paths run."""
    import torch_geometric.typing as pyg_typing

    monkeypatch.setattr(pyg_typing, "WITH_PYG_LIB", False)
    monkeypatch.setattr(pyg_typing, "WITH_TORCH_SPARSE", False)


def run_cli(args: list[str], cwd: Path, env_extra: dict | None = None, timeout: int = 600, env: dict | None = None):
    """Run ``python train.py`` (or another script) as a user would, in a subprocess; ``env``
    replaces this process's environment."""
    import subprocess
    import sys

    env = dict(os.environ if env is None else env, WANDB_MODE="offline", HYDRA_FULL_ERROR="0", **(env_extra or {}))
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
