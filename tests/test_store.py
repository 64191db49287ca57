"""QdrantStore on qdrant-client's local mode, in memory and on disk."""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qdrant_client import models

from agents.testing import FakeEmbeddings
from tools import _fusion
from tools.sparse import Bm25Encoder, SparseVector
from tools.store import (
    ChunkRef,
    Hit,
    Point,
    QdrantStore,
    SourceExistsError,
    SourceNotFoundError,
    StoreError,
    StoreLockedError,
    VectorStore,
    build_filter,
)

ROOT = Path(__file__).resolve().parents[1]
ENCODER = Bm25Encoder()
EMBEDDINGS = FakeEmbeddings()

TEXTS = [
    "Emperor penguins breed in the Antarctic winter",
    "Penguins cannot fly but swim very well",
    "Mount Etna is an active volcano in Sicily",
    "The volcano Vesuvius buried Pompeii",
    "Tides are caused by the gravity of the Moon",
    "The Moon orbits the Earth every 27 days",
    "Plants turn light into chemical energy",
    "Glaciers carve valleys over thousands of years",
    "Sicily is the largest island in the Mediterranean",
    "Antarctic ice holds most of the fresh water on Earth",
]


def uid(n: int) -> str:
    return str(uuid.UUID(int=n))


def new_source(store: QdrantStore, name: str = "docs", **overrides: Any) -> None:
    args: dict[str, Any] = {
        "description": "test chunks",
        "dimension": 4,
        "embedding_model": "fake-4",
        "bm25_avgdl": 3.0,
        **overrides,
    }
    store.create_source(name, **args)


def simple_points(n: int, start: int = 0) -> list[Point]:
    """Points with payload doc_id d0..d2, lang en/fr and n; tiny vectors."""
    return [
        Point(
            uid(i + 1),
            [1.0, float(i), 0.0, 0.5],
            ENCODER.encode_document(f"word{i} shared", 2.0),
            {"doc_id": f"d{i % 3}", "path": f"/p/d{i % 3}.txt", "lang": "en" if i % 2 else "fr", "n": i},
        )
        for i in range(start, start + n)
    ]


@pytest.fixture
def corpus(store: QdrantStore) -> QdrantStore:
    """A "kb" source holding TEXTS, with fake 64-d embeddings and BM25 vectors."""
    avgdl = ENCODER.average_length(TEXTS)
    store.create_source("kb", description="facts", dimension=64, embedding_model="fake-hash-64", bm25_avgdl=avgdl)
    dense = EMBEDDINGS.embed_documents(TEXTS)
    sparse = ENCODER.encode_documents(TEXTS, avgdl)
    store.upsert(
        "kb",
        [
            Point(uid(i + 1), dense[i], sparse[i], {"i": i, "text": t, "lang": "en" if i % 2 else "fr"})
            for i, t in enumerate(TEXTS)
        ],
    )
    return store


# -- sources ---------------------------------------------------------------------------------


def test_store_is_a_vector_store(store: QdrantStore) -> None:
    assert isinstance(store, VectorStore)
    assert store.is_local


def test_create_get_and_list_sources(store: QdrantStore) -> None:
    new_source(store, "beta", description="second", bm25_avgdl=7.5)
    new_source(store, "alpha", description="first", dimension=8, embedding_model="m-8")
    store.upsert("beta", simple_points(3))

    alpha = store.get_source("alpha")
    assert (alpha.name, alpha.description, alpha.dimension, alpha.embedding_model) == ("alpha", "first", 8, "m-8")
    assert alpha.bm25_avgdl == 3.0
    assert datetime.fromisoformat(alpha.created_at).tzinfo is not None
    assert store.get_source("beta").bm25_avgdl == 7.5

    assert [s.name for s in store.list_sources()] == ["alpha", "beta"]
    assert [s.points for s in store.list_sources()] == [0, 0]
    assert [s.points for s in store.list_sources(with_counts=True)] == [0, 3]


def test_list_sources_leaves_out_foreign_collections(qdrant_store: QdrantStore) -> None:
    store = qdrant_store
    new_source(store, "docs")
    store._engine.client.create_collection(
        "plain", vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE)
    )
    assert [s.name for s in store.list_sources()] == ["docs"]
    with pytest.raises(SourceNotFoundError, match="not created by arag"):
        store.get_source("plain")


def test_set_description_keeps_the_rest(store: QdrantStore) -> None:
    new_source(store, "docs", description="old")
    before = store.get_source("docs")
    store.set_description("docs", "new words")
    after = store.get_source("docs")
    assert after.description == "new words"
    assert (after.dimension, after.embedding_model, after.bm25_avgdl, after.created_at) == (
        before.dimension,
        before.embedding_model,
        before.bm25_avgdl,
        before.created_at,
    )
    assert [s.name for s in store.list_sources()] == ["docs"]
    with pytest.raises(SourceNotFoundError):
        store.set_description("nope", "x")


def test_delete_source(store: QdrantStore) -> None:
    new_source(store, "keep")
    new_source(store, "drop")
    store.upsert("drop", simple_points(2))
    store.delete_source("drop")
    assert [s.name for s in store.list_sources()] == ["keep"]
    with pytest.raises(SourceNotFoundError):
        store.get_source("drop")
    with pytest.raises(SourceNotFoundError):
        store.delete_source("drop")


def test_metadata_and_points_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "qdrant"
    with QdrantStore(path) as first:
        new_source(first, "docs", description="before", bm25_avgdl=4.25)
        first.set_description("docs", "after")
        first.upsert("docs", simple_points(5))
        created = first.get_source("docs")
    with QdrantStore(path) as second:
        assert second.get_source("docs") == created
        assert created.description == "after"
        assert second.count("docs") == 5
        assert second.count("docs", {"lang": "en"}) == 2


@pytest.mark.parametrize("name", ["", "-dash-first", "_under", "has space", "dot.name", "a/b", "x" * 65, "é"])
def test_invalid_source_names_are_rejected(store: QdrantStore, name: str) -> None:
    with pytest.raises(ValueError, match=r"invalid source name.*letters, digits"):
        new_source(store, name)
    assert store.list_sources() == []


@pytest.mark.parametrize("name", ["a", "A-1_b", "x" * 64])
def test_valid_source_names(store: QdrantStore, name: str) -> None:
    new_source(store, name)
    assert store.get_source(name).name == name


def test_missing_source_message_lists_sources_and_says_to_ingest(store: QdrantStore) -> None:
    with pytest.raises(SourceNotFoundError, match="no sources yet") as empty:
        store.get_source("kb")
    assert "run `arag ingest PATH --source kb`" in str(empty.value)

    new_source(store, "beta")
    new_source(store, "alpha")
    with pytest.raises(SourceNotFoundError) as info:
        store.get_source("kb")
    message = str(info.value)
    assert "'kb' does not exist" in message
    assert "known sources: alpha, beta" in message
    assert "arag ingest" in message
    assert isinstance(info.value, StoreError)


@pytest.mark.parametrize("change", [{"dimension": 8}, {"embedding_model": "other-model"}])
def test_create_source_incompatible_raises(store: QdrantStore, change: dict[str, Any]) -> None:
    new_source(store, "docs")
    with pytest.raises(SourceExistsError, match=r"4-d vectors of 'fake-4'") as info:
        new_source(store, "docs", **change)
    assert "arag sources --delete docs" in str(info.value)


def test_create_existing_compatible_source_returns_it(store: QdrantStore) -> None:
    new_source(store, "docs", description="original", bm25_avgdl=3.0)
    store.upsert("docs", simple_points(2))
    again = store.create_source("docs", description="ignored", dimension=4, embedding_model="fake-4", bm25_avgdl=99.0)
    assert again == store.get_source("docs")
    assert (again.description, again.bm25_avgdl) == ("original", 3.0)
    assert store.count("docs") == 2


# -- points ----------------------------------------------------------------------------------


def test_upsert_in_batches(qdrant_store: QdrantStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store = qdrant_store
    new_source(store, "docs")
    sizes: list[int] = []
    real_upsert = store._engine.client.upsert

    def spy(collection_name: str, points: list[models.PointStruct], **kwargs: Any) -> Any:
        sizes.append(len(points))
        return real_upsert(collection_name, points=points, **kwargs)

    monkeypatch.setattr(store._engine.client, "upsert", spy)
    store.batch_size = 7
    store.upsert("docs", simple_points(25))
    assert sizes == [7, 7, 7, 4]
    assert store.count("docs") == 25
    store.upsert("docs", [])
    assert sizes == [7, 7, 7, 4]


def test_upsert_same_id_replaces(store: QdrantStore) -> None:
    new_source(store, "docs")
    store.upsert("docs", simple_points(3))
    replacement = Point(uid(1), [0.0, 1.0, 0.0, 0.0], SparseVector([], []), {"doc_id": "new"})
    store.upsert("docs", [replacement])
    assert store.count("docs") == 3
    payloads = {h.id: h.payload for h in store.scroll("docs")}
    assert payloads[uid(1)] == {"doc_id": "new"}


def test_count_with_and_without_filter(store: QdrantStore) -> None:
    new_source(store, "docs")
    assert store.count("docs") == 0
    store.upsert("docs", simple_points(10))  # n 0..9, doc_id d{n%3}, lang en for odd n
    assert store.count("docs") == 10
    assert store.count("docs", {"lang": "en"}) == 5
    assert store.count("docs", {"doc_id": ["d0", "d1"]}) == 7
    assert store.count("docs", {"doc_id": "d0", "lang": "fr"}) == 2  # n = 0, 6
    assert store.count("docs", {"n": [1, 2, 3]}) == 3
    assert store.count("docs", {"doc_id": "missing"}) == 0


def test_scroll_yields_every_point_with_payload(store: QdrantStore) -> None:
    new_source(store, "docs")
    store.upsert("docs", simple_points(4))
    hits = list(store.scroll("docs"))
    assert [h.id for h in hits] == [uid(1), uid(2), uid(3), uid(4)]
    assert hits[2].payload["n"] == 2
    assert [h.payload["n"] for h in store.scroll("docs", {"lang": "en"})] == [1, 3]


def test_existing_ids(store: QdrantStore) -> None:
    new_source(store, "docs")
    store.upsert("docs", simple_points(3))
    assert store.existing_ids("docs", [uid(1), uid(3), uid(99)]) == {uid(1), uid(3)}
    assert store.existing_ids("docs", []) == set()


def test_existing_ids_past_the_retrieve_batch(memory_store: QdrantStore) -> None:
    new_source(memory_store, "docs")
    memory_store.upsert("docs", simple_points(5))
    asked = [uid(n) for n in range(1, 2501)]  # three retrieve calls of up to 1000 ids
    assert memory_store.existing_ids("docs", asked) == {uid(n) for n in range(1, 6)}


def test_chunk_refs(store: QdrantStore) -> None:
    new_source(store, "docs")
    store.upsert("docs", simple_points(7))  # d0: n 0, 3, 6; d1: n 1, 4
    refs = store.chunk_refs("docs", ["d0", "d0", "missing"])
    assert sorted(refs, key=lambda r: r.id) == [ChunkRef(uid(n + 1), "d0", "/p/d0.txt") for n in (0, 3, 6)]
    assert {r.doc_id for r in store.chunk_refs("docs", ["d0", "d1"])} == {"d0", "d1"}
    assert len(store.chunk_refs("docs", ["d0", "d1"])) == 5
    assert store.chunk_refs("docs", []) == []


def test_chunk_refs_of_many_documents_scans_once(store: QdrantStore) -> None:
    new_source(store, "docs")
    points = [
        Point(
            uid(i + 1), [1.0, 0.0, 0.0, 0.0], ENCODER.encode_document("x", 1.0), {"doc_id": f"d{i // 2}", "path": "/p"}
        )
        for i in range(300)
    ]  # 150 documents of two chunks each
    store.upsert("docs", points)
    wanted = [f"d{i}" for i in range(0, 150, 2)]  # 75 documents: more than a match-any filter takes
    refs = store.chunk_refs("docs", [*wanted, "missing"])
    assert len(refs) == 150
    assert {r.doc_id for r in refs} == set(wanted)
    assert store.chunk_refs("docs", ["d3"]) == [ChunkRef(uid(7), "d3", "/p"), ChunkRef(uid(8), "d3", "/p")]


def test_delete_by_ids(store: QdrantStore) -> None:
    new_source(store, "docs")
    store.upsert("docs", simple_points(5))
    store.delete("docs", ids=[uid(1), uid(2), uid(99)])
    assert store.existing_ids("docs", [uid(n) for n in range(1, 6)]) == {uid(3), uid(4), uid(5)}
    store.delete("docs", ids=[])  # nothing to do
    assert store.count("docs") == 3


@pytest.mark.parametrize(
    ("where", "left"),
    [
        ({"lang": "en"}, [0, 2, 4, 6, 8]),
        ({"doc_id": ["d0", "d2"]}, [1, 4, 7]),
        ({"n": [0, 1, 2, 3]}, [4, 5, 6, 7, 8]),
        ({"doc_id": "d1", "lang": "fr"}, [0, 1, 2, 3, 5, 6, 7, 8]),  # n = 4 only
        (
            models.Filter(must=[models.FieldCondition(key="n", range=models.Range(gte=6))]),
            [0, 1, 2, 3, 4, 5],
        ),
    ],
)
def test_delete_by_filter(store: QdrantStore, where: Any, left: list[int]) -> None:
    new_source(store, "docs")
    store.upsert("docs", simple_points(9))
    store.delete("docs", where=where)
    assert sorted(h.payload["n"] for h in store.scroll("docs")) == left


def test_delete_needs_exactly_one_selector(store: QdrantStore) -> None:
    new_source(store, "docs")
    with pytest.raises(ValueError, match="ids or where"):
        store.delete("docs")
    with pytest.raises(ValueError, match="ids or where"):
        store.delete("docs", ids=[uid(1)], where={"n": 1})


def test_build_filter() -> None:
    assert build_filter(None) is None
    passthrough = models.Filter(must_not=[models.FieldCondition(key="n", match=models.MatchValue(value=1))])
    assert build_filter(passthrough) is passthrough
    built = build_filter({"doc_id": "d1", "metadata.lang": ["en", "fr"], "n": (1, 2), "ok": True})
    assert built == models.Filter(
        must=[
            models.FieldCondition(key="doc_id", match=models.MatchValue(value="d1")),
            models.FieldCondition(key="metadata.lang", match=models.MatchAny(any=["en", "fr"])),
            models.FieldCondition(key="n", match=models.MatchAny(any=[1, 2])),
            models.FieldCondition(key="ok", match=models.MatchValue(value=True)),
        ]
    )


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ({"n": ["1", 2]}, "only strings or only integers"),
        ({"n": []}, "only strings or only integers"),
        ({"n": [True, False]}, "only strings or only integers"),
        ({"n": [1.5]}, "only strings or only integers"),
        ({"meta": {"lang": "en"}}, "match a string, integer, boolean or a list"),
        ({"n": 1.5}, "match a string, integer, boolean or a list"),
        ({"n": None}, "match a string, integer, boolean or a list"),
    ],
)
def test_build_filter_rejects_bad_values(where: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        build_filter(where)
    assert "'n'" in str(info.value) or "'meta'" in str(info.value)


# -- search ----------------------------------------------------------------------------------


def cosine(a: list[float], b: list[float]) -> float:
    va, vb = np.asarray(a), np.asarray(b)
    return float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb)))


def test_dense_search_ranks_by_cosine(corpus: QdrantStore) -> None:
    query = EMBEDDINGS.embed_query("Mount Etna active volcano")
    hits = corpus.search("kb", dense=query, limit=4)
    assert len(hits) == 4
    assert all(isinstance(h, Hit) for h in hits)
    assert hits[0].payload["text"] == "Mount Etna is an active volcano in Sicily"
    documents = EMBEDDINGS.embed_documents(TEXTS)
    expected = sorted((cosine(query, d) for d in documents), reverse=True)[:4]
    assert [h.score for h in hits] == pytest.approx(expected, abs=1e-5)
    for hit in hits:
        assert hit.score == pytest.approx(cosine(query, documents[hit.payload["i"]]), abs=1e-5)


def test_sparse_search_ranks_by_bm25(corpus: QdrantStore) -> None:
    hits = corpus.search("kb", sparse=ENCODER.encode_query("Antarctic penguins"), limit=10)
    # Only documents sharing a term come back: 0 has both, 1 and 9 one each.
    assert hits[0].payload["i"] == 0
    assert {h.payload["i"] for h in hits} == {0, 1, 9}
    assert hits[0].score > hits[1].score >= hits[2].score > 0


def rrf(rankings: list[list[Hit]], k: int) -> dict[str, float]:
    """Qdrant's RRF: sum of 1 / (k + rank) with rank counted from 0 (the top hit adds 1/k)."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking):
            scores[hit.id] = scores.get(hit.id, 0.0) + 1.0 / (k + rank)
    return scores


def test_hybrid_rank_convention_is_zero_based(corpus: QdrantStore) -> None:
    # A query equal to a document puts it first in both rankings. Qdrant (server and local mode)
    # counts ranks from 0, so its fused score is 2/k, not the 2/(k + 1) of 1-based ranks.
    text = TEXTS[2]
    dense, sparse = EMBEDDINGS.embed_query(text), ENCODER.encode_query(text)
    assert corpus.search("kb", dense=dense, limit=1)[0].payload["i"] == 2
    assert corpus.search("kb", sparse=sparse, limit=1)[0].payload["i"] == 2
    for k in (1, 5, 60):
        top = corpus.search("kb", dense=dense, sparse=sparse, limit=1, rrf_k=k)[0]
        assert top.payload["i"] == 2
        assert top.score == pytest.approx(2 / k)


@pytest.mark.parametrize(("rrf_k", "prefetch"), [(60, None), (5, None), (2, 3), (10, 10)])
def test_hybrid_equals_rrf_of_the_two_rankings(corpus: QdrantStore, rrf_k: int, prefetch: int | None) -> None:
    query = "Antarctic penguins and the Moon"
    dense, sparse = EMBEDDINGS.embed_query(query), ENCODER.encode_query(query)
    limit = 4
    depth = max(limit, prefetch or limit)
    expected = rrf(
        [corpus.search("kb", dense=dense, limit=depth), corpus.search("kb", sparse=sparse, limit=depth)], rrf_k
    )
    hits = corpus.search("kb", dense=dense, sparse=sparse, limit=limit, prefetch_limit=prefetch, rrf_k=rrf_k)

    assert len(hits) == min(limit, len(expected))
    for hit in hits:
        assert hit.score == pytest.approx(expected[hit.id], rel=1e-6)  # Edge scores are float32
        assert "text" in hit.payload
    assert [h.score for h in hits] == pytest.approx(sorted(expected.values(), reverse=True)[:limit], rel=1e-6)


@pytest.mark.parametrize("mode", ["dense", "sparse", "hybrid"])
def test_filter_applies_in_every_mode(corpus: QdrantStore, mode: str) -> None:
    query = "Antarctic penguins volcano Moon Earth"
    dense = EMBEDDINGS.embed_query(query) if mode != "sparse" else None
    sparse = ENCODER.encode_query(query) if mode != "dense" else None
    unfiltered = corpus.search("kb", dense=dense, sparse=sparse, limit=10)
    assert {h.payload["lang"] for h in unfiltered} == {"en", "fr"}

    hits = corpus.search("kb", dense=dense, sparse=sparse, limit=10, where={"lang": "en"})
    assert hits
    assert {h.payload["lang"] for h in hits} == {"en"}
    if mode != "hybrid":
        assert [h.id for h in hits] == [h.id for h in unfiltered if h.payload["lang"] == "en"]
    else:
        # The filter is applied inside both prefetches, so the fusion sees filtered rankings.
        expected = rrf(
            [
                corpus.search("kb", dense=dense, limit=10, where={"lang": "en"}),
                corpus.search("kb", sparse=sparse, limit=10, where={"lang": "en"}),
            ],
            60,
        )
        assert {h.id: h.score for h in hits} == pytest.approx(expected)


def test_query_without_terms(corpus: QdrantStore) -> None:
    empty = ENCODER.encode_query("the and of is")
    assert len(empty) == 0
    assert corpus.search("kb", sparse=empty) == []
    dense = EMBEDDINGS.embed_query("volcano")
    hybrid = corpus.search("kb", dense=dense, sparse=empty, limit=3)
    assert hybrid == corpus.search("kb", dense=dense, limit=3)  # cosine scores, not RRF


def test_search_needs_a_vector(corpus: QdrantStore) -> None:
    with pytest.raises(ValueError, match="dense vector, a sparse vector, or both"):
        corpus.search("kb")


def test_search_limit(corpus: QdrantStore) -> None:
    dense = EMBEDDINGS.embed_query("anything at all")
    assert len(corpus.search("kb", dense=dense, limit=3)) == 3
    assert len(corpus.search("kb", dense=dense, limit=50)) == len(TEXTS)


@pytest.mark.parametrize("mode", ["dense", "sparse", "hybrid"])
def test_equal_scores_are_ordered_by_id(store: QdrantStore, mode: str) -> None:
    # Twelve copies of one chunk, stored in reverse id order: every engine returns them by id.
    new_source(store, "docs")
    twin = ENCODER.encode_document("twin", 1.0)
    store.upsert("docs", [Point(uid(n), [1.0, 0.5, 0.0, 0.0], twin, {"n": n}) for n in range(12, 0, -1)])
    dense = [1.0, 0.5, 0.0, 0.0] if mode != "sparse" else None
    sparse = ENCODER.encode_query("twin") if mode != "dense" else None
    hits = store.search("docs", dense=dense, sparse=sparse, limit=2, rrf_k=5)
    assert [h.id for h in hits] == [uid(1), uid(2)]
    assert [h.payload["n"] for h in hits] == [1, 2]


def test_rrf_counts_ranks_from_zero_and_orders_ties_by_id() -> None:
    fused = _fusion.rrf([["x", "y", "z"], ["z", "y", "w"]], 2)
    assert fused == [("z", 1 / 2 + 1 / 4), ("y", 2 / 3), ("x", 1 / 2), ("w", 1 / 4)]
    # All three tie at 1 (c: 1/2 + 1/2): by id, whatever the rankings' order.
    assert _fusion.rrf([["b", "c"], ["a", "c"]], 1) == [("a", 1.0), ("b", 1.0), ("c", 1.0)]
    assert _fusion.rrf([], 60) == []
    with pytest.raises(ValueError, match="RRF constant k must be >= 1"):
        _fusion.rrf([["x"]], 0)


def test_rrf_does_not_depend_on_the_order_of_the_rankings() -> None:
    rankings = [[f"c{(i * j) % 23}" for i in range(15)] for j in range(1, 8)]
    fused = _fusion.rrf(rankings, 3)
    assert all(_fusion.rrf(list(order), 3) == fused for order in itertools.permutations(rankings))


def test_stable_top_orders_ties_by_id_before_the_cut() -> None:
    points = [("d", 1.0), ("b", 2.0), ("c", 1.0), ("a", 1.0)]
    assert _fusion.stable_top(points, 3) == [("b", 2.0), ("a", 1.0), ("c", 1.0)]
    assert sorted(points, key=lambda p: _fusion.tie_order(*p)) == _fusion.stable_top(points, 4)


# -- opening ---------------------------------------------------------------------------------

LOCK_SCRIPT = textwrap.dedent(
    """
    import sys
    from tools.store import QdrantStore, StoreError
    try:
        QdrantStore(sys.argv[1]).close()
    except StoreError as exc:
        print(type(exc).__name__)
        print(exc)
    else:
        print("opened")
    """
)


def open_in_other_process(path: Path) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", LOCK_SCRIPT, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout.strip().splitlines()


def test_second_process_gets_store_locked_error(tmp_path: Path) -> None:
    path = tmp_path / "qdrant"
    with QdrantStore(path) as held:
        new_source(held, "docs")
        name, message = open_in_other_process(path)
    assert name == StoreLockedError.__name__
    assert "open in another process" in message
    assert "Qdrant server" in message
    assert "ARAG_QDRANT_URL" in message
    # Once released, the store opens again.
    assert open_in_other_process(path) == ["opened"]


def test_path_that_is_a_file_raises_store_error(tmp_path: Path) -> None:
    path = tmp_path / "store.txt"
    path.write_text("not a folder")
    with pytest.raises(StoreError, match="is a file; give a folder"):
        QdrantStore(path)


def test_missing_folder_is_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b"
    with QdrantStore(path) as created:
        assert created.list_sources() == []
    assert path.is_dir()


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.count("ghost"),
        lambda s: s.search("ghost", sparse=SparseVector([1], [1.0])),
        lambda s: s.existing_ids("ghost", ["00000000-0000-0000-0000-000000000001"]),
        lambda s: list(s.scroll("ghost")),
        lambda s: s.delete("ghost", where={"doc_id": "x"}),
        lambda s: s.delete("ghost", ids=[uid(1)]),
        lambda s: s.upsert("ghost", simple_points(1)),
        lambda s: s.chunk_refs("ghost", ["d1"]),
        lambda s: s.chunk_refs("ghost", [f"d{i}" for i in range(100)]),
        lambda s: list(s.points("ghost")),
        lambda s: s.search("ghost", dense=[1.0, 0.0, 0.0, 0.0], sparse=SparseVector([1], [1.0])),
        lambda s: s.refresh_index("ghost"),
        # Calls with nothing to do still check the source, on every backend.
        lambda s: s.upsert("ghost", []),
        lambda s: s.existing_ids("ghost", []),
        lambda s: s.chunk_refs("ghost", []),
        lambda s: s.delete("ghost", ids=[]),
        lambda s: s.search("ghost", sparse=SparseVector([], [])),
    ],
)
def test_operations_on_a_missing_source_name_it(store: QdrantStore, call: Any) -> None:
    store.create_source("real", description="", dimension=4, embedding_model="m", bm25_avgdl=1.0)
    with pytest.raises(SourceNotFoundError, match=r"source 'ghost' does not exist \(known sources: real\)"):
        call(store)
