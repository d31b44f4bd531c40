"""The GMM term of the loss (gnngmm.loss): the scale-free term on the augmented views trains."""

from __future__ import annotations


def test_gmm_term_on_views_is_scale_free_and_runs(make_cfg):
    from gnngmm.train import train

    metrics = train(
        make_cfg(
            "objective=ns4gc",
            "gmm.covariance_type=isotropic",
            "loss.weight=3.0",
            "loss.scale_free=true",
            "loss.embedding=views",
            "loss.start_epoch=2",
            "head.reseed_at_loss_start=true",
            "gmm.kmeans_n_init=5",
            "trainer.max_epochs=4",
            "head.transform.pca_dim=null",
            "head.transform.center=false",
        )
    )
    assert metrics["nmi"] > 0.5
