"""Metrics (gnngmm.metrics) on cases with known answers."""

from __future__ import annotations

import pytest
import torch

from gnngmm.metrics import anomaly_metrics, clustering_metrics, hungarian_accuracy


def test_permuted_labels_score_perfectly():
    y = torch.tensor([0, 0, 1, 1, 2, 2, 2])
    pred = torch.tensor([5, 5, 3, 3, 9, 9, 9])
    assert clustering_metrics(y, pred) == pytest.approx({"nmi": 1.0, "ari": 1.0, "acc": 1.0})


def test_hungarian_accuracy_known_answer():
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    pred = torch.tensor([1, 1, 0, 0, 0, 0])  # best matching 1->0, 0->1: 5 of 6 right
    assert hungarian_accuracy(y, pred) == pytest.approx(5 / 6)


def test_more_clusters_than_classes():
    y = torch.tensor([0, 0, 1, 1])
    pred = torch.tensor([0, 1, 2, 3])
    assert hungarian_accuracy(y, pred) == pytest.approx(0.5)


def test_anomaly_metrics_known_answer():
    outlier = torch.tensor([0, 0, 0, 1, 0, 1], dtype=torch.bool)
    score = torch.tensor([0.1, 0.2, 0.3, 900.0, 0.25, 0.28])  # outliers rank 1st and 3rd
    m = anomaly_metrics(outlier, score)
    # positives beat 4/4 and 3/4 negatives -> AUROC 7/8; AP = (1/1 + 2/3) / 2; recall@2 = 1/2
    assert m["auroc"] == pytest.approx(7 / 8)
    assert m["average_precision"] == pytest.approx((1 + 2 / 3) / 2)
    assert m["recall_at_k"] == pytest.approx(0.5)


def test_large_scores_do_not_saturate():
    outlier = torch.tensor([0, 1, 0, 1], dtype=torch.bool)
    score = torch.tensor([1000.0, 1001.0, 1000.5, 1002.0])
    assert anomaly_metrics(outlier, score)["auroc"] == pytest.approx(1.0)
