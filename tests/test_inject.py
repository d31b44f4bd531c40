"""Outlier injection (gnngmm.data.inject): counts, structure, seeding, and a run on an injected graph."""

from __future__ import annotations

import pytest
import torch
from raw_fixtures import graph

from gnngmm.data.inject import inject_outliers
from gnngmm.errors import InputError
from gnngmm.train import train


def test_injection_counts_and_structure():
    data = graph(300, 4, seed=0)
    out = inject_outliers(data, structural_cliques=3, clique_size=5, contextual=10, candidates=20, seed=1)
    structural = out.outlier.clone()
    assert 15 <= int(out.outlier.sum()) <= 25  # 15 clique members + 10 contextual, overlaps count once
    edges = set(map(tuple, out.edge_index.t().tolist()))
    assert edges >= set(map(tuple, data.edge_index.t().tolist())), "original edges kept"
    changed = (out.x != data.x).any(1)
    assert int(changed.sum()) <= 10 and bool(structural[changed].all())
    for node in torch.nonzero(changed).flatten().tolist():  # copied from another node
        assert bool((data.x == out.x[node]).all(1).any())
    assert out.is_undirected()


def test_injection_is_seeded():
    data = graph(300, 4, seed=0)
    a = inject_outliers(data, structural_cliques=2, clique_size=6, contextual=5, seed=7)
    b = inject_outliers(data, structural_cliques=2, clique_size=6, contextual=5, seed=7)
    c = inject_outliers(data, structural_cliques=2, clique_size=6, contextual=5, seed=8)
    assert torch.equal(a.outlier, b.outlier) and torch.equal(a.edge_index, b.edge_index) and torch.equal(a.x, b.x)
    assert not torch.equal(a.outlier, c.outlier)


def test_injection_too_large_is_a_clear_error():
    with pytest.raises(InputError, match="cannot inject 30 cliques of 15"):
        inject_outliers(graph(300, 4), structural_cliques=30, clique_size=15)


def test_injection_from_the_command_line_config(make_cfg):
    metrics = train(
        make_cfg("data.inject.structural_cliques=2", "data.inject.clique_size=10", "data.inject.contextual=20")
    )
    assert "auroc" in metrics and "nmi" in metrics
    # cliques of 10 random nodes stand out by degree in a sparse graph
    assert metrics["degree_auroc"] > 0.6
