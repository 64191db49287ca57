"""Datasets, metrics and benchmark runners. Evals measure; ``tests/`` checks."""

from evals.beir import BeirDataset, load_beir
from evals.datasets import EvalDataset, EvalItem, load_dataset
from evals.harness import RunResult, assert_no_regression, compare, load_run, run
from evals.metrics import mean_metric, mrr_at_k, ndcg_at_k, percentile, recall_at_k

__all__ = [
    "BeirDataset",
    "EvalDataset",
    "EvalItem",
    "RunResult",
    "assert_no_regression",
    "compare",
    "load_beir",
    "load_dataset",
    "load_run",
    "mean_metric",
    "mrr_at_k",
    "ndcg_at_k",
    "percentile",
    "recall_at_k",
    "run",
]
