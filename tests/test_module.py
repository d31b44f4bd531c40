"""The LightningModule (gnngmm.module): its checkpoint state is the head's ``state_dict`` and the RNG
states, so a run resumed from ``last.ckpt`` continues exactly."""

from __future__ import annotations

import pytest

from gnngmm.train import train


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
