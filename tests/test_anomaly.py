"""Anomaly scores (gnngmm.anomaly): the channels and their combination on known answers, and the scores
and baselines a run reports."""

from __future__ import annotations

import json

import pytest
import torch

from gnngmm.errors import InputError
from gnngmm.train import train


@pytest.mark.parametrize("score", ["nll", pytest.param("nll+neighbor", marks=pytest.mark.slow)])
def test_bond_run_reports_anomaly_metrics_and_baselines(make_cfg, tmp_path, score):
    metrics = train(make_cfg("data=inj_cora", f"anomaly_score={score}"))
    for key in ("auroc", "average_precision", "recall_at_k", "degree_auroc", "feature_norm_auroc"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert "nmi" not in metrics, "BOND graphs carry no class labels"
    written = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert written["auroc"] == metrics["auroc"]


def test_unknown_anomaly_score_fails_before_training(make_cfg):
    with pytest.raises(InputError, match="anomaly_score='combind' is not one of"):
        train(make_cfg("anomaly_score=combind", "trainer.max_epochs=100000"))


def test_triangle_counts_known_answer():
    from itertools import combinations

    from gnngmm.anomaly import triangle_counts

    k4 = torch.tensor([p for a, b in combinations(range(4), 2) for p in ((a, b), (b, a))]).T
    tail = torch.tensor([[3, 4], [4, 3]])  # node 4 hangs off the K4: no triangle through it
    counts = triangle_counts(torch.cat([k4, tail], dim=1), 5, block=2)
    assert counts.tolist() == [3.0, 3.0, 3.0, 3.0, 0.0]


@pytest.mark.parametrize("score", ["combined", pytest.param("combined_max", marks=pytest.mark.slow)])
def test_combined_score_finds_injected_cliques_and_contexts(make_cfg, score):
    metrics = train(
        make_cfg(
            "data.inject.structural_cliques=3",
            "data.inject.clique_size=10",
            "data.inject.contextual=30",
            f"anomaly_score={score}",
        )
    )
    assert metrics["auroc"] > 0.85
    assert metrics["auroc"] > metrics["degree_auroc"] and metrics["auroc"] > metrics["feature_norm_auroc"]


def test_tail_p_values_average_ties():
    from gnngmm.anomaly import tail_p_values

    # ascending average ranks 3.5, 0.5, 3.5, 2, 0.5 of 5: p = (5 - rank) / 5
    p = tail_p_values(torch.tensor([3.0, 1.0, 3.0, 2.0, 1.0]))
    torch.testing.assert_close(p, torch.tensor([1.5, 4.5, 1.5, 3.0, 4.5], dtype=torch.float64) / 5)
    torch.testing.assert_close(
        tail_p_values(torch.arange(4.0)), torch.tensor([1.0, 0.75, 0.5, 0.25], dtype=torch.float64)
    )
    torch.testing.assert_close(tail_p_values(torch.zeros(4)), torch.full((4,), 0.625, dtype=torch.float64))


def test_fisher_combination_ranks_jointly_unusual_nodes_above_single_channel_extremes():
    from gnngmm.anomaly import combine_channels

    # node 0 is second-highest in both channels; node 1 tops channel a only; node 2 tops b only
    a = torch.tensor([8.0, 9.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    b = torch.tensor([8.0, 0.0, 9.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0])
    score = combine_channels([a, b])
    # -log p: node 0 2 log(5) = 3.22; nodes 1 and 2 log(10) = 2.30 (their other p is 1); nodes 3-9 <= 1.31
    assert int(score.argmax()) == 0
    torch.testing.assert_close(score[0], 2 * torch.log(torch.tensor(5.0, dtype=torch.float64)))
    assert score[1] == score[2] and score[1] > score[3:].max()
    # Tippett's rule (anomaly_score=combined_max) keeps the smallest p: the one-channel extremes win
    tippett = combine_channels([a, b], "max")
    assert tippett[1] == tippett[2] > tippett[0]
    torch.testing.assert_close(tippett[0], torch.log(torch.tensor(5.0, dtype=torch.float64)))


def test_constant_channel_is_left_out_of_the_combined_score():
    from gnngmm.anomaly import combine_channels, structural_density, tail_p_values

    # a 4-cycle with self-loops: triangle-free, so its structural channel must be all zero
    cycle = torch.tensor([[0, 1, 1, 2, 2, 3, 3, 0], [1, 0, 2, 1, 3, 2, 0, 3]])
    assert structural_density(cycle, 4).tolist() == [0.0] * 4
    signal = torch.tensor([0.1, 0.9, 0.4, 0.2])
    combined = combine_channels([signal, structural_density(cycle, 4)])
    torch.testing.assert_close(combined, -tail_p_values(signal).log())  # not shifted by the tie's p
    assert combine_channels([torch.ones(4)]).tolist() == [0.0] * 4


def test_contextual_channel_sees_past_a_common_offset():
    from itertools import combinations

    from gnngmm.anomaly import contextual_inconsistency, neighbor_inconsistency

    # rows near a shared offset (like BOND reddit's near-uniform rows): clique A (nodes 0-5) leans
    # on feature 0, clique B (6-11) on feature 1; node 12 leans like B but hangs off node 0 of A
    x = torch.full((13, 8), 1 / 8, dtype=torch.float64)
    x[:6, 0] += 0.01
    x[6:, 1] += 0.01
    pairs = [*combinations(range(6), 2), *combinations(range(6, 12), 2), (0, 12)]
    edges = torch.tensor([p for a, b in pairs for p in ((a, b), (b, a))]).T
    scores = contextual_inconsistency(x, edges)
    assert int(scores.argmax()) == 12 and float(scores[12]) > 1.0  # opposite directions after centring
    assert float(scores[:12].max()) < 0.1
    assert float(neighbor_inconsistency(x, edges)[12]) < 1e-2  # uncentred: cosine ~1 for everyone


def test_neighbor_mean_equals_the_dense_mean_over_in_edges():
    """Duplicates count twice (as in PyG's mean aggregation), isolated nodes get zeros and
    in-degree 0; float32 and float64 inputs alike."""
    from gnngmm.anomaly import neighbor_mean

    edges = torch.tensor([[0, 1, 1, 2, 3, 3], [1, 0, 2, 1, 1, 1]])  # 3 -> 1 twice; node 4 isolated
    for dtype in (torch.float32, torch.float64):
        z = torch.arange(10, dtype=dtype).reshape(5, 2)
        mean, count = neighbor_mean(z, edges)
        dense = torch.zeros(5, 5, dtype=dtype)
        dense.index_put_((edges[1], edges[0]), torch.ones(6, dtype=dtype), accumulate=True)
        torch.testing.assert_close(count, dense.sum(1))
        torch.testing.assert_close(mean, dense @ z / dense.sum(1).clamp_min(1)[:, None])
        assert mean.dtype == dtype and float(mean[4].abs().sum()) == 0.0


@pytest.mark.parametrize("center", [False, True])
def test_neighbor_inconsistency_by_column_blocks_equals_the_whole_matrix(center):
    """The float64 cosine against the neighbours' mean, summed over column blocks, is the same
    number as torch's cosine_similarity on whole (centred) float64 matrices."""
    from gnngmm.anomaly import neighbor_inconsistency, neighbor_mean

    g = torch.Generator().manual_seed(0)
    x = torch.rand(50, 37, generator=g) + 0.5
    edges = torch.randint(0, 45, (2, 200), generator=g)  # nodes 45-49 have no in-edges
    ref = x.double() - x.double().mean(0) if center else x.double()
    mean, count = neighbor_mean(ref, edges)
    cos = torch.nn.functional.cosine_similarity(ref, mean, dim=1)
    expected = torch.where(count > 0, 1.0 - cos, torch.zeros_like(cos))
    got = neighbor_inconsistency(x, edges, center=center, chunk_cols=8)
    assert got.dtype == torch.float64 and float(got[45:].abs().sum()) == 0.0
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    x64 = x.double()
    torch.testing.assert_close(neighbor_inconsistency(x64, edges, center=center, chunk_cols=8), expected)
    assert torch.equal(x64, x.double())  # a float64 input is read, never centred in place
