"""Loggers (gnngmm.loggers) and what a run logs to them (gnngmm.reporting): W&B without a key logs
offline, a resumed run keeps its id and tags, the offline run holds the pictures and tables."""

from __future__ import annotations

import os

import pytest

from gnngmm.train import train


@pytest.mark.slow  # wandb starts its service process
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


@pytest.mark.slow  # wandb starts its service process
def test_wandb_resumed_run_keeps_its_id_and_user_tags(make_cfg, tmp_path, monkeypatch):
    from gnngmm.loggers import build_loggers, finish_loggers

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    cfg = make_cfg("logger=wandb", "tags=[ablation,v2]")
    run_dir = tmp_path / "out"
    run_dir.mkdir()
    ids = []
    for _ in range(2):
        (logger,) = build_loggers(cfg, run_dir)
        ids.append(logger._wandb_init["id"])
        assert {"ablation", "v2", "cora"} <= set(logger._wandb_init["tags"])
        assert logger._wandb_init["resume"] == "allow"
        finish_loggers([logger])
    assert ids[0] == ids[1] == (run_dir / "wandb_run_id").read_text().strip()


@pytest.mark.slow  # wandb starts its service process
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
