"""The Retriever: modes, filters, several sources, whole documents, LangChain, model checks."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from langchain_core.documents import Document as LangChainDocument

from agents.testing import FakeEmbeddings
from tools.embeddings import LocalEmbeddings
from tools.ingest import Chunker, Ingestor
from tools.ingest.loaders import Document
from tools.retrieval import MODES, RetrievedChunk, Retriever, fuse_rrf
from tools.store import QdrantStore

ANIMALS = [
    Document("penguin", "Emperor penguins breed during the Antarctic winter on sea ice.", "Penguins", "/kb/penguin.md"),
    Document("owl", "Snowy owls hunt lemmings on the Arctic tundra.", "Owls", "/kb/owl.md"),
    Document("whale", "Blue whales eat krill and are the largest animals alive.", "Whales", "/kb/whale.md"),
]
GEOLOGY = [
    Document("etna", "Mount Etna is an active volcano on the island of Sicily.", "Etna", "/kb/etna.md"),
    Document("glacier", "Glaciers carve deep valleys as they move downhill.", "Glaciers", "/kb/glacier.md"),
    Document("tides", "Tides are caused by the gravity of the Moon and the Sun.", "Tides", "/kb/tides.md"),
]
OBVIOUS = [
    ("emperor penguins breed Antarctic", "penguin"),
    ("active volcano Etna Sicily", "etna"),
    ("blue whales krill", "whale"),
    ("tides gravity Moon", "tides"),
]


def with_lang(documents: list[Document], lang: str) -> list[Document]:
    return [Document(d.doc_id, d.text, d.title, d.path, {"lang": lang, "topic": d.doc_id}) for d in documents]


@pytest.fixture
def kb(memory_store: QdrantStore, fake_embeddings: FakeEmbeddings) -> Retriever:
    """One source "kb" with all six documents (animals tagged en, geology fr)."""
    documents = with_lang(ANIMALS, "en") + with_lang(GEOLOGY, "fr")
    report = Ingestor(memory_store, fake_embeddings).ingest_documents(documents, "kb", description="facts")
    assert report.added == 6
    return Retriever(store=memory_store, embeddings=fake_embeddings)


@pytest.fixture
def two_sources(memory_store: QdrantStore, fake_embeddings: FakeEmbeddings) -> Retriever:
    ingestor = Ingestor(memory_store, fake_embeddings)
    ingestor.ingest_documents(ANIMALS, "animals")
    ingestor.ingest_documents(GEOLOGY, "geology")
    return Retriever(store=memory_store, embeddings=fake_embeddings)


# -- modes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_modes_return_chunks_with_provenance(kb: Retriever, mode: str) -> None:
    chunks = kb.search("emperor penguins breed Antarctic", mode=mode, k=3)  # type: ignore[arg-type]
    assert 1 <= len(chunks) <= 3
    assert all(isinstance(c, RetrievedChunk) for c in chunks)
    top = chunks[0]
    assert top.doc_id == "penguin"
    assert top.source == "kb"
    assert top.title == "Penguins"
    assert top.text == ANIMALS[0].text
    assert top.path == "/kb/penguin.md"
    assert top.chunk_index == 0
    assert top.metadata == {"lang": "en", "topic": "penguin"}
    assert str(uuid.UUID(top.id)) == top.id
    assert kb.store.existing_ids("kb", [top.id]) == {top.id}
    assert top.score > 0
    assert [c.score for c in chunks] == sorted((c.score for c in chunks), reverse=True)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("query", "expected"), OBVIOUS)
def test_obvious_query_finds_its_document_first(kb: Retriever, mode: str, query: str, expected: str) -> None:
    assert kb.search(query, mode=mode, k=2)[0].doc_id == expected  # type: ignore[arg-type]


def test_mode_and_k_default_to_the_fields(kb: Retriever) -> None:
    retriever = kb.model_copy(update={"mode": "sparse", "k": 2})
    chunks = retriever.search("Antarctic penguins whales")
    assert len(chunks) == 2
    # BM25 scores, not reciprocal ranks (which are at most 2/rrf_k).
    assert chunks[0].score == pytest.approx(kb.search("Antarctic penguins whales", mode="sparse")[0].score)
    assert chunks[0].score > 2 / kb.rrf_k


def test_unknown_mode_and_bad_k_raise(kb: Retriever) -> None:
    with pytest.raises(ValueError, match="unknown retrieval mode 'fuzzy'; use one of dense, sparse, hybrid"):
        kb.search("penguins", mode="fuzzy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="k must be >= 1, got 0"):
        kb.search("penguins", k=0)


def test_no_sources_raises_lookup_error(memory_store: QdrantStore, fake_embeddings: FakeEmbeddings) -> None:
    retriever = Retriever(store=memory_store, embeddings=fake_embeddings)
    with pytest.raises(LookupError, match=r"no sources yet; run `arag ingest"):
        retriever.search("anything")


def test_where_filters(kb: Retriever) -> None:
    # User metadata sits under "metadata" in the payload.
    assert kb.search("emperor penguins volcano", where={"lang": "fr"}) == []
    chunks = kb.search("emperor penguins volcano", where={"metadata.lang": "fr"})
    assert chunks
    assert {c.metadata["lang"] for c in chunks} == {"fr"}
    assert chunks[0].doc_id == "etna"
    only = kb.model_copy(update={"where": {"doc_id": ["owl", "whale"]}})
    assert {c.doc_id for c in only.search("emperor penguins breed")} <= {"owl", "whale"}
    # An explicit where replaces the field's.
    assert {c.doc_id for c in only.search("penguins", where={"doc_id": "penguin"})} == {"penguin"}


# -- several sources -------------------------------------------------------------------------


def chunk(cid: str, source: str = "s", score: float = 0.0) -> RetrievedChunk:
    return RetrievedChunk(id=cid, score=score, source=source, doc_id=cid, title="", text=cid)


def test_fuse_rrf_by_hand() -> None:
    first = [chunk("x", "a", 9.0), chunk("y", "a", 8.0), chunk("z", "a", 7.0)]
    second = [chunk("y", "b", 0.5), chunk("w", "b", 0.4)]
    fused = fuse_rrf([first, second], k=5)
    # 0-based ranks, as Qdrant fuses: x 1/5; y 1/6 + 1/5; z 1/7; w 1/6.
    assert [c.id for c in fused] == ["y", "x", "w", "z"]
    assert [c.score for c in fused] == pytest.approx([1 / 6 + 1 / 5, 1 / 5, 1 / 6, 1 / 7])
    assert fused[0].source == "a"  # a duplicate keeps its first occurrence, with the fused score
    assert fuse_rrf([], k=5) == []
    assert [c.score for c in fuse_rrf([first], k=60)] == pytest.approx([1 / 60, 1 / 61, 1 / 62])
    with pytest.raises(ValueError, match="k must be >= 1"):
        fuse_rrf([first], k=0)


@pytest.mark.parametrize("mode", MODES)
def test_search_across_sources_fuses_by_rrf(two_sources: Retriever, mode: str) -> None:
    query = "emperor penguins volcano Etna"
    fused = two_sources.search(query, mode=mode, k=4)  # type: ignore[arg-type]
    per_source = [two_sources.search(query, mode=mode, k=4, sources=[s]) for s in ("animals", "geology")]  # type: ignore[arg-type]
    assert fused == fuse_rrf(per_source, two_sources.rrf_k)[:4]
    assert {c.source for c in fused} == {"animals", "geology"}
    assert {c.doc_id for c in fused[:2]} == {"penguin", "etna"}
    assert len({c.id for c in fused}) == len(fused)


def test_sources_restrict_the_search(two_sources: Retriever) -> None:
    query = "Antarctic penguins and the island volcano"
    assert {c.source for c in two_sources.search(query, sources=["geology"])} == {"geology"}
    assert two_sources.search(query, sources=["geology"])[0].doc_id == "etna"
    restricted = two_sources.model_copy(update={"sources": ["animals"]})
    assert {c.source for c in restricted.search(query)} == {"animals"}
    assert {c.source for c in restricted.search(query, sources=["geology"])} == {"geology"}


# -- documents -------------------------------------------------------------------------------

LONG = [
    Document(
        f"doc{n}",
        "\n\n".join(f"Paragraph {p} of document {n} talks about {topic} in some detail." for p in range(4)),
        f"Doc {n}",
        f"/kb/doc{n}.md",
    )
    for n, topic in enumerate(["penguins", "volcanoes", "glaciers", "tides", "owls"])
]


def test_search_documents_returns_the_best_chunk_of_each_document(
    memory_store: QdrantStore, fake_embeddings: FakeEmbeddings
) -> None:
    chunker = Chunker(chunk_size=80, chunk_overlap=0)
    report = Ingestor(memory_store, fake_embeddings, chunker=chunker).ingest_documents(LONG, "kb")
    assert report.chunks > len(LONG)
    retriever = Retriever(store=memory_store, embeddings=fake_embeddings)

    query = "penguins volcanoes paragraph"
    best = retriever.search_documents(query, k=3)
    assert len(best) == 3
    assert len({c.doc_id for c in best}) == 3
    # In the order of each document's best chunk in the plain chunk ranking.
    ranking = retriever.search(query, k=9)
    first_seen = list(dict.fromkeys(c.doc_id for c in ranking))[:3]
    assert [c.doc_id for c in best] == first_seen
    assert best == [next(c for c in ranking if c.doc_id == d) for d in first_seen]
    assert len(retriever.search_documents(query, k=10)) == len(LONG)
    assert retriever.search_documents(query, k=2, mode="sparse")[0].doc_id in {"doc0", "doc1"}


# -- LangChain -------------------------------------------------------------------------------


def test_invoke_returns_langchain_documents(kb: Retriever) -> None:
    retriever = kb.model_copy(update={"k": 2})
    documents = retriever.invoke("emperor penguins breed Antarctic")
    assert len(documents) == 2
    assert all(isinstance(d, LangChainDocument) for d in documents)
    top = documents[0]
    assert top.page_content == ANIMALS[0].text
    assert top.id == top.metadata["id"] == kb.search("emperor penguins breed Antarctic", k=1)[0].id
    assert top.metadata["score"] > 0
    assert top.metadata["source"] == "kb"
    assert top.metadata["doc_id"] == "penguin"
    assert top.metadata["title"] == "Penguins"
    assert top.metadata["lang"] == "en"  # the chunk's own metadata, flattened


def test_invoke_honours_the_where_field(kb: Retriever) -> None:
    retriever = Retriever(store=kb.store, embeddings=kb.embeddings, k=5, where={"metadata.lang": "fr"}, mode="dense")
    documents = retriever.invoke("emperor penguins breed Antarctic")
    assert 1 <= len(documents) <= 3
    assert {d.metadata["lang"] for d in documents} == {"fr"}
    assert retriever.batch(["tides", "volcano"])[1][0].metadata["lang"] == "fr"


# -- model identity --------------------------------------------------------------------------


class OtherEmbeddings(FakeEmbeddings):
    model_name = "other-model"


def test_source_of_another_model_raises(kb: Retriever) -> None:
    retriever = Retriever(store=kb.store, embeddings=OtherEmbeddings())
    with pytest.raises(ValueError, match="embedded with 'fake-hash-64' but the retriever uses 'other-model'"):
        retriever.search("penguins")
    with pytest.raises(ValueError, match="other-model"):
        retriever.search("penguins", mode="sparse")  # the check does not depend on the mode


@pytest.mark.model
def test_real_model_hybrid_finds_the_penguin_page(
    memory_store: QdrantStore, real_embeddings: LocalEmbeddings, corpus_dir: Path
) -> None:
    report = Ingestor(memory_store, real_embeddings).ingest_paths([corpus_dir], "kb")
    assert report.ok
    retriever = Retriever(store=memory_store, embeddings=real_embeddings, mode="hybrid", k=3)
    top = retriever.search("Where do emperor penguins breed?")[0]
    assert top.path.endswith("page.html")
    assert "Antarctic winter" in top.text
