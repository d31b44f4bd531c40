"""The GMM head steering the objective (gmm.steer): each term does what its docstring says."""

from __future__ import annotations

import pytest
import torch

from gnngmm.data.synthetic import planted_partition
from gnngmm.encoders import GNNEncoder
from gnngmm.errors import InputError
from gnngmm.objectives import NS4GC
from gnngmm.steering import component_contrast, component_dilation, different_component_weights, self_training


def one_hot(labels, k):
    return torch.nn.functional.one_hot(torch.as_tensor(labels), k).double()


def test_pairs_in_one_component_weigh_nothing_and_pairs_apart_weigh_one():
    r = one_hot([0, 0, 1], 2)
    w = different_component_weights(r, r)
    torch.testing.assert_close(w, torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]], dtype=torch.float64))
    soft = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    assert float(different_component_weights(soft, soft)) == pytest.approx(0.5)


@pytest.fixture(scope="module")
def graph():
    return planted_partition(120, 3, 16, avg_degree=6, homophily=0.9, feature_signal=0.5, seed=1)


@pytest.mark.parametrize("neg", [None, 64], ids=["all-pairs", "block"])
def test_false_negative_weights_reduce_to_the_plain_term_when_every_node_is_its_own_component(graph, neg):
    encoder = GNNEncoder(graph.num_features, hidden_channels=16, out_channels=8)
    objective = NS4GC(neg=neg, drop_edge=(0.0, 0.0), drop_feature=(0.0, 0.0))
    own = lambda h: one_hot(torch.arange(h.shape[0]), h.shape[0]).to(h.dtype)  # noqa: E731
    torch.manual_seed(0)
    plain = objective(encoder, graph).loss
    torch.manual_seed(0)
    weighted = objective(encoder, graph, assign=own).loss
    torch.testing.assert_close(weighted, plain)


def test_false_negative_weights_stop_pushing_apart_what_the_mixture_joins(graph):
    """All nodes in one certain component: the sparsity term has no negatives left, so the loss
    is the view and neighbour agreement alone."""
    encoder = GNNEncoder(graph.num_features, hidden_channels=16, out_channels=8)
    one = lambda h: one_hot(torch.zeros(h.shape[0], dtype=torch.long), 2).to(h.dtype)  # noqa: E731
    no_sparsity = NS4GC(gam=0.0, drop_edge=(0.0, 0.0), drop_feature=(0.0, 0.0))(encoder, graph).loss
    steered = NS4GC(drop_edge=(0.0, 0.0), drop_feature=(0.0, 0.0))(encoder, graph, assign=one).loss
    plain = NS4GC(drop_edge=(0.0, 0.0), drop_feature=(0.0, 0.0))(encoder, graph).loss
    torch.testing.assert_close(steered, no_sparsity)
    assert float(plain.detach()) > float(steered.detach())


def test_component_contrast_prefers_views_that_agree():
    torch.manual_seed(0)
    r = torch.softmax(torch.randn(200, 4) * 4, dim=1)
    agree = component_contrast(r, r)
    swapped = component_contrast(r, r[:, [1, 0, 3, 2]])
    assert float(agree) < float(swapped)
    collapsed = torch.zeros(200, 4)
    collapsed[:, 0] = 1.0
    assert float(component_contrast(collapsed, collapsed)) > float(agree)  # the size-entropy term


def test_self_training_sharpens_the_responsibilities():
    torch.manual_seed(0)
    logits = torch.randn(100, 3, requires_grad=True)
    before = torch.softmax(logits.detach(), 1).max(1).values.mean()
    optimizer = torch.optim.SGD([logits], lr=500.0)  # the loss is a mean over 100 nodes
    for _ in range(20):
        optimizer.zero_grad()
        r = torch.softmax(logits, 1)
        self_training(r, r).backward()
        optimizer.step()
    assert float(torch.softmax(logits.detach(), 1).max(1).values.mean()) > float(before) + 0.05


def test_dilation_is_minus_the_mean_squared_distance_between_centres_and_pushes_them_apart():
    t = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    r = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])  # third component empty
    # centres (1, 0) and (0, 2): squared distance 5, one pair (the empty component is left out)
    assert float(component_dilation(t, r)) == pytest.approx(-5.0)
    torch.manual_seed(0)
    x = torch.randn(60, 3, requires_grad=True)
    r = torch.eye(3).repeat_interleave(20, 0)
    before = float(component_dilation(x.detach(), r))
    optimizer = torch.optim.SGD([x], lr=20.0)  # a node gets 1/20 of its centre's gradient
    for _ in range(5):
        optimizer.zero_grad()
        component_dilation(x, r).backward()
        optimizer.step()
    assert float(component_dilation(x.detach(), r)) < before - 1.0


def test_an_unknown_steer_fails_with_one_line(make_cfg):
    from gnngmm.train import train

    with pytest.raises(InputError, match="gmm.steer='bogus' is not one of none, false_negatives"):
        train(make_cfg("gmm.steer=bogus"))


@pytest.mark.parametrize("steer", ["false_negatives", "contrast", "self_training", "dilation"])
def test_every_steer_trains_and_changes_the_run(make_cfg, steer):
    from gnngmm.train import train

    common = ("gmm.loss_start_epoch=2", "trainer.max_epochs=4", "gmm.kmeans_n_init=3")
    plain = train(make_cfg(*common))
    steered = train(make_cfg(*common, f"gmm.steer={steer}", "gmm.steer_weight=5.0", "overwrite=true"))
    assert steered["nmi"] > 0.3
    assert steered["gmm_log_likelihood"] != plain["gmm_log_likelihood"]


# --------------------------------------------------------------------------- safeguard (gmm.keep_best)
def _fake_modularity(monkeypatch, scores):
    """The refits' modularity replaced by ``scores`` in order (the mechanism under test is what the
    callback does with them)."""
    import gnngmm.callbacks.em_refit as em_refit

    it = iter(scores)
    monkeypatch.setattr(em_refit, "modularity", lambda *a, **k: next(it))


def test_a_run_whose_partition_falls_continues_from_its_best_refit(make_cfg, monkeypatch):
    from gnngmm.callbacks import em_refit
    from gnngmm.train import train

    snapshots = []
    original = em_refit._snapshot
    monkeypatch.setattr(em_refit, "_snapshot", lambda m: snapshots.append(original(m)) or snapshots[-1])
    _fake_modularity(monkeypatch, [0.5, 0.7, 0.6, 0.3])  # refits at epochs 0..3: the best is epoch 1
    cfg = make_cfg("trainer.max_epochs=4", "gmm.refit_every_n_epochs=1", "gmm.keep_best=0.05")
    metrics = train(cfg)
    assert metrics["restored_epoch"] == 1
    from gnngmm import GNNGMM

    model = GNNGMM.load(f"{cfg.paths.output_dir}/model.ckpt")
    best = snapshots[1]["encoder"]
    for name, value in model.module_.encoder.state_dict().items():
        torch.testing.assert_close(value, best[name])


def test_a_run_that_only_wobbles_is_left_alone(make_cfg, monkeypatch):
    from gnngmm.train import train

    _fake_modularity(monkeypatch, [0.5, 0.7, 0.6, 0.68])  # 2.9% under the best: within 5%
    guarded = train(make_cfg("trainer.max_epochs=4", "gmm.refit_every_n_epochs=1", "gmm.keep_best=0.05"))
    _fake_modularity(monkeypatch, [0.5, 0.7, 0.6, 0.68])
    plain = train(make_cfg("trainer.max_epochs=4", "gmm.refit_every_n_epochs=1", "gmm.keep_best=null", "overwrite=true"))
    assert guarded["restored_epoch"] is None
    assert guarded["nmi"] == plain["nmi"] and guarded["gmm_log_likelihood"] == plain["gmm_log_likelihood"]


def test_partitions_that_do_not_follow_the_graph_are_left_alone(make_cfg, monkeypatch):
    """All refits under 0.1 (a bipartite graph's): a relative fall of 106% between numbers near zero is
    no decline to go back from (BOND Reddit's seed 0, docs/experiments.md 21)."""
    from gnngmm.train import train

    _fake_modularity(monkeypatch, [-0.02, -0.0173, -0.03, -0.0357])
    metrics = train(make_cfg("trainer.max_epochs=4", "gmm.refit_every_n_epochs=1", "gmm.keep_best=0.05"))
    assert metrics["restored_epoch"] is None
    _fake_modularity(monkeypatch, [0.05, 0.12, 0.06, 0.05])  # the same fall from a meaningful best: restored
    metrics = train(make_cfg("trainer.max_epochs=4", "gmm.refit_every_n_epochs=1", "gmm.keep_best=0.05",
                             "overwrite=true"))
    assert metrics["restored_epoch"] == 1


def _fake_silhouette(monkeypatch, scores):
    import gnngmm.callbacks.em_refit as em_refit

    it = iter(scores)
    monkeypatch.setattr(em_refit, "silhouette", lambda *a, **k: next(it))


SILHOUETTE_RUN = ("trainer.max_epochs=5", "gmm.refit_every_n_epochs=1", "gmm.loss_start_epoch=3", "gmm.keep_best=null")


def test_blurring_clusters_start_the_gmm_phase_from_the_best_pretraining_encoder(make_cfg, monkeypatch):
    """Refits at epochs 0, 1 score 0.5, 0.7; the one opening the GMM phase (epoch 2) 0.3, 57% under
    the best: the encoder goes back to epoch 1's and the mixture is refit fresh on it."""
    from gnngmm.callbacks import em_refit
    from gnngmm.train import train

    snapshots, seen = [], []
    original_copy, original_refit = em_refit._encoder_copy, em_refit.refit
    monkeypatch.setattr(em_refit, "_encoder_copy", lambda m: snapshots.append(original_copy(m)) or snapshots[-1])

    def recording_refit(module, *args, **kwargs):
        seen.append(({k: v.clone() for k, v in module.encoder.state_dict().items()}, kwargs["warm"]))
        return original_refit(module, *args, **kwargs)

    monkeypatch.setattr(em_refit, "refit", recording_refit)
    _fake_silhouette(monkeypatch, [0.5, 0.7, 0.3, 0.69])  # the last: the refit after going back
    metrics = train(make_cfg(*SILHOUETTE_RUN, "gmm.keep_best_silhouette=0.25"))
    assert metrics["restored_epoch"] == 1
    assert len(seen) == 6  # epochs 0-2, the refit after going back, epochs 3-4
    restored, warm = seen[3]
    assert not warm
    for name, value in snapshots[1].items():
        torch.testing.assert_close(restored[name], value)
    assert any((restored[n] != seen[2][0][n]).any() for n in restored)  # not the encoder it replaced


def test_after_going_back_the_modularity_safeguard_ignores_the_discarded_refits(make_cfg, monkeypatch):
    """Epoch 2's refit (discarded: the phase starts from epoch 1's encoder) had the best modularity;
    the run must not end by going back to it."""
    from gnngmm.train import train

    _fake_silhouette(monkeypatch, [0.5, 0.7, 0.6, 0.3, 0.69])  # epoch 3 opens the phase, 57% under epoch 1
    _fake_modularity(monkeypatch, [0.5, 0.6, 0.9, 0.5, 0.5, 0.5])  # epochs 0-2, then 3 (after going back) to 5
    metrics = train(make_cfg("trainer.max_epochs=6", "gmm.refit_every_n_epochs=1", "gmm.loss_start_epoch=4",
                             "gmm.keep_best=0.05", "gmm.keep_best_silhouette=0.25"))
    assert metrics["restored_epoch"] == 1


def test_a_silhouette_that_only_dips_is_left_alone(make_cfg, monkeypatch):
    from gnngmm.train import train

    _fake_silhouette(monkeypatch, [0.5, 0.7, 0.6])  # 14% under the best: within 25%
    guarded = train(make_cfg(*SILHOUETTE_RUN, "gmm.keep_best_silhouette=0.25"))
    plain = train(make_cfg(*SILHOUETTE_RUN, "gmm.keep_best_silhouette=null", "overwrite=true"))
    assert guarded["restored_epoch"] is None
    assert guarded["nmi"] == plain["nmi"] and guarded["gmm_log_likelihood"] == plain["gmm_log_likelihood"]


def test_keep_best_must_be_a_share(make_cfg):
    from gnngmm.train import train

    with pytest.raises(InputError, match=r"gmm.keep_best=1.5 is not null or a share in \[0, 1\)"):
        train(make_cfg("gmm.keep_best=1.5"))
    with pytest.raises(InputError, match=r"gmm.keep_best_silhouette=-1 is not null or a share in \[0, 1\)"):
        train(make_cfg("gmm.keep_best_silhouette=-1"))


def test_steering_can_start_before_the_gmm_term(make_cfg):
    """gmm.steer_start_epoch: the head steers from that epoch on, with the NLL term still off."""
    from gnngmm.train import train

    common = ("trainer.max_epochs=4", "gmm.refit_every_n_epochs=1", "gmm.loss_start_epoch=4", "gmm.kmeans_n_init=3")
    plain = train(make_cfg(*common, "gmm.steer=self_training"))  # the term never starts: no steering
    early = train(make_cfg(*common, "gmm.steer=self_training", "gmm.steer_start_epoch=1", "gmm.steer_weight=5.0",
                           "overwrite=true"))
    assert early["gmm_log_likelihood"] != plain["gmm_log_likelihood"]


def test_false_negatives_needs_an_objective_with_negatives(make_cfg):
    from gnngmm.train import train

    with pytest.raises(InputError, match="gmm.steer=false_negatives reweights NS4GC's negatives: CCASSG does not"):
        train(make_cfg("objective=cca_ssg", "gmm.steer=false_negatives"))
    with pytest.raises(InputError, match="gmm.steer=augment scales NS4GC's edge dropping: CCASSG does not"):
        train(make_cfg("objective=cca_ssg", "gmm.steer=augment"))


def test_edge_drop_scale_follows_the_chance_that_an_edge_joins_two_components():
    from gnngmm.steering import edge_drop_scale

    resp = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    edge_index = torch.tensor([[0, 0, 1, 3], [1, 2, 2, 0]])  # within, across, across, half
    d = torch.tensor([0.0, 1.0, 1.0, 0.5])
    torch.testing.assert_close(edge_drop_scale(resp, edge_index), d / d.mean())
    torch.testing.assert_close(edge_drop_scale(resp, edge_index, 0.0), torch.ones(4))
    torch.testing.assert_close(edge_drop_scale(resp, edge_index, 0.5).mean(), torch.tensor(1.0))


def test_augment_drops_edges_between_components_and_needs_the_full_batch(make_cfg):
    from gnngmm.train import train

    metrics = train(make_cfg("gmm.steer=augment", "trainer.max_epochs=4", "gmm.finetune_epochs=2"))
    assert metrics["nmi"] > 0.3
    for bad, match in (("gmm.steer_weight=1.5", "gmm.steer_weight=1.5 is not a share in"),
                       ("data.loader=neighbor", "gmm.steer=augment needs every node's responsibilities")):
        with pytest.raises(InputError, match=match):
            train(make_cfg("gmm.steer=augment", bad))


def test_edge_mask_drops_each_edge_at_its_scaled_rate():
    from types import SimpleNamespace

    from gnngmm.objectives.base import edge_mask

    torch.manual_seed(0)
    batch = SimpleNamespace(edge_index=torch.zeros(2, 30_000, dtype=torch.long))
    scale = torch.tensor([0.0, 1.0, 2.0]).repeat(10_000)
    kept = edge_mask(batch, 0.3, scale).float().reshape(-1, 3).mean(0)
    assert kept[0] == 1.0  # edges inside a component are never dropped at weight 1
    torch.testing.assert_close(kept[1:], torch.tensor([0.7, 0.4]), atol=0.02, rtol=0)


@pytest.mark.parametrize("objective", ["dgi", "gae"])
def test_dilation_steers_objectives_without_two_views(make_cfg, objective):
    from gnngmm.train import train

    common = (f"objective={objective}", "gmm.loss_start_epoch=2", "trainer.max_epochs=4", "gmm.kmeans_n_init=3")
    plain = train(make_cfg(*common))
    steered = train(make_cfg(*common, "gmm.steer=dilation", "gmm.steer_weight=5.0", "overwrite=true"))
    assert steered["gmm_log_likelihood"] != plain["gmm_log_likelihood"]
