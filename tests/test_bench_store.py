"""The store benchmark runs end to end on a tiny collection (its numbers are for evals/, not here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.bench_store import MODES, Collection, main, measure


@pytest.mark.parametrize("backend", ["embedded", "local"])
def test_measure_reports_every_number(tmp_path: Path, backend: str) -> None:
    result = measure("synthetic", 600, backend, 5, tmp_path, None)
    assert (result["size"], result["backend"], result["queries"]) == (600, backend, 5)
    assert result["ingest_s"] > 0
    assert result["peak_rss_mb"] > 0
    for mode in MODES:
        assert result[f"{mode}_p50_ms"] > 0
        assert result[f"{mode}_p95_ms"] >= result[f"{mode}_p50_ms"]
    if backend == "embedded":
        assert result["index_s"] > 0
        assert result["dense_recall@10"] >= 0.9
    else:
        assert result["dense_recall@10"] is None


def test_synthetic_collection_is_clustered_and_reproducible() -> None:
    dense, sparse = Collection("synthetic", 100, None).batch(0, 100)
    again, _ = Collection("synthetic", 100, None).batch(0, 100)
    assert dense.shape == (100, 384)
    assert (dense == again).all()
    assert all(len(indices) == len(values) > 0 for indices, values in sparse)
    queries, query_terms = Collection("synthetic", 100, None).queries(3)
    assert queries.shape == (3, 384)
    assert all(terms for terms, _ in query_terms)


def test_driver_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    code = main(
        [
            "--sizes",
            "300",
            "--kinds",
            "synthetic",
            "--queries",
            "3",
            "--skip-ndcg",
            "--data-dir",
            str(tmp_path),
            "--json",
            str(out),
        ]
    )
    assert code == 0
    summary = json.loads(out.read_text())
    assert {r["backend"] for r in summary["runs"]} == {"embedded", "local"}
    assert summary["speedup"][0]["size"] == 300
