"""Datasets, metrics and benchmark runners. Evals measure; ``tests/`` checks.

Names are imported on first use (PEP 562): `arag --help` lists `arag eval` without loading the harness.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tools._lazy import lazy_exports

if TYPE_CHECKING:
    from evals.beir import BeirDataset, load_beir
    from evals.datasets import EvalDataset, EvalItem, load_dataset
    from evals.harness import RunResult, assert_no_regression, compare, load_run, run
    from evals.metrics import mean_metric, mrr_at_k, ndcg_at_k, percentile, recall_at_k

_EXPORTS = {
    "BeirDataset": "evals.beir",
    "EvalDataset": "evals.datasets",
    "EvalItem": "evals.datasets",
    "RunResult": "evals.harness",
    "assert_no_regression": "evals.harness",
    "compare": "evals.harness",
    "load_beir": "evals.beir",
    "load_dataset": "evals.datasets",
    "load_run": "evals.harness",
    "mean_metric": "evals.metrics",
    "mrr_at_k": "evals.metrics",
    "ndcg_at_k": "evals.metrics",
    "percentile": "evals.metrics",
    "recall_at_k": "evals.metrics",
    "run": "evals.harness",
}

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

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
