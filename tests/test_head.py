"""The GMM head (gnngmm.head): refits, per-row summaries, and its state (``state_dict`` /
``load_state_dict``)."""

from __future__ import annotations


def test_every_fresh_fit_during_training_makes_gmm_n_init_restarts(make_cfg, monkeypatch):
    """gmm.n_init (EM restarts, best log-likelihood wins) holds for the first fit and the reseed
    before the GMM term, not only for a final fresh fit."""
    from gnngmm.mixture import GaussianMixture
    from gnngmm.train import train

    fresh = []
    original = GaussianMixture.fit
    monkeypatch.setattr(GaussianMixture, "fit", lambda self, X, y=None: (
        fresh.append(self.n_init) if not self.warm_start else None, original(self, X, y))[1])
    train(make_cfg("gmm.n_init=3", "trainer.max_epochs=4", "head.refit_every_n_epochs=1", "loss.start_epoch=2",
                   "head.reseed_at_loss_start=true"))
    assert len(fresh) >= 2 and set(fresh) == {3}
