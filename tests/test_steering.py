"""Steering strategies (gnngmm.steering, conf/steer): each term does what its docstring says, and a new
strategy is a YAML file naming a class."""

from __future__ import annotations

import pytest
import torch

from gnngmm.data.synthetic import planted_partition
from gnngmm.encoders import GNNEncoder
from gnngmm.errors import InputError
from gnngmm.objectives import NS4GC
from gnngmm.objectives.base import Guidance
from gnngmm.objectives.ns4gc import different_component_weights
from gnngmm.steering import component_contrast, component_dilation, self_training


def one_hot(labels, k):
    return torch.nn.functional.one_hot(torch.as_tensor(labels), k).double()


def test_pairs_in_one_component_weigh_nothing_and_pairs_apart_weigh_one():
    r = one_hot([0, 0, 1], 2)
    w = different_component_weights(r, r)
    torch.testing.assert_close(
        w, torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]], dtype=torch.float64)
    )
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
    weighted = objective(encoder, graph, Guidance(assign=own)).loss
    torch.testing.assert_close(weighted, plain)


def test_false_negative_weights_stop_pushing_apart_what_the_mixture_joins(graph):
    """All nodes in one certain component: the sparsity term has no negatives left, so the loss
    is the view and neighbour agreement alone."""
    encoder = GNNEncoder(graph.num_features, hidden_channels=16, out_channels=8)
    one = lambda h: one_hot(torch.zeros(h.shape[0], dtype=torch.long), 2).to(h.dtype)  # noqa: E731
    no_sparsity = NS4GC(gam=0.0, drop_edge=(0.0, 0.0), drop_feature=(0.0, 0.0))(encoder, graph).loss
    steered = NS4GC(drop_edge=(0.0, 0.0), drop_feature=(0.0, 0.0))(encoder, graph, Guidance(assign=one)).loss
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


def test_an_unknown_steer_fails_with_one_line():
    from gnngmm import GNNGMM

    with pytest.raises(InputError, match="steer='bogus' is not one of augment, contrast, dilation"):
        GNNGMM(3, steer="bogus").settings()


@pytest.mark.slow  # two training runs per strategy
@pytest.mark.parametrize("steer", ["false_negatives", "contrast", "self_training", "dilation"])
def test_every_steer_trains_and_changes_the_run(make_cfg, steer):
    from gnngmm.train import train

    common = ("loss.start_epoch=2", "trainer.max_epochs=4", "gmm.kmeans_n_init=3")
    plain = train(make_cfg(*common))
    steered = train(make_cfg(*common, f"steer={steer}", "steer.weight=5.0", "overwrite=true"))
    assert steered["nmi"] > 0.3
    assert steered["gmm_log_likelihood"] != plain["gmm_log_likelihood"]


@pytest.mark.slow  # two training runs
def test_steering_can_start_before_the_gmm_term(make_cfg):
    """steer.start_epoch: the head steers from that epoch on, with the NLL term still off."""
    from gnngmm.train import train

    common = ("trainer.max_epochs=4", "head.refit_every_n_epochs=1", "loss.start_epoch=4", "gmm.kmeans_n_init=3")
    plain = train(make_cfg(*common, "steer=self_training"))  # the term never starts: no steering
    early = train(make_cfg(*common, "steer=self_training", "steer.start_epoch=1", "steer.weight=5.0", "overwrite=true"))
    assert early["gmm_log_likelihood"] != plain["gmm_log_likelihood"]


def test_false_negatives_needs_an_objective_with_negatives(make_cfg):
    from gnngmm.train import train

    with pytest.raises(InputError, match="steer=FalseNegatives passes `assign` to the objective: CCASSG does not"):
        train(make_cfg("objective=cca_ssg", "steer=false_negatives"))
    with pytest.raises(InputError, match="steer=ComponentAugment passes `edge_scale` to the objective: CCASSG does"):
        train(make_cfg("objective=cca_ssg", "steer=augment"))


def test_edge_drop_scale_follows_the_chance_that_an_edge_joins_two_components():
    from gnngmm.steering import edge_drop_scale

    resp = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    edge_index = torch.tensor([[0, 0, 1, 3], [1, 2, 2, 0]])  # within, across, across, half
    d = torch.tensor([0.0, 1.0, 1.0, 0.5])
    torch.testing.assert_close(edge_drop_scale(resp, edge_index), d / d.mean())
    torch.testing.assert_close(edge_drop_scale(resp, edge_index, 0.0), torch.ones(4))
    torch.testing.assert_close(edge_drop_scale(resp, edge_index, 0.5).mean(), torch.tensor(1.0))


@pytest.mark.slow  # a training run and two refused ones
def test_augment_drops_edges_between_components_and_needs_the_full_batch(make_cfg):
    from gnngmm.train import train

    metrics = train(make_cfg("steer=augment", "trainer.max_epochs=4", "loss.finetune_epochs=2"))
    assert metrics["nmi"] > 0.3
    for bad, match in (
        ("steer.weight=1.5", "steer.weight=1.5 is not a share in"),
        ("data.loader=neighbor", "steer=ComponentAugment needs every node's responsibilities"),
    ):
        with pytest.raises(InputError, match=match):
            train(make_cfg("steer=augment", bad, "overwrite=true"))


def test_edge_mask_drops_each_edge_at_its_scaled_rate():
    from types import SimpleNamespace

    from gnngmm.objectives.base import edge_mask

    torch.manual_seed(0)
    batch = SimpleNamespace(edge_index=torch.zeros(2, 30_000, dtype=torch.long))
    scale = torch.tensor([0.0, 1.0, 2.0]).repeat(10_000)
    kept = edge_mask(batch, 0.3, scale).float().reshape(-1, 3).mean(0)
    assert kept[0] == 1.0  # edges inside a component are never dropped at weight 1
    torch.testing.assert_close(kept[1:], torch.tensor([0.7, 0.4]), atol=0.02, rtol=0)


@pytest.mark.slow  # two training runs per objective
@pytest.mark.parametrize("objective", ["dgi", "gae"])
def test_dilation_steers_objectives_without_two_views(make_cfg, objective):
    from gnngmm.train import train

    common = (f"objective={objective}", "loss.start_epoch=2", "trainer.max_epochs=4", "gmm.kmeans_n_init=3")
    plain = train(make_cfg(*common))
    steered = train(make_cfg(*common, "steer=dilation", "steer.weight=5.0", "overwrite=true"))
    assert steered["gmm_log_likelihood"] != plain["gmm_log_likelihood"]


def test_a_strategy_added_as_a_yaml_file_runs_without_touching_the_module(make_cfg, tmp_path):
    """A user's strategy: a class (tests/custom_steering.py) and a YAML file naming it, found on
    Hydra's search path; the module's one hook calls it."""
    from gnngmm.train import train

    conf = tmp_path / "myconf"
    (conf / "steer").mkdir(parents=True)
    (conf / "steer" / "pull_apart.yaml").write_text(
        "_target_: custom_steering.PullApart\nweight: 2.0\nstart_epoch: 1\n"
    )
    import custom_steering

    custom_steering.CALLS.clear()
    metrics = train(
        make_cfg(
            f"hydra.searchpath=[file://{conf}]",
            "steer=pull_apart",
            "trainer.max_epochs=3",
            "head.refit_every_n_epochs=1",
        )
    )
    assert custom_steering.CALLS and min(custom_steering.CALLS) == 1, "active from epoch 1 on"
    assert metrics["nmi"] > 0.3
