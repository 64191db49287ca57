"""Datasets, metrics and benchmark runners. Evals measure; ``tests/`` checks."""

from evals.beir import BeirDataset, load_beir
from evals.metrics import mean_metric, mrr_at_k, ndcg_at_k, percentile, recall_at_k

__all__ = ["BeirDataset", "load_beir", "mean_metric", "mrr_at_k", "ndcg_at_k", "percentile", "recall_at_k"]
