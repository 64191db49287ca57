"""Rank fusion and tie order: the one place that decides which of equal hits comes first.

Every ranking in the project goes through here: a store's dense or sparse ranking
(:func:`stable_top`), the fusion of a store's two rankings and the fusion of several sources'
rankings (:func:`rrf`), and the re-sort of a store's hits (:func:`tie_order`). So a query gets
the same hits in the same order on every engine and in every run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

__all__ = ["TIE_MARGIN", "rrf", "stable_top", "tie_order"]

TIE_MARGIN = 10
"""Extra hits a search asks the engine for, so that ties at the cut are ordered by id, not by chance."""


def tie_order(pid: str, score: float) -> tuple[float, str]:
    """Sort key of a hit: best score first, equal scores by id."""
    return (-score, pid)


def stable_top(points: Iterable[tuple[str, float]], limit: int) -> list[tuple[str, float]]:
    """The ``limit`` best (id, score) pairs, equal scores ordered by id.

    Engines return equal scores in any order (Edge searches segments in parallel), so which of
    them make the cut would otherwise change from run to run.
    """
    return sorted(points, key=lambda h: tie_order(*h))[:limit]


def rrf(rankings: Iterable[Sequence[str]], k: int) -> list[tuple[str, float]]:
    """Reciprocal rank fusion of rankings of ids, best first, as (id, fused score) pairs.

    Ranks count from 0, as in Qdrant's own fusion: the top hit of a ranking adds ``1/k``, so the
    same ``k`` means the same fusion inside one source and across sources. The sum is exact
    (``fsum``): a score does not depend on the order the rankings arrive in (parallel branches
    finish in any order; a plain float sum would differ in its last bits). Ties are ordered by id.

    Raises:
        ValueError: ``k`` is below 1.
    """
    if k < 1:
        msg = f"the RRF constant k must be >= 1, got {k}"
        raise ValueError(msg)
    parts: dict[str, list[float]] = {}
    for ranking in rankings:
        for rank, pid in enumerate(ranking):
            parts.setdefault(pid, []).append(1.0 / (k + rank))
    return stable_top(((pid, math.fsum(v)) for pid, v in parts.items()), len(parts))
