"""Synthetic graphs (gnngmm.data.synthetic): the size presets and the planted degree-corrected graph."""

from __future__ import annotations

import torch


def test_presets_have_the_real_sizes_and_scale_in_proportion():
    from gnngmm.data.synthetic import preset

    reddit = preset("reddit")
    assert (reddit["num_nodes"], reddit["num_edges"], reddit["num_features"], reddit["num_blocks"]) == (
        232_965,
        114_615_892,
        602,
        41,
    )
    products = preset("products")
    assert (products["num_nodes"], products["num_edges"], products["num_features"], products["num_blocks"]) == (
        2_449_029,
        123_718_280,
        100,
        47,
    )
    arxiv = preset("arxiv")
    assert (arxiv["num_nodes"], arxiv["num_edges"], arxiv["num_features"], arxiv["num_blocks"]) == (
        169_343,
        2_332_486,
        128,
        40,
    )
    quarter = preset("reddit", 0.25)
    assert quarter["num_nodes"] == round(232_965 / 4) and quarter["num_edges"] % 2 == 0
    assert abs(quarter["num_edges"] / quarter["num_nodes"] - 114_615_892 / 232_965) < 0.01


def test_planted_graph_is_exact_sorted_symmetric_and_heavy_tailed():
    from gnngmm.data.preprocess import is_sorted_undirected
    from gnngmm.data.synthetic import planted_features, planted_graph, planted_labels

    kw = dict(num_edges=80_000, homophily=0.5, degree_sigma=1.3, block_size_exponent=1.0, feature_signal=0.3, seed=3)
    data = planted_graph(4000, 12, 16, **kw)
    ei = data.edge_index
    assert ei.shape[1] == 80_000 and bool((ei[0] != ei[1]).all())
    assert is_sorted_undirected(ei, 4000)  # sorted by (row, col), no duplicates, both directions
    deg = torch.bincount(ei[0], minlength=4000).double()
    assert deg.max() > 8 * deg.median()  # hubs
    assert float((deg <= deg.mean() / 4).double().mean()) > 0.1  # and many low-degree nodes
    sizes = torch.bincount(data.y)
    assert sizes.max() > 5 * sizes.min() and sizes.min() >= 2
    homophily = float((data.y[ei[0]] == data.y[ei[1]]).double().mean())
    assert 0.4 < homophily < 0.8
    again = planted_graph(4000, 12, 16, **kw)
    assert torch.equal(again.edge_index, ei) and torch.equal(again.x, data.x)
    # the benchmark regenerates the raw features without the edges: the same tensor
    y = planted_labels(4000, 12, 1.0, 3)
    assert torch.equal(y, data.y) and torch.equal(planted_features(y, 12, 16, 0.3, 3), data.x)
