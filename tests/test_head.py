"""The GMM head (gnngmm.head): refits (warm refits keep the components' order, fresh fits make
gmm.n_init restarts), per-row summaries, and its state: ``load_state_dict(state_dict())`` gives
a head that scores and refits exactly as the original."""

from __future__ import annotations

import io

import torch
from conftest import assert_same

from gnngmm.embedding import EmbeddingTransform
from gnngmm.head import GMMHead
from gnngmm.mixture import GaussianMixture

HEAD_STATE = {"mixture", "transform", "resp", "bic_table", "history", "restored_epoch"}


def blobs(n: int = 400, k: int = 4, dim: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(h, y)``: an encoder output of ``k`` well-separated float32 blobs, ``n // k`` nodes each."""
    g = torch.Generator().manual_seed(seed)
    centres = 4.0 * torch.randn(k, dim, generator=g)
    y = torch.arange(k).repeat_interleave(n // k)
    return centres[y] + torch.randn(n, dim, generator=g), y


def make_head(**kwargs) -> GMMHead:
    return GMMHead(GaussianMixture(4, covariance_type="diag", random_state=0), EmbeddingTransform(pca_dim=6), **kwargs)


def test_row_summaries_equal_the_whole_table_formulas_in_any_blocking():
    from gnngmm.head import row_summaries

    torch.manual_seed(0)
    log_prob = torch.randn(1000, 5, dtype=torch.float64) * 10
    log_norm = torch.logsumexp(log_prob, 1)
    log_resp = log_prob - log_norm[:, None]
    resp = log_resp.exp()
    for rows in (77, 1000, 1 << 16):
        cluster, max_resp, entropy, norm = row_summaries(log_prob, rows=rows)
        assert torch.equal(cluster, resp.argmax(1))
        torch.testing.assert_close(max_resp, resp.max(1).values, rtol=0, atol=1e-15)
        torch.testing.assert_close(entropy, -(resp * log_resp).sum(1), rtol=0, atol=1e-12)
        torch.testing.assert_close(norm, log_norm, rtol=0, atol=1e-12)


def test_a_fresh_head_that_loads_the_state_scores_and_refits_as_the_original():
    """Every piece of head state survives ``state_dict`` -> ``torch.save`` -> ``torch.load(weights_only=True)``
    -> ``load_state_dict``: the same mixture input, responsibilities, warm start, K table, history and
    restored epoch, and the next warm refit finds the same mixture."""
    h, _ = blobs()
    head = make_head(k_range=[3, 5])
    first = head.refit(h, fresh=True)  # K chosen by BIC: a K table
    head.record({"epoch": 0, "gmm/bic": first.bic, "cluster_sizes": first.cluster_sizes})
    moved = h + 0.1 * torch.randn(h.shape, generator=torch.Generator().manual_seed(1))
    second = head.refit(moved)
    head.record({"epoch": 1, "gmm/bic": second.bic, "cluster_sizes": second.cluster_sizes})
    head.note_restored(1)

    state = head.state_dict()
    assert set(state) == HEAD_STATE
    assert state["mixture"] is not None and state["transform"] is not None and state["resp"].shape == (400, first.k)
    assert [row["k"] for row in state["bic_table"]] == [3, 4, 5] and len(state["history"]) == 2
    assert state["restored_epoch"] == 1
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded = make_head(k_range=[3, 5]).load_state_dict(torch.load(buffer, weights_only=True))

    assert_same(loaded.state_dict(), state)
    assert loaded.is_fitted and loaded.mixture.n_components == head.mixture.n_components
    assert torch.equal(loaded.gmm_input(moved), head.gmm_input(moved))
    assert torch.equal(loaded.responsibilities(moved), head.responsibilities(moved))
    assert torch.equal(loaded.resp, head.resp)
    assert loaded.history == head.history and loaded.bic_table == head.bic_table and loaded.restored_epoch == 1
    again, original = loaded.refit(h), head.refit(h)  # warm from the loaded responsibilities
    assert torch.equal(again.pred, original.pred) and again.log_likelihood == original.log_likelihood
    assert_same(loaded.state_dict(), head.state_dict())


def test_a_head_before_its_first_refit_has_an_empty_state_that_loads():
    state = make_head().state_dict()
    assert state == {
        "mixture": None,
        "transform": None,
        "resp": None,
        "bic_table": None,
        "history": [],
        "restored_epoch": None,
    }
    loaded = make_head().load_state_dict(state)
    assert not loaded.is_fitted and loaded.state_dict() == state


def test_a_warm_refit_after_a_fresh_one_keeps_the_components_order():
    """The warm start is per node (the last responsibilities), so component j stays the same nodes'
    component however the embedding moved: here rotated, scaled and shifted into new coordinates."""
    h, y = blobs()
    head = make_head()
    fresh = head.refit(h, fresh=True)
    assert torch.equal(torch.bincount(fresh.pred, minlength=4), torch.full((4,), 100))  # one blob per component
    rotation = torch.linalg.qr(torch.randn(16, 16, generator=torch.Generator().manual_seed(2)))[0]
    moved = 3.0 * h @ rotation + 5.0
    other = make_head()
    other.mixture.random_state = 1
    assert not torch.equal(other.refit(moved, fresh=True).pred, fresh.pred), "a fresh fit may number them anew"
    warm = head.refit(moved)
    assert torch.equal(warm.pred, fresh.pred)
    for _ in range(2):  # and every later warm refit
        assert torch.equal(head.refit(h @ rotation).pred, fresh.pred)
    assert len({int(c) for c in fresh.pred[y == 0]}) == 1  # the blobs are the components


def test_every_fresh_fit_during_training_makes_gmm_n_init_restarts(make_cfg, monkeypatch):
    """gmm.n_init (EM restarts, best log-likelihood wins) holds for the first fit and the reseed
    before the GMM term, not only for a final fresh fit."""
    from gnngmm.mixture import GaussianMixture
    from gnngmm.train import train

    fresh = []
    original = GaussianMixture.fit
    monkeypatch.setattr(
        GaussianMixture,
        "fit",
        lambda self, X, y=None: (fresh.append(self.n_init) if not self.warm_start else None, original(self, X, y))[1],
    )
    train(
        make_cfg(
            "gmm.n_init=3",
            "trainer.max_epochs=4",
            "head.refit_every_n_epochs=1",
            "loss.start_epoch=2",
            "head.reseed_at_loss_start=true",
        )
    )
    assert len(fresh) >= 2 and set(fresh) == {3}
