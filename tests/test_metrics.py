"""Ranking metrics against hand-computed values."""

from __future__ import annotations

import math

import pytest

from evals.metrics import mean_metric, mrr_at_k, ndcg_at_k, percentile, recall_at_k


def test_ndcg_matches_hand_computation() -> None:
    relevant = {"a": 1, "c": 1}
    # hits at ranks 1 and 3: (1/log2(2) + 1/log2(4)) / (1/log2(2) + 1/log2(3))
    expected = (1 + 0.5) / (1 + 1 / math.log2(3))
    assert ndcg_at_k(["a", "b", "c"], relevant, 10) == pytest.approx(expected)
    assert ndcg_at_k(["a", "c"], relevant, 10) == pytest.approx(1.0)
    assert ndcg_at_k(["b"], relevant, 10) == 0.0
    assert ndcg_at_k(["b", "a"], relevant, 1) == 0.0
    assert ndcg_at_k(["a"], {}, 10) == 0.0


def test_graded_ndcg_uses_grades() -> None:
    assert ndcg_at_k(["x", "y"], {"x": 1, "y": 2}, 10) < 1.0
    assert ndcg_at_k(["y", "x"], {"x": 1, "y": 2}, 10) == pytest.approx(1.0)


def test_recall_and_mrr() -> None:
    relevant = {"a": 1, "b": 1, "z": 0}
    assert recall_at_k(["a", "q"], relevant, 100) == 0.5
    assert recall_at_k(["q", "b", "a"], relevant, 2) == 0.5
    assert recall_at_k(["a"], {"z": 0}, 10) == 0.0
    assert mrr_at_k(["q", "b"], relevant, 10) == 0.5
    assert mrr_at_k(["q", "z"], relevant, 10) == 0.0
    assert mrr_at_k(["q", "b"], relevant, 1) == 0.0


def test_mean_metric_counts_missing_queries_as_zero() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
    assert mean_metric({"q1": ["a"]}, qrels, "ndcg@10") == 0.5
    assert mean_metric({"q1": ["a"], "q2": ["b"]}, qrels, "recall@100") == 1.0
    assert mean_metric({}, {}, "mrr@10") == 0.0
    with pytest.raises(ValueError, match="unknown metric"):
        mean_metric({}, qrels, "map@10")


def test_percentile_interpolates_like_numpy() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([5], 95) == 5
    assert percentile([1, 2, 3, 4, 5], 95) == pytest.approx(4.8)
    assert math.isnan(percentile([], 50))
