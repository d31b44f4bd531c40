"""gnngmm.reference: MS2CAG's objective equals its dense formula, the rule keeps a partition that
holds both yardsticks and adopts the reference otherwise, and a run reports what it did."""

import json

import pytest
import torch

from gnngmm import GNNGMM
from gnngmm.baselines.ms2cag import SmoothedGram
from gnngmm.data.synthetic import planted_partition
from gnngmm.errors import InputError
from gnngmm.reference import TrainingFreeReference
from gnngmm.train import train


@pytest.fixture(scope="module")
def graph():
    return planted_partition(600, 4, 32, homophily=0.85, feature_signal=0.6, seed=3)


def test_attributed_modularity_is_the_dense_formula(graph):
    from test_ms2cag import dense_reference

    gram = SmoothedGram(graph.x, graph.edge_index, 4, 0.9)
    labels = graph.y
    _, m = dense_reference(graph.x, graph.edge_index, 4, 0.9, 0.9)
    omega_total = float((dense_reference(graph.x, graph.edge_index, 4, 0.9, 0.0)[1]).sum())
    h = torch.nn.functional.one_hot(labels).double()
    expected = float(torch.trace(h.T @ m @ h)) / omega_total
    assert gram.modularity(labels, 0.9) == pytest.approx(expected, rel=1e-4)


def test_the_rule_keeps_what_holds_both_yardsticks_and_adopts_otherwise(graph):
    reference = TrainingFreeReference(hops=4)
    own = reference.check(graph.x, graph.edge_index, graph.y, seed=0)
    assert own.labels.shape == (600,) and own.scores["agreement_nmi"] > 0.9
    # the reference's own partition holds both yardsticks against itself
    assert reference.check(graph.x, graph.edge_index, own.labels, seed=0).decision == "trained"
    noise = torch.randint(0, 4, (600,), generator=torch.Generator().manual_seed(0))
    check = reference.check(graph.x, graph.edge_index, noise, seed=0)
    assert check.decision == "reference" and "attributed modularity" in check.reason
    assert set(check.summary()) == {"decision", "reason", "scores"}
    reported = TrainingFreeReference(hops=4, adopt=False).check(graph.x, graph.edge_index, noise)
    assert reported.decision == "reported"
    skipped = TrainingFreeReference(max_edges=10).check(graph.x, graph.edge_index, noise)
    assert skipped.decision == "skipped" and skipped.labels is None and "reference.max_edges=10" in skipped.reason


@pytest.mark.parametrize("kwargs", [{"margin": -0.1}, {"margin": True}, {"gamma": 1.5}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(InputError, match="reference"):
        TrainingFreeReference(**kwargs)


def test_an_adopted_reference_is_the_runs_partition(graph):
    model = GNNGMM(4, trainer={"max_epochs": 1}, encoder={"hidden_channels": 16, "out_channels": 8}).fit(graph)
    assert model.reference_["decision"] == "reference"  # one epoch: MS2CAG's partition wins
    kept = GNNGMM(4, trainer={"max_epochs": 1}, encoder={"hidden_channels": 16, "out_channels": 8}, reference="none")
    kept.fit(graph)
    assert kept.reference_ is None and not torch.equal(model.labels_, kept.labels_)
    assert model.result_.cluster_sizes == torch.bincount(model.labels_, minlength=4).tolist()


def test_the_command_line_reports_and_turns_it_off(make_cfg, tmp_path):
    metrics = train(make_cfg())
    assert metrics["reference"]["decision"] in ("trained", "reference")
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["reference"] == metrics["reference"]
    assert train(make_cfg("reference=none", "overwrite=true"))["reference"] is None
    reported = train(make_cfg("reference.adopt=false", "overwrite=true"))["reference"]
    assert reported["decision"] in ("trained", "reported")
