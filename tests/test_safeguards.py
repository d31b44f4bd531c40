"""Safeguards (gnngmm.safeguards, conf/safeguard): each restores what its docstring says, and only then."""

from __future__ import annotations

import pytest
import torch

from gnngmm.errors import InputError


def _fake_modularity(monkeypatch, scores):
    """The refits' modularity replaced by ``scores`` in order (the mechanism under test is what the
    callback does with them)."""
    import gnngmm.head as head

    it = iter(scores)
    monkeypatch.setattr(head, "modularity", lambda *a, **k: next(it))


def test_a_run_whose_partition_falls_continues_from_its_best_refit(make_cfg, monkeypatch):
    from gnngmm.safeguards import modularity
    from gnngmm.train import train

    snapshots = []
    original = modularity.encoder_copy
    monkeypatch.setattr(
        modularity, "encoder_copy", lambda m: snapshots.append({"encoder": original(m)}) or snapshots[-1]["encoder"]
    )
    _fake_modularity(monkeypatch, [0.5, 0.7, 0.6, 0.3])  # refits at epochs 0..3: the best is epoch 1
    cfg = make_cfg("trainer.max_epochs=4", "head.refit_every_n_epochs=1", "~safeguard.silhouette")
    metrics = train(cfg)
    assert metrics["restored_epoch"] == 1
    from gnngmm import GNNGMM

    model = GNNGMM.load(f"{cfg.paths.output_dir}/model.ckpt")
    best = snapshots[1]["encoder"]
    for name, value in model.module_.encoder.state_dict().items():
        torch.testing.assert_close(value, best[name])


@pytest.mark.slow  # two training runs
def test_a_run_that_only_wobbles_is_left_alone(make_cfg, monkeypatch):
    from gnngmm.train import train

    _fake_modularity(monkeypatch, [0.5, 0.7, 0.6, 0.68])  # 2.9% under the best: within 5%
    guarded = train(make_cfg("trainer.max_epochs=4", "head.refit_every_n_epochs=1"))
    _fake_modularity(monkeypatch, [0.5, 0.7, 0.6, 0.68])
    plain = train(make_cfg("trainer.max_epochs=4", "head.refit_every_n_epochs=1", "safeguard=none", "overwrite=true"))
    assert guarded["restored_epoch"] is None
    assert guarded["nmi"] == plain["nmi"] and guarded["gmm_log_likelihood"] == plain["gmm_log_likelihood"]


@pytest.mark.slow  # two training runs
def test_partitions_that_do_not_follow_the_graph_are_left_alone(make_cfg, monkeypatch):
    """All refits under 0.1 (a bipartite graph's): a relative fall of 106% between numbers near zero is
    no decline to go back from (BOND Reddit's seed 0, docs/experiments.md 21)."""
    from gnngmm.train import train

    _fake_modularity(monkeypatch, [-0.02, -0.0173, -0.03, -0.0357])
    metrics = train(make_cfg("trainer.max_epochs=4", "head.refit_every_n_epochs=1"))
    assert metrics["restored_epoch"] is None
    _fake_modularity(monkeypatch, [0.05, 0.12, 0.06, 0.05])  # the same fall from a meaningful best: restored
    metrics = train(make_cfg("trainer.max_epochs=4", "head.refit_every_n_epochs=1", "overwrite=true"))
    assert metrics["restored_epoch"] == 1


def _fake_silhouette(monkeypatch, scores):
    import gnngmm.safeguards.silhouette as module

    it = iter(scores)
    monkeypatch.setattr(module, "silhouette", lambda *a, **k: next(it))


SILHOUETTE_RUN = ("trainer.max_epochs=5", "head.refit_every_n_epochs=1", "loss.start_epoch=3", "~safeguard.modularity")


def test_blurring_clusters_start_the_gmm_phase_from_the_best_pretraining_encoder(make_cfg, monkeypatch):
    """Refits at epochs 0, 1 score 0.5, 0.7; the one opening the GMM phase (epoch 2) 0.3, 57% under
    the best: the encoder goes back to epoch 1's and the mixture is refit fresh on it."""
    from gnngmm.head import GMMHead
    from gnngmm.safeguards import silhouette
    from gnngmm.train import train

    snapshots, seen = [], []
    original_copy, original_refit = silhouette.encoder_copy, GMMHead.refit
    monkeypatch.setattr(silhouette, "encoder_copy", lambda m: snapshots.append(original_copy(m)) or snapshots[-1])
    encoders = []

    def recording_embed(original):
        def embed(self, data):
            encoders.append({k: v.clone() for k, v in self.encoder.state_dict().items()})
            return original(self, data)

        return embed

    def recording_refit(self, h, *, fresh=False):
        seen.append((encoders[-1], not fresh))
        return original_refit(self, h, fresh=fresh)

    from gnngmm.module import GNNGMMModule

    monkeypatch.setattr(GNNGMMModule, "embed", recording_embed(GNNGMMModule.embed))
    monkeypatch.setattr(GMMHead, "refit", recording_refit)
    _fake_silhouette(monkeypatch, [0.5, 0.7, 0.3, 0.69])  # the last: the refit after going back
    metrics = train(make_cfg(*SILHOUETTE_RUN))
    assert metrics["restored_epoch"] == 1
    assert len(seen) == 6  # epochs 0-2, the refit after going back, epochs 3-4
    restored, warm = seen[3]
    assert not warm
    for name, value in snapshots[1].items():
        torch.testing.assert_close(restored[name], value)
    assert any((restored[n] != seen[2][0][n]).any() for n in restored)  # not the encoder it replaced


@pytest.mark.slow  # six epochs with refits
def test_after_going_back_the_modularity_safeguard_ignores_the_discarded_refits(make_cfg, monkeypatch):
    """Epoch 2's refit (discarded: the phase starts from epoch 1's encoder) had the best modularity;
    the run must not end by going back to it."""
    from gnngmm.train import train

    _fake_silhouette(monkeypatch, [0.5, 0.7, 0.6, 0.3, 0.69])  # epoch 3 opens the phase, 57% under epoch 1
    _fake_modularity(monkeypatch, [0.5, 0.6, 0.9, 0.5, 0.5, 0.5])  # epochs 0-2, then 3 (after going back) to 5
    metrics = train(make_cfg("trainer.max_epochs=6", "head.refit_every_n_epochs=1", "loss.start_epoch=4"))
    assert metrics["restored_epoch"] == 1


@pytest.mark.slow  # two training runs
def test_a_silhouette_that_only_dips_is_left_alone(make_cfg, monkeypatch):
    from gnngmm.train import train

    _fake_silhouette(monkeypatch, [0.5, 0.7, 0.6])  # 14% under the best: within 25%
    guarded = train(make_cfg(*SILHOUETTE_RUN))
    plain = train(
        make_cfg(
            "trainer.max_epochs=5",
            "head.refit_every_n_epochs=1",
            "loss.start_epoch=3",
            "safeguard=none",
            "overwrite=true",
        )
    )
    assert guarded["restored_epoch"] is None
    assert guarded["nmi"] == plain["nmi"] and guarded["gmm_log_likelihood"] == plain["gmm_log_likelihood"]


def test_tolerances_must_be_shares(make_cfg):
    from gnngmm.train import train

    with pytest.raises(InputError, match=r"KeepBestModularity: tolerance=1.5 is not a share in \[0, 1\)"):
        train(make_cfg("safeguard.modularity.tolerance=1.5"))
    with pytest.raises(InputError, match=r"KeepBestSilhouette: tolerance=-1 is not a share in \[0, 1\)"):
        train(make_cfg("safeguard.silhouette.tolerance=-1"))
