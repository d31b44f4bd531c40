"""The LightningModule (gnngmm.module): it holds one head and no head state of its own; its checkpoint
state is exactly the head's ``GMMHead.state_dict()`` beside the RNG states and the module's origin, so
a run resumed from ``last.ckpt`` continues exactly."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from conftest import assert_same

from gnngmm import GNNGMM
from gnngmm.head import GMMHead
from gnngmm.module import GNNGMMModule
from gnngmm.pipeline import build_module
from gnngmm.train import train

HEAD_STATE = {"mixture", "transform", "resp", "bic_table", "history", "restored_epoch"}
# what the module held before the head became an object: none of it may come back
HEAD_ATTRIBUTES = ("gmm", "transform", "resp", "history", "bic_table", "restored_epoch")


def test_the_modules_head_state_is_exactly_the_heads_state_dict(make_cfg, tmp_path):
    """A short run's ``last.ckpt`` holds the head's state under ``gnngmm.head`` (nothing else of the
    head, anywhere), and a module rebuilt from the checkpoint's origin that loads it (through
    Lightning's ``on_load_checkpoint`` hook, or ``GNNGMM.load``) has exactly that ``head.state_dict()``."""
    train(make_cfg("gmm.k=auto", "gmm.k_range=[6,8]"))  # K by BIC: the K table is part of the state
    ckpt = torch.load(tmp_path / "out" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    saved = ckpt["gnngmm"]["head"]
    assert set(ckpt["gnngmm"]) == {"head", "rng", "origin"}
    assert set(saved) == HEAD_STATE
    assert saved["mixture"] is not None and saved["transform"] is not None and saved["resp"] is not None
    assert len(saved["bic_table"]) == 3 and len(saved["history"]) == 2
    assert not [key for key in ckpt["state_dict"] if key.startswith("head.")], "no head state among the weights"

    origin = ckpt["gnngmm"]["origin"]
    model = GNNGMM(**origin["params"])
    module = build_module(
        model.settings(),
        origin["num_features"],
        saved["mixture"]["n_components"],
        origin["params"]["random_state"],
        origin=origin,
    )
    assert isinstance(module, GNNGMMModule) and isinstance(module.head, GMMHead)
    assert module.head.state_dict()["mixture"] is None, "nothing fitted before loading"
    rng = torch.get_rng_state(), np.random.get_state(), random.getstate()
    try:
        module.on_load_checkpoint(ckpt)  # what Lightning calls when it resumes from the file
    finally:
        torch.set_rng_state(rng[0])
        np.random.set_state(rng[1])
        random.setstate(rng[2])
    module.load_state_dict(ckpt["state_dict"])
    assert_same(module.head.state_dict(), saved)
    assert_same(GNNGMM.load(tmp_path / "out" / "checkpoints" / "last.ckpt").module_.head.state_dict(), saved)
    for name in HEAD_ATTRIBUTES:
        assert not hasattr(module, name), f"the module holds head state of its own: {name}"


@pytest.mark.slow  # three training runs
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
