"""A run's outputs (gnngmm.outputs): metrics.json, history.csv and the logs of a run; one run per
directory, auto-resume of an unfinished one, provenance in metrics.json."""

from __future__ import annotations

import json

import pytest

from gnngmm.errors import InputError
from gnngmm.train import train

METRIC_KEYS = {
    "dataset",
    "encoder",
    "k",
    "covariance_type",
    "seed",
    "nmi",
    "ari",
    "acc",
    "gmm_log_likelihood",
    "bic",
    "epochs",
    "train_seconds",
    "peak_rss_mb",
}


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


@pytest.mark.slow  # three training runs
def test_a_run_dir_holds_one_run(make_cfg, tmp_path, monkeypatch):
    import lightning

    train(make_cfg())
    fit = lightning.Trainer.fit
    monkeypatch.setattr(lightning.Trainer, "fit", lambda *a, **k: pytest.fail("trained before checking"))
    with pytest.raises(InputError, match=r"already holds a run \(metrics.json.*overwrite=true.*ckpt_path="):
        train(make_cfg())
    monkeypatch.setattr(lightning.Trainer, "fit", fit)
    assert train(make_cfg("overwrite=true", "seed=1"))["seed"] == 1
    # continuing the dir's own run in place: one last.ckpt, never a last-v1.ckpt beside a stale one
    last = tmp_path / "out" / "checkpoints" / "last.ckpt"
    assert train(make_cfg("seed=1", "trainer.max_epochs=3", f"ckpt_path={last}"))["epochs"] == 3
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.ckpt"]


@pytest.mark.slow  # three training runs
def test_auto_resume_continues_an_unfinished_run(make_cfg, tmp_path):
    full = train(make_cfg("trainer.max_epochs=4", f"paths.output_dir={tmp_path / 'full'}"))
    train(make_cfg("trainer.max_epochs=2"))
    (tmp_path / "out" / "metrics.json").unlink()  # as if the job had been stopped after epoch 2
    with pytest.raises(InputError, match="already holds a run"):
        train(make_cfg("trainer.max_epochs=4"))
    resumed = train(make_cfg("trainer.max_epochs=4", "auto_resume=true"))
    assert resumed["epochs"] == 4 and resumed["cluster_sizes"] == full["cluster_sizes"]
    assert len((tmp_path / "out" / "history.csv").read_text().splitlines()) == 5


def test_metrics_record_provenance(make_cfg):
    import torch_geometric

    metrics = train(make_cfg())
    assert metrics["pyg_version"] == torch_geometric.__version__ and metrics["device"] == "cpu"
    assert metrics["world_size"] == 1 and metrics["torch_threads"] >= 1 and metrics["gnngmm_version"]
    assert "git_commit" in metrics
