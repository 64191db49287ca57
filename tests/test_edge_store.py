"""Qdrant Edge backend: congruence with qdrant-client, HNSW index, locking, persistence.

The common store behaviour runs on Edge through the parametrized ``store`` fixture in
test_store.py; this file holds what is Edge's own, and the side-by-side comparison.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qdrant_client import models

from tests.conftest import server_store
from tools.sparse import Bm25Encoder, SparseVector
from tools.store import Hit, Point, QdrantEngine, QdrantStore, SourceNotFoundError, StoreError, StoreLockedError
from tools.store._core import Engine
from tools.store.edge import EdgeEngine, EdgeStore, to_edge_filter

ROOT = Path(__file__).resolve().parents[1]
ENCODER = Bm25Encoder()
WORDS = """penguin volcano moon tide glacier island river desert forest comet planet coral reef storm canyon
meadow harbor bridge castle engine rocket library market garden winter summer ocean""".split()  # noqa: SIM905


def corpus_points(n: int, seed: int = 0) -> list[Point]:
    """``n`` chunks of random topic words: BM25 vectors of the words, random dense vectors.

    Scores must not tie: engines order tied hits differently, and a tie in one prefetch ranking
    changes the fused scores. So the BM25 weights get a tiny per-chunk jitter and the dense
    vectors are random.
    """
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(4, 12)))) for _ in range(n)]
    avgdl = ENCODER.average_length(texts)
    dense = rng.standard_normal((n, 64))
    dense /= np.linalg.norm(dense, axis=1, keepdims=True)
    points = []
    for i, text in enumerate(texts):
        bm25 = ENCODER.encode_document(text, avgdl)
        jitter = 1 + 0.01 * rng.random()
        payload = {"doc_id": f"d{i % 40}", "path": f"/p/{i % 7}.txt", "lang": ["en", "fr", "de"][i % 3], "n": i}
        sparse = SparseVector(bm25.indices, [v * jitter for v in bm25.values])
        points.append(Point(str(uuid.UUID(int=i + 1)), dense[i].tolist(), sparse, payload))
    return points


def query_vector(text: str) -> list[float]:
    """A random dense query vector, fixed per text."""
    rng = np.random.default_rng(sum(map(ord, text)))
    vector = rng.standard_normal(64)
    return (vector / np.linalg.norm(vector)).tolist()  # type: ignore[no-any-return]


def fill(store: Any, points: list[Point], name: str = "kb") -> None:
    store.create_source(name, description="words", dimension=64, embedding_model="fake-hash-64", bm25_avgdl=7.0)
    store.upsert(name, points)


@pytest.fixture(scope="module")
def points() -> list[Point]:
    return corpus_points(400)


@pytest.fixture(params=["memory", "server"])
def pair(
    request: pytest.FixtureRequest, tmp_path: Path, points: list[Point]
) -> Iterator[tuple[EdgeStore, QdrantStore]]:
    """The same 400 chunks in Edge and in Qdrant: qdrant-client's in-memory engine, and a real
    Qdrant server when ``ARAG_TEST_QDRANT_URL`` names one (skipped, saying so, otherwise)."""
    reference = server_store() if request.param == "server" else QdrantStore(":memory:")
    with EdgeStore(tmp_path / "edge") as edge_store, reference as qdrant:
        fill(edge_store, points)
        fill(qdrant, points)
        yield edge_store, qdrant


def assert_same_ranking(a: list[Hit], b: list[Hit]) -> None:
    """Equal score sequences; equal ids wherever the scores are not tied."""
    assert len(a) == len(b)
    assert [h.score for h in a] == pytest.approx([h.score for h in b], rel=1e-5, abs=1e-6)
    groups: dict[float, tuple[set[str], set[str]]] = {}
    for x, y in zip(a, b, strict=True):
        ids = groups.setdefault(round(y.score, 5), (set(), set()))
        ids[0].add(x.id)
        ids[1].add(y.id)
    last = round(b[-1].score, 5) if b else None
    for score, (ids_a, ids_b) in groups.items():
        if score != last:  # the group cut by the limit may differ between engines
            assert ids_a == ids_b, score


QUERIES = ["penguin moon", "volcano island river", "comet planet rocket", "winter storm ocean", "the of and"]
FILTERS: list[Any] = [
    None,
    {"lang": "fr"},
    {"doc_id": ["d1", "d2", "d3", "d30"]},
    models.Filter(must_not=[models.FieldCondition(key="lang", match=models.MatchValue(value="en"))]),
    models.Filter(
        should=[
            models.FieldCondition(key="n", range=models.Range(lt=50)),
            models.FieldCondition(key="path", match=models.MatchExcept(**{"except": ["/p/1.txt", "/p/2.txt"]})),
        ]
    ),
]


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("where", FILTERS, ids=["none", "value", "any", "must_not", "should_range_except"])
@pytest.mark.parametrize("mode", ["dense", "sparse", "hybrid"])
def test_same_results_as_qdrant_client(pair: tuple[EdgeStore, QdrantStore], query: str, where: Any, mode: str) -> None:
    edge_store, qdrant = pair
    dense = query_vector(query) if mode != "sparse" else None
    sparse = ENCODER.encode_query(query) if mode != "dense" else None
    kwargs: dict[str, Any] = {"dense": dense, "sparse": sparse, "limit": 10, "where": where, "prefetch_limit": 30}
    ours = edge_store.search("kb", exact=True, rrf_k=10, **kwargs)
    theirs = qdrant.search("kb", rrf_k=10, **kwargs)
    assert_same_ranking(ours, theirs)
    theirs_by_id = {h.id: h.payload for h in theirs}
    assert all(h.payload == theirs_by_id[h.id] for h in ours if h.id in theirs_by_id)


def test_counts_scroll_and_deletes_agree(pair: tuple[EdgeStore, QdrantStore]) -> None:
    edge_store, qdrant = pair
    for where in FILTERS:
        assert edge_store.count("kb", where) == qdrant.count("kb", where)
    assert sorted(h.id for h in edge_store.scroll("kb", {"lang": "de"})) == sorted(
        h.id for h in qdrant.scroll("kb", {"lang": "de"})
    )
    for store in (edge_store, qdrant):
        store.delete("kb", where={"doc_id": ["d5", "d6"]})
        store.delete("kb", ids=[str(uuid.UUID(int=1)), str(uuid.UUID(int=2))])
    assert edge_store.count("kb") == qdrant.count("kb") == 400 - 20 - 2
    # Deleted points count in Edge's IDF until the index refresh vacuums them.
    edge_store.refresh_index("kb", force=True)
    assert sorted(r.id for r in edge_store.chunk_refs("kb", ["d7"])) == sorted(
        r.id for r in qdrant.chunk_refs("kb", ["d7"])
    )
    query = ENCODER.encode_query("penguin moon")
    assert_same_ranking(edge_store.search("kb", sparse=query, limit=10), qdrant.search("kb", sparse=query, limit=10))


def test_export_from_edge_imports_into_qdrant(tmp_path: Path, points: list[Point]) -> None:
    with EdgeStore(tmp_path / "edge") as edge_store, QdrantStore(tmp_path / "qdrant") as qdrant:
        fill(edge_store, points)
        exported = list(edge_store.points("kb"))
        assert len(exported) == 400
        by_id = {p.id: p for p in exported}
        original = points[17]
        assert by_id[original.id].payload == original.payload
        assert by_id[original.id].dense == pytest.approx(original.dense, abs=1e-6)
        exported_sparse = by_id[original.id].sparse
        assert dict(zip(exported_sparse.indices, exported_sparse.values, strict=True)) == pytest.approx(
            dict(zip(original.sparse.indices, original.sparse.values, strict=True)), rel=1e-6
        )
        fill(qdrant, exported)
        query = query_vector("glacier canyon")
        assert_same_ranking(
            edge_store.search("kb", dense=query, limit=10, exact=True), qdrant.search("kb", dense=query, limit=10)
        )


def test_hnsw_index_is_near_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((30, 64))
    vectors = centres[rng.integers(0, 30, 3000)] + 0.4 * rng.standard_normal((3000, 64))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    cluster_points = [
        Point(str(uuid.UUID(int=i + 1)), v.tolist(), SparseVector([i % 50], [1.0]), {"n": i})
        for i, v in enumerate(vectors)
    ]
    events: list[tuple[str, int, int]] = []
    with EdgeStore(tmp_path / "edge", index_threshold=1000) as store:
        fill(store, cluster_points)
        assert store.pending_index("kb") == 3000
        assert store.refresh_index("kb", progress=lambda *e: events.append(e))
        assert events == [("index", 0, 1), ("index", 1, 1)]
        assert store.pending_index("kb") == 0
        assert not store.refresh_index("kb")  # nothing left to index
        queries = centres[rng.integers(0, 30, 40)] + 0.4 * rng.standard_normal((40, 64))
        recall = []
        for q in queries:
            approx = {h.id for h in store.search("kb", dense=q.tolist(), limit=10)}
            exact = {h.id for h in store.search("kb", dense=q.tolist(), limit=10, exact=True)}
            recall.append(len(approx & exact) / 10)
        assert float(np.mean(recall)) >= 0.95


def test_small_additions_wait_for_the_threshold(tmp_path: Path, points: list[Point]) -> None:
    with EdgeStore(tmp_path / "edge", index_threshold=1000) as store:
        fill(store, points)
        assert store.pending_index("kb") == 400
        assert not store.refresh_index("kb")
        assert store.refresh_index("kb", force=True)
        assert store.pending_index("kb") == 0
        assert store.count("kb") == 400  # the shard reopened after the child process built the index


def test_persists_across_processes(tmp_path: Path, points: list[Point]) -> None:
    with EdgeStore(tmp_path / "edge") as store:
        fill(store, points)
        store.set_description("kb", "words, renamed")
    script = textwrap.dedent(
        f"""
        from tools.store import EdgeStore
        with EdgeStore({str(tmp_path / "edge")!r}) as store:
            print(store.count("kb"), store.get_source("kb").description)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "400 words, renamed"


def test_threads_opening_a_source_at_once_share_one_shard(tmp_path: Path, points: list[Point]) -> None:
    with EdgeStore(tmp_path / "edge") as store:
        fill(store, points)
    with EdgeStore(tmp_path / "edge") as reopened, ThreadPoolExecutor(8) as pool:
        counts = list(pool.map(lambda _: reopened.count("kb"), range(16)))
    assert counts == [400] * 16


def test_second_opener_gets_a_clear_error(tmp_path: Path) -> None:
    with EdgeStore(tmp_path / "edge") as store:
        fill(store, corpus_points(5))
        with pytest.raises(StoreLockedError, match=r"another process.*ARAG_QDRANT_URL"):
            EdgeStore(tmp_path / "edge")
        script = f"from tools.store.edge import EdgeStore\nEdgeStore({str(tmp_path / 'edge')!r})"
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=False)
        assert result.returncode != 0
        assert "StoreLockedError" in result.stderr
    with EdgeStore(tmp_path / "edge") as reopened:  # released on close
        assert reopened.count("kb") == 5


def test_folders_without_metadata_are_not_sources(tmp_path: Path) -> None:
    (tmp_path / "edge" / "stray").mkdir(parents=True)
    with EdgeStore(tmp_path / "edge") as store:
        assert store.list_sources() == []
        with pytest.raises(SourceNotFoundError):
            store.count("stray")
        fill(store, corpus_points(3), name="stray")  # a half-created source is replaced
        assert store.count("stray") == 3


def test_path_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="is a file"):
        EdgeStore(tmp_path / "file")


def test_unsupported_filters_say_so() -> None:
    with pytest.raises(ValueError, match="min_should"):
        to_edge_filter(
            models.Filter(
                min_should=models.MinShould(
                    conditions=[models.FieldCondition(key="a", match=models.MatchValue(value=1))], min_count=1
                )
            )
        )
    with pytest.raises(ValueError, match="not supported by the embedded engine"):
        to_edge_filter(
            models.Filter(
                must=[
                    models.FieldCondition(
                        key="g", geo_radius=models.GeoRadius(center=models.GeoPoint(lon=0, lat=0), radius=1)
                    )
                ]
            )
        )
    assert to_edge_filter(None) is None


def test_engines_implement_only_the_engine_protocol() -> None:
    # Store semantics live in one place; an engine adds nothing but its own index upkeep.
    def public(cls: type) -> set[str]:
        return {name for name in dir(cls) if not name.startswith("_")}

    protocol = public(Engine) | set(Engine.__annotations__)
    assert public(QdrantEngine) == protocol
    assert public(EdgeEngine) == protocol | {"pending_index", "optimize"}


def test_the_hnsw_graph_of_new_sources_follows_the_settings(tmp_path: Path) -> None:
    import json

    from agents.components import build_store
    from agents.settings import Settings

    settings = Settings(store={"edge_path": tmp_path / "edge", "hnsw_m": 24, "hnsw_ef_construct": 150, "hnsw_ef": 64})
    with build_store(settings) as store:
        store.create_source("kb", description="d", dimension=8, embedding_model="m", bm25_avgdl=1.0)
        assert store.hnsw_ef == 64  # type: ignore[attr-defined]
    config = json.loads((tmp_path / "edge" / "kb" / "shard" / "edge_config.json").read_text())
    assert (config["hnsw_config"]["m"], config["hnsw_config"]["ef_construct"]) == (24, 150)
