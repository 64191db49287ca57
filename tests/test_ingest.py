"""Ingestion into a real local Qdrant: counts, payloads, idempotence, updates, failures."""

from __future__ import annotations

import itertools
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from agents.testing import FakeEmbeddings
from tests.conftest import make_pdf
from tools.ingest import Chunker, IngestError, Ingestor, chunk_id
from tools.ingest.loaders import Document, find_files, load_file
from tools.sparse import Bm25Encoder
from tools.store import Point, QdrantStore, SourceNotFoundError

_PAYLOAD_KEYS = {"source", "doc_id", "title", "path", "chunk_index", "start", "text", "metadata"}


def _payloads(store: QdrantStore, source: str, **where: Any) -> list[dict[str, Any]]:
    return [hit.payload for hit in store.scroll(source, where or None)]


def _three_paragraphs(second: str) -> str:
    return (
        "Alpha paragraph about glaciers carving valleys over thousands of years.\n\n"
        f"{second}\n\n"
        "Gamma paragraph about rivers depositing silt where they meet the sea."
    )


# -- a whole folder --------------------------------------------------------------------------


def test_ingest_corpus_counts_and_payloads(
    store: QdrantStore, fake_embeddings: FakeEmbeddings, corpus_dir: Path
) -> None:
    report = Ingestor(store, fake_embeddings).ingest_paths([corpus_dir], "kb", metadata={"team": "docs"})

    assert report.ok
    assert report.problems == []
    assert report.warnings == []
    # md, txt, html, csv, jsonl, pdf; the hidden file is skipped. jsonl has 2 rows, the pdf 2 pages.
    assert (report.files, report.files_loaded, report.documents) == (6, 6, 8)
    assert (report.chunks, report.added, report.unchanged, report.removed) == (8, 8, 0, 0)
    assert store.count("kb") == 8

    payloads = _payloads(store, "kb")
    assert all(set(p) == _PAYLOAD_KEYS for p in payloads)
    assert {p["source"] for p in payloads} == {"kb"}
    assert all(p["metadata"]["team"] == "docs" for p in payloads)
    assert not any("never ingested" in p["text"] for p in payloads)

    by_doc = {(p["doc_id"], p["metadata"].get("page")): p for p in payloads}
    tides = by_doc["d2", None]
    assert (tides["title"], tides["chunk_index"], tides["metadata"]) == ("Tides", 0, {"team": "docs"})
    assert tides["path"] == str((corpus_dir / "rows.jsonl").resolve())
    assert tides["text"] == "Tides are caused by the gravity of the Moon."
    notes = str((corpus_dir / "notes.txt").resolve())
    assert (by_doc[notes, None]["title"], by_doc[notes, None]["path"]) == ("notes", notes)
    pdf = str((corpus_dir / "paper.pdf").resolve())
    assert by_doc[pdf, 2]["text"] == "Qubits can be entangled."
    assert by_doc[pdf, 2]["metadata"] == {"team": "docs", "page": 2}
    assert by_doc["r1", None]["title"] == "Volcanoes"


def test_reingest_is_idempotent(store: QdrantStore, fake_embeddings: FakeEmbeddings, corpus_dir: Path) -> None:
    ingestor = Ingestor(store, fake_embeddings)
    first = ingestor.ingest_paths([corpus_dir], "kb")
    calls = list(fake_embeddings.calls)
    assert sum(calls) == first.added == 8

    again = ingestor.ingest_paths([corpus_dir], "kb")
    assert (again.chunks, again.added, again.unchanged, again.removed) == (8, 0, 8, 0)
    assert fake_embeddings.calls == calls  # nothing embedded the second time
    assert store.count("kb") == 8


def test_edited_file_replaces_exactly_its_changed_chunks(
    store: QdrantStore, fake_embeddings: FakeEmbeddings, tmp_path: Path
) -> None:
    root = tmp_path / "kb"
    root.mkdir()
    essay = root / "essay.txt"
    essay.write_text(_three_paragraphs("Beta paragraph about wind shaping sand dunes in the desert."))
    (root / "other.txt").write_text("An unrelated note that never changes.")
    ingestor = Ingestor(store, fake_embeddings, chunker=Chunker(chunk_size=100, chunk_overlap=0))
    first = ingestor.ingest_paths([root], "geo")
    assert (first.chunks, store.count("geo")) == (4, 4)

    essay.write_text(_three_paragraphs("Beta paragraph, revised: wind builds dunes that migrate downwind."))
    embedded = sum(fake_embeddings.calls)
    second = ingestor.ingest_paths([root], "geo")

    assert (second.added, second.unchanged, second.removed) == (1, 3, 1)
    assert sum(fake_embeddings.calls) == embedded + 1  # only the changed paragraph is embedded
    assert store.count("geo") == 4
    texts = sorted(p["text"] for p in _payloads(store, "geo", path=str(essay.resolve())))
    assert len(texts) == 3
    assert any("revised" in t for t in texts)
    assert not any("sand dunes" in t for t in texts)


def test_stale_cleanup_is_keyed_by_document_and_path(
    store: QdrantStore, fake_embeddings: FakeEmbeddings, tmp_path: Path
) -> None:
    # Two files reuse the row id "d1"; editing one must not delete the other's chunk.
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = tmp_path / "a" / "rows.jsonl"
    first.write_text(json.dumps({"_id": "d1", "text": "Alpha version of the row."}) + "\n")
    (tmp_path / "b" / "rows.jsonl").write_text(json.dumps({"_id": "d1", "text": "Beta copy of the row."}) + "\n")
    ingestor = Ingestor(store, fake_embeddings)
    ingestor.ingest_paths([tmp_path / "a", tmp_path / "b"], "rows")
    assert store.count("rows", {"doc_id": "d1"}) == 2

    first.write_text(json.dumps({"_id": "d1", "text": "Alpha version, edited."}) + "\n")
    report = ingestor.ingest_paths([first], "rows")

    assert (report.added, report.removed) == (1, 1)
    assert sorted(p["text"] for p in _payloads(store, "rows", doc_id="d1")) == [
        "Alpha version, edited.",
        "Beta copy of the row.",
    ]


# -- bad files -------------------------------------------------------------------------------


def test_bad_files_are_reported_and_the_rest_ingested(
    memory_store: QdrantStore, fake_embeddings: FakeEmbeddings, tmp_path: Path
) -> None:
    root = tmp_path / "mixed"
    root.mkdir()
    (root / "good.txt").write_text("Granite is an igneous rock.")
    (root / "broken.pdf").write_bytes(b"%PDF-1.4\n" + b"\x8f garbage \xfe" * 200)
    (root / "blob.txt").write_bytes(b"\x00\x01\x02binary\x00")
    make_pdf(root / "fine.pdf", ["Basalt is volcanic."])

    report = Ingestor(memory_store, fake_embeddings).ingest_paths([root], "rocks")

    assert report.ok
    assert (report.files, report.files_loaded, report.documents, report.added) == (4, 2, 2, 2)
    problems = {Path(p.path).name: p.reason for p in report.problems}
    assert set(problems) == {"broken.pdf", "blob.txt"}
    assert problems["broken.pdf"].startswith("corrupt PDF")
    assert "binary" in problems["blob.txt"]
    assert memory_store.count("rocks") == 2


def test_only_bad_files_store_nothing(
    memory_store: QdrantStore, fake_embeddings: FakeEmbeddings, tmp_path: Path
) -> None:
    root = tmp_path / "bad"
    root.mkdir()
    (root / "empty.md").write_text("   \n")
    (root / "fake.pdf").write_text("not a pdf")
    (root / "image.png").write_bytes(b"\x89PNG")

    report = Ingestor(memory_store, fake_embeddings).ingest_paths([root, tmp_path / "nowhere"], "void")

    assert not report.ok
    assert (report.files, report.files_loaded, report.documents, report.added) == (2, 0, 0, 0)
    assert {Path(p.path).name for p in report.problems} == {"empty.md", "fake.pdf"}  # failed to load
    assert {Path(s.path).name: s.kind for s in report.skipped} == {"image.png": "unsupported", "nowhere": "missing"}
    assert fake_embeddings.calls == []
    assert memory_store.list_sources() == []
    with pytest.raises(SourceNotFoundError):
        memory_store.get_source("void")


# -- chunks ----------------------------------------------------------------------------------


def test_chunk_ids_are_deterministic_uuid5() -> None:
    same = chunk_id("kb", "/a.jsonl", "doc-1", "Some text.")
    assert same == chunk_id("kb", "/a.jsonl", "doc-1", "Some text.")
    assert uuid.UUID(same).version == 5
    assert chunk_id("other", "/a.jsonl", "doc-1", "Some text.") != same
    assert chunk_id("kb", "/b.jsonl", "doc-1", "Some text.") != same
    assert chunk_id("kb", "/a.jsonl", "doc-2", "Some text.") != same
    assert chunk_id("kb", "/a.jsonl", "doc-1", "Other text.") != same


def test_same_document_in_two_sources_gets_two_ids(memory_store: QdrantStore, fake_embeddings: FakeEmbeddings) -> None:
    doc = Document("doc-1", "Shared text about comets.", "Comets", "/virtual/comets.txt")
    ingestor = Ingestor(memory_store, fake_embeddings)
    ingestor.ingest_documents([doc], "one")
    ingestor.ingest_documents([doc], "two")
    [one] = memory_store.scroll("one")
    [two] = memory_store.scroll("two")
    assert one.id == chunk_id("one", "/virtual/comets.txt", "doc-1", "Shared text about comets.")
    assert two.id == chunk_id("two", "/virtual/comets.txt", "doc-1", "Shared text about comets.")
    assert one.id != two.id


def test_equal_rows_in_two_files_survive_editing_one(
    memory_store: QdrantStore, fake_embeddings: FakeEmbeddings, tmp_path: Path
) -> None:
    row = '{"_id": "r1", "title": "Comets", "text": "Comets have icy nuclei."}\n'
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_text(row)
    second.write_text(row)
    ingestor = Ingestor(memory_store, fake_embeddings)
    ingestor.ingest_paths([first, second], "kb")
    assert memory_store.count("kb") == 2
    first.write_text(row.replace("icy", "dusty"))
    report = ingestor.ingest_paths([first], "kb")
    assert (report.added, report.removed) == (1, 1)
    texts = sorted(hit.payload["text"] for hit in memory_store.scroll("kb"))
    assert texts == ["Comets have dusty nuclei.", "Comets have icy nuclei."]


@pytest.mark.parametrize(("size", "overlap"), [(49, 0), (100, -1), (100, 100), (100, 150)])
def test_chunker_rejects_bad_arguments(size: int, overlap: int) -> None:
    with pytest.raises(ValueError, match=r"chunk_size >= 50 and 0 <= chunk_overlap < chunk_size") as caught:
        Chunker(chunk_size=size, chunk_overlap=overlap)
    assert f"got {size} and {overlap}" in str(caught.value)


def test_chunker_splits_long_text_with_overlap() -> None:
    words = [f"w{i:03d}" for i in range(300)]
    doc = Document("long", " ".join(words), "", "/virtual/long.txt")
    chunks = Chunker(chunk_size=120, chunk_overlap=40).split(doc, "kb")

    assert len(chunks) > 10
    assert all(len(c.text) <= 120 for c in chunks)
    assert [c.payload["chunk_index"] for c in chunks] == list(range(len(chunks)))
    for before, after in itertools.pairwise(chunks):
        assert before.text.split()[-1] in after.text.split()  # neighbours share words
    seen = {w for c in chunks for w in c.text.split()}
    assert seen == set(words)
    assert chunks[0].text.startswith("w000")
    assert chunks[-1].text.endswith("w299")
    assert len({c.id for c in chunks}) == len(chunks)


def test_title_is_indexed_but_not_stored_in_text() -> None:
    chunker = Chunker()
    [chunk] = chunker.split(Document("d", "Lava flows downhill.", "Volcanoes", "/v.txt", {"k": 1}), "kb")
    assert chunk.index_text == "Volcanoes\nLava flows downhill."
    assert chunk.text == chunk.payload["text"] == "Lava flows downhill."
    assert chunk.payload["title"] == "Volcanoes"
    assert chunk.payload["metadata"] == {"k": 1}

    [titled] = chunker.split(Document("d", "Volcanoes erupt.", "Volcanoes", "/v.txt"), "kb")
    assert titled.index_text == "Volcanoes erupt."  # already starts with the title: not repeated
    [untitled] = chunker.split(Document("d", "No title here.", "", "/v.txt"), "kb")
    assert untitled.index_text == "No title here."


# -- the source ------------------------------------------------------------------------------


def test_source_records_model_dimension_and_avgdl(
    memory_store: QdrantStore, fake_embeddings: FakeEmbeddings, corpus_dir: Path
) -> None:
    Ingestor(memory_store, fake_embeddings).ingest_paths([corpus_dir], "kb", description="Mixed test corpus")
    source = memory_store.get_source("kb")
    assert (source.dimension, source.embedding_model, source.description) == (64, "fake-hash-64", "Mixed test corpus")

    # avgdl is over what is indexed: each chunk with its title in front.
    documents = [d for f in find_files([corpus_dir])[0] for d in load_file(f).documents]
    index_texts = [c.index_text for d in documents for c in Chunker().split(d, "kb")]
    assert len(index_texts) == 8
    expected = Bm25Encoder().average_length(index_texts)
    assert expected != Bm25Encoder().average_length(d.text for d in documents)  # the titles count
    assert source.bm25_avgdl == pytest.approx(expected)
    assert source.bm25_avgdl > 1.0


def test_other_embedding_model_is_refused(
    memory_store: QdrantStore, fake_embeddings: FakeEmbeddings, corpus_dir: Path
) -> None:
    Ingestor(memory_store, fake_embeddings).ingest_paths([corpus_dir / "notes.txt"], "kb")

    class OtherModel(FakeEmbeddings):
        model_name = "other-model"

    other = OtherModel()
    with pytest.raises(ValueError, match=r"'kb' holds 64-d vectors of 'fake-hash-64', not 64-d of 'other-model'"):
        Ingestor(memory_store, other).ingest_paths([corpus_dir], "kb")
    assert other.calls == []

    class SameNameOtherSize(FakeEmbeddings):
        dimension = 32

    smaller = SameNameOtherSize()
    with pytest.raises(ValueError, match=r"not 32-d of 'fake-hash-64'"):
        Ingestor(memory_store, smaller).ingest_paths([corpus_dir], "kb")
    assert smaller.calls == []
    assert memory_store.count("kb") == 1


def test_later_description_replaces_the_old_one(memory_store: QdrantStore, fake_embeddings: FakeEmbeddings) -> None:
    ingestor = Ingestor(memory_store, fake_embeddings)
    docs = [Document("d", "Saturn has rings.", "Saturn", "/s.txt")]
    ingestor.ingest_documents(docs, "planets", description="Old words")
    ingestor.ingest_documents(docs, "planets")  # no description: kept
    assert memory_store.get_source("planets").description == "Old words"
    ingestor.ingest_documents(docs, "planets", description="Facts about the planets")
    assert memory_store.get_source("planets").description == "Facts about the planets"


# -- progress and failures -------------------------------------------------------------------


def test_progress_reports_files_and_chunks(
    memory_store: QdrantStore, fake_embeddings: FakeEmbeddings, corpus_dir: Path
) -> None:
    events: list[tuple[str, int, int]] = []
    ingestor = Ingestor(memory_store, fake_embeddings, batch_size=3, progress=lambda *e: events.append(e))
    report = ingestor.ingest_paths([corpus_dir], "kb")

    files = [e for e in events if e[0] == "files"]
    chunks = [e for e in events if e[0] == "chunks"]
    assert files == [("files", done, 6) for done in range(7)]
    assert chunks == [("chunks", 0, 8), ("chunks", 3, 8), ("chunks", 6, 8), ("chunks", 8, 8)]
    assert report.added == 8
    assert fake_embeddings.calls == [3, 3, 2]

    events.clear()
    ingestor.ingest_paths([corpus_dir], "kb")
    assert [e for e in events if e[0] == "chunks"] == [("chunks", 0, 0)]  # nothing new to store


def test_store_errors_surface(
    memory_store: QdrantStore, fake_embeddings: FakeEmbeddings, corpus_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[int] = []

    def failing_upsert(source: str, points: list[Point]) -> None:
        written.append(len(points))
        msg = "disk full"
        raise OSError(msg)

    monkeypatch.setattr(memory_store, "upsert", failing_upsert)
    ingestor = Ingestor(memory_store, fake_embeddings, batch_size=2)
    with pytest.raises(IngestError, match="stopped after 0 of 8 new chunks: OSError: disk full") as caught:
        ingestor.ingest_paths([corpus_dir], "kb")
    assert isinstance(caught.value.__cause__, OSError)
    # The failed first write stops the run at the next batch, not after embedding everything.
    assert written == [2]
    assert fake_embeddings.calls == [2, 2]
    assert memory_store.count("kb") == 0


def test_failed_embedding_keeps_what_was_stored_and_resumes(memory_store: QdrantStore, corpus_dir: Path) -> None:
    class FlakyEmbeddings(FakeEmbeddings):
        """Fails on its third call, as a remote endpoint might after its retries."""

        def embed_array(self, texts: list[str]) -> Any:
            if len(self.calls) == 2:
                self.calls.append(-1)
                msg = "503 Service Unavailable"
                raise ConnectionError(msg)
            return super().embed_array(texts)

    flaky = FlakyEmbeddings()
    with pytest.raises(IngestError, match=r"stopped after 4 of 8 new chunks.*run the same ingest again") as caught:
        Ingestor(memory_store, flaky, batch_size=2).ingest_paths([corpus_dir], "kb")
    assert caught.value.report.added == 4
    assert memory_store.count("kb") == 4

    again = Ingestor(memory_store, FakeEmbeddings(), batch_size=2).ingest_paths([corpus_dir], "kb")
    assert (again.unchanged, again.added, again.removed) == (4, 4, 0)
    assert memory_store.count("kb") == 8


@pytest.mark.model
def test_real_model_ingest_survives_reopening(real_embeddings: Any, corpus_dir: Path, tmp_path: Path) -> None:
    location = tmp_path / "qdrant-real"
    with QdrantStore(location) as store:
        report = Ingestor(store, real_embeddings).ingest_paths([corpus_dir], "kb")
        assert report.added == 8

    with QdrantStore(location) as reopened:
        source = reopened.get_source("kb")
        assert (source.dimension, reopened.count("kb")) == (384, 8)
        hits = reopened.search("kb", dense=real_embeddings.embed_query("How tall is the Eiffel Tower?"), limit=3)
    assert "Eiffel Tower" in hits[0].payload["text"]
    assert hits[0].payload["title"] == "notes"
    assert hits[0].score > hits[1].score
