"""Ranking metrics, computed as BEIR's pytrec_eval does (graded relevance, log2 discount).

Each function scores one query: ``ranking`` is the list of returned ids, best first, and
``relevant`` maps the judged ids to their relevance grade (0 = not relevant).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from statistics import mean

__all__ = ["mean_metric", "mrr_at_k", "ndcg_at_k", "percentile", "recall_at_k"]


def ndcg_at_k(ranking: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    """Normalised discounted cumulative gain of the top ``k``."""
    dcg = sum(relevant.get(doc_id, 0) / math.log2(rank + 2) for rank, doc_id in enumerate(ranking[:k]))
    ideal_grades = sorted((g for g in relevant.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(rank + 2) for rank, g in enumerate(ideal_grades))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranking: Sequence[str], relevant: Mapping[str, int], k: int = 100) -> float:
    """Share of the relevant ids found in the top ``k``."""
    gold = {doc_id for doc_id, g in relevant.items() if g > 0}
    if not gold:
        return 0.0
    return len(gold.intersection(ranking[:k])) / len(gold)


def mrr_at_k(ranking: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    """Reciprocal rank of the first relevant id in the top ``k`` (0 when none is there)."""
    for rank, doc_id in enumerate(ranking[:k]):
        if relevant.get(doc_id, 0) > 0:
            return 1.0 / (rank + 1)
    return 0.0


def mean_metric(
    rankings: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Mapping[str, int]],
    metric: str,
) -> float:
    """Mean of ``metric`` (``"ndcg@10"``, ``"recall@100"``, ``"mrr@10"``) over the judged queries.

    A judged query missing from ``rankings`` counts as 0, as in pytrec_eval.
    """
    name, _, k_text = metric.partition("@")
    functions = {"ndcg": ndcg_at_k, "recall": recall_at_k, "mrr": mrr_at_k}
    if name not in functions or not k_text.isdigit():
        msg = f"unknown metric {metric!r}; use ndcg@K, recall@K or mrr@K"
        raise ValueError(msg)
    fn, k = functions[name], int(k_text)
    if not qrels:
        return 0.0
    return mean(fn(rankings.get(qid, []), rel, k) for qid, rel in qrels.items())


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation, as numpy's default."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
