"""Ingestion: files -> documents -> chunks with stable ids -> dense + BM25 vectors -> a source.

Chunk ids are uuid5 of (source, file path, document id, chunk text), so ingesting the same files
again adds nothing, and an edited file replaces exactly the chunks that changed. Nothing is lost
silently: every entry the walk leaves out (:mod:`tools.ingest._walk`) and every file that fails to
load is in the report with its reason, and one bad file never stops the others. ``sync=True``
makes a source equal to the given paths: chunks of files that are gone (deleted, renamed, now
ignored) are removed and reported.
"""

from __future__ import annotations

import bisect
import itertools
import re
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings
from langchain_text_splitters import RecursiveCharacterTextSplitter

from tools.embeddings import embed_array, embedding_dimension, model_identity
from tools.ingest._clean import path_text
from tools.ingest._isolated import LoaderProcess
from tools.ingest._walk import FoundFile, Skipped, Walk, WalkOptions, walk
from tools.ingest.loaders import SUPPORTED_SUFFIXES, Document, LoadError, load_file
from tools.sparse import Bm25Encoder
from tools.store import Point, SourceNotFoundError, VectorStore

__all__ = ["Chunk", "Chunker", "IngestError", "IngestReport", "Ingestor", "Progress", "chunk_id"]

_CHUNK_NAMESPACE = uuid.UUID("6f1d8a52-3c1e-4b7e-9a0e-2f6c0f6b9d41")

Progress = Callable[[str, int, int], None]
"""Progress callback: ``(stage, done, total)`` with stage ``"files"``, ``"bytes"`` (of the files
read), ``"chunks"`` or ``"index"``."""

_BIG_TEXT = 2_000_000
"""A file with more characters of text than this gets a warning with the work it will take."""


def chunk_id(source: str, path: str, doc_id: str, text: str, repeat: int = 0) -> str:
    """The stable id of a chunk: uuid5 of its source, document and text.

    A document is its file path plus its id (the same for a plain file; the row id for a JSONL or
    CSV row), so equal rows in two files stay two chunks and editing one never deletes the other.
    ``repeat`` numbers the second, third... chunk of one document with the same text, so a
    document keeps every repetition (and can be rebuilt whole).
    """
    suffix = f"\x1f{repeat}" if repeat else ""
    name = f"{source}\x1f{path}\x1f{doc_id}\x1f{text}{suffix}"
    if not name.isascii():  # lone surrogates cannot be UTF-8 encoded: escape them (valid text is unchanged)
        name = name.encode("utf-8", "surrogatepass").decode("utf-8", "backslashreplace")
    return str(uuid.uuid5(_CHUNK_NAMESPACE, name))


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a document, ready to embed."""

    id: str
    text: str
    """The chunk as stored and cited."""
    index_text: str
    """What is embedded and BM25-indexed: the title, then the chunk (titles carry topic words)."""
    payload: dict[str, Any]


@dataclass(frozen=True)
class Chunker:
    """Recursive character splitting with overlap (paragraphs, then lines, sentences, words).

    The defaults keep a chunk plus its title within all-MiniLM-L6-v2's 256 word pieces for typical
    English prose; tuned on SciFact's train queries.
    """

    chunk_size: int = 1000
    """Maximum characters per chunk."""
    chunk_overlap: int = 200
    """Characters shared by neighbouring chunks, so a sentence cut at a boundary is whole in one."""

    def __post_init__(self) -> None:
        if self.chunk_size < 50 or not 0 <= self.chunk_overlap < self.chunk_size:
            msg = (
                f"need chunk_size >= 50 and 0 <= chunk_overlap < chunk_size, "
                f"got {self.chunk_size} and {self.chunk_overlap}"
            )
            raise ValueError(msg)
        splitter = RecursiveCharacterTextSplitter(
            chunk_size=self.chunk_size,
            chunk_overlap=self.chunk_overlap,
            separators=["\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ", ""],
            keep_separator="end",
        )
        object.__setattr__(self, "_splitter", splitter)

    def split(self, document: Document, source: str) -> list[Chunk]:
        """Split one document into chunks carrying the full payload."""
        pieces = [p.strip() for p in self._pieces(document.text)]
        pieces = [p for p in pieces if p]
        starts = chunk_offsets(document.text, pieces)
        chunks = []
        seen: dict[str, int] = {}
        for index, (text, start) in enumerate(zip(pieces, starts, strict=True)):
            title = document.title
            index_text = f"{title}\n{text}" if title and not text.startswith(title) else text
            payload = {
                "source": source,
                "doc_id": document.doc_id,
                "title": title,
                "path": document.path,
                "chunk_index": index,
                "start": start,
                "text": text,
                "metadata": document.metadata,
            }
            repeat = seen.get(text, 0)
            seen[text] = repeat + 1
            ident = chunk_id(source, document.path, document.doc_id, text, repeat)
            chunks.append(Chunk(ident, text, index_text, payload))
        return chunks

    def _pieces(self, text: str) -> list[str]:
        """The splitter's pieces, except that a run of more than ``chunk_size`` characters without
        a space (CJK text, base64, one huge token) is cut into ``chunk_size`` slices directly:
        the splitter would first break it into single characters (30x the text in memory)."""
        splitter: RecursiveCharacterTextSplitter = getattr(self, "_splitter")  # noqa: B009 - set in __post_init__
        long_runs = re.compile(r"\S{%d,}" % (self.chunk_size + 1))  # noqa: UP031 - a regex quantifier
        pieces: list[str] = []
        at = 0
        for run in long_runs.finditer(text):
            pieces.extend(splitter.split_text(text[at : run.start()]))
            step = self.chunk_size - self.chunk_overlap
            word = run.group()
            pieces.extend(word[i : i + self.chunk_size] for i in range(0, len(word) - self.chunk_overlap, step))
            at = run.end()
        pieces.extend(splitter.split_text(text[at:]))
        return pieces


def chunk_offsets(document: str, pieces: Sequence[str], gap: int = 16, max_work: int = 200_000) -> list[int]:
    """Where each piece of ``document`` starts, or all ``-1`` when they cannot be placed (or the text
    repeats so much that placing them would take more than about ``max_work`` candidate matches).

    The splitter's pieces come in order, each starting inside the previous one (the overlap) or
    within ``gap`` characters of its end. In repetitive text a piece matches in many places, so
    the placements that keep every piece consistent with its neighbours are found in one forward
    pass over the candidate positions, then one path is read back from the end.
    """
    if not pieces:
        return []
    first = document.find(pieces[0])
    if first < 0:
        return [-1] * len(pieces)
    layers: list[dict[int, int]] = [{first: -1}]  # start -> start of the previous piece
    work = 0  # candidates looked at; very repetitive text gives up rather than stall ingestion
    for previous, piece in itertools.pairwise(pieces):
        before = sorted(layers[-1])
        lo, hi = before[0] + 1, before[-1] + len(previous) + gap
        layer: dict[int, int] = {}
        at = document.find(piece, lo, hi + len(piece))
        while at >= 0:
            j = bisect.bisect_left(before, at) - 1  # the latest previous start before this one
            if j >= 0 and at <= before[j] + len(previous) + gap:
                layer[at] = before[j]
            at = document.find(piece, at + 1, hi + len(piece))
            work += 1
        if not layer or work > max_work + 50 * len(pieces):
            return [-1] * len(pieces)
        layers.append(layer)
    end = len(document.rstrip())
    last = min(layers[-1], key=lambda x: (abs(x + len(pieces[-1]) - end), -x))
    starts = [last]
    for layer in reversed(layers[1:]):
        starts.append(layer[starts[-1]])
    return starts[::-1]


@dataclass
class IngestReport:
    """What an ingest did. Nothing is left out silently: ``skipped`` holds every entry the walk did
    not take, ``problems`` every file that failed to load, ``warnings`` every row or page skipped
    inside a file, ``removed_files`` every file whose chunks a sync removed."""

    source: str
    files: int = 0
    """Files found (regular files of a supported type under the caps)."""
    files_loaded: int = 0
    files_unchanged: int = 0
    """Files not read again because their size and modification time had not changed."""
    bytes: int = 0
    """Bytes of the files found."""
    documents: int = 0
    chunks: int = 0
    """Chunks the documents split into."""
    added: int = 0
    """New chunks embedded and stored."""
    unchanged: int = 0
    """Chunks already stored (same id), not embedded again."""
    removed: int = 0
    """Chunks removed: of re-ingested documents that are no longer in them, and (``sync``) of gone files."""
    removed_files: dict[str, int] = field(default_factory=dict)
    """``sync``: files no longer under the given paths, with how many chunks of each were removed."""
    gone_files: dict[str, int] = field(default_factory=dict)
    """Without ``sync``: files of the source under the given folders that are not there any more
    (or are now left out), with their chunk counts; ``sync`` would remove them."""
    indexed: bool = False
    """Whether the store rebuilt its vector index after this ingest."""
    skipped: list[Skipped] = field(default_factory=list)
    problems: list[LoadError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    fingerprints: dict[str, tuple[int, int]] = field(default_factory=dict)
    """(size, modification time) of every file now in the source, for ``unchanged`` next time."""
    sync: bool = False
    seconds: float = 0.0
    embed_seconds: float = 0.0
    """Time spent in the embedding model (or its cache)."""

    @property
    def ok(self) -> bool:
        """False when nothing could be ingested: files were found but none loaded (or nothing was
        found at all), unless a sync emptied the source on purpose."""
        if self.documents > 0 or self.files_unchanged > 0:
            return True
        return self.sync and not self.problems

    def skip_summary(self) -> str:
        """``"skipped: 2 hidden (use --hidden), 3 unsupported"``, or ``""``."""
        return Walk(skipped=self.skipped).summary()


class IngestError(RuntimeError):
    """Embedding or storing failed part-way. What was stored stays stored: running the same ingest
    again skips those chunks and continues. ``report`` says how far it got."""

    def __init__(self, report: IngestReport, cause: BaseException) -> None:
        super().__init__(
            f"ingest into {report.source!r} stopped after {report.added} of {report.chunks - report.unchanged} "
            f"new chunks: {type(cause).__name__}: {cause}; run the same ingest again to continue"
        )
        self.report = report


class Ingestor:
    """Walks, loads, splits, embeds and stores documents into a source.

    Embedding runs in the calling thread while the previous batch is written to the store by a
    worker thread, so storage time hides behind model time.

    Args:
        store: Where the chunks go.
        embeddings: Dense embedding model (wrap it in :class:`~tools.embeddings.CachedEmbeddings`
            to skip texts embedded before: a renamed file then costs no model time).
        encoder: BM25 encoder for the sparse vectors.
        chunker: How documents are split.
        batch_size: Chunks per embed-and-store step.
        progress: Called as files are loaded and chunks stored.
        walk_options: Which entries of a folder are taken (hidden, .gitignore, symlinks, size cap).
        isolate: Parse files in a child process (:class:`~tools.ingest._isolated.LoaderProcess`)
            with ``file_timeout_s`` and ``file_memory_mb``, so a file that would hang or exhaust
            a parser costs only itself.
        file_timeout_s: Longest one file may take to load.
        file_memory_mb: Address-space limit of the loader process (None: none).
        flush_chars: Characters of loaded text after which they are embedded and stored, before
            more files are loaded (what bounds memory on large folders).
    """

    def __init__(
        self,
        store: VectorStore,
        embeddings: Embeddings,
        *,
        encoder: Bm25Encoder | None = None,
        chunker: Chunker | None = None,
        batch_size: int = 256,
        progress: Progress | None = None,
        walk_options: WalkOptions | None = None,
        isolate: bool = True,
        file_timeout_s: float = 300.0,
        file_memory_mb: int | None = 4096,
        flush_chars: int = 32_000_000,
    ) -> None:
        self.store = store
        self.embeddings = embeddings
        self.encoder = encoder or Bm25Encoder()
        self.chunker = chunker or Chunker()
        self.batch_size = batch_size
        self.progress = progress or (lambda stage, done, total: None)
        self.walk_options = walk_options or WalkOptions(frozenset(SUPPORTED_SUFFIXES))
        self.isolate = isolate
        self.file_timeout_s = file_timeout_s
        self.file_memory_mb = file_memory_mb
        self.flush_chars = flush_chars
        self._loader_process: LoaderProcess | None = None

    def ingest_paths(
        self,
        paths: Iterable[str | Path],
        source: str,
        *,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        sync: bool = False,
        unchanged: Mapping[str, tuple[int, int]] | None = None,
    ) -> IngestReport:
        """Ingest files and folders (recursively) into ``source``.

        Args:
            paths: Files and folders.
            source: Source (collection) name; created on first ingest.
            description: What the source holds; set on creation, replaced when given later.
            metadata: User metadata stored with every chunk (under ``metadata``).
            sync: Make the source equal to ``paths``: remove the chunks of every file that is not
                among the files found and loaded now (deleted, renamed, now ignored or failing).
            unchanged: Fingerprints from an earlier report (:attr:`IngestReport.fingerprints`):
                files whose size and modification time still match are not read again.
        """
        started = time.perf_counter()
        paths = list(paths)
        found = walk(paths, self.walk_options)
        report = IngestReport(source, files=len(found.files), skipped=list(found.skipped), sync=sync)
        report.warnings.extend(found.warnings)
        report.bytes = sum(f.size for f in found.files)
        self._load_and_ingest(found.files, source, description, metadata, unchanged or {}, report, self._loader())
        # After the bulk write, not during it: indexing point by point would slow every batch.
        if report.documents:
            report.indexed = self.store.refresh_index(source, progress=self.progress)
        given = {str(Path(p).expanduser().absolute()) for p in paths}
        missing = [s.path for s in found.skipped if s.kind in ("missing", "broken") and s.path in given]
        if sync and missing:
            report.warnings.append(
                f"not synced: {', '.join(missing)} does not exist (a removed drive or mount?); nothing was removed"
            )
        elif sync:
            self._remove_gone(source, set(report.fingerprints), report)
        else:
            self._find_gone(source, found, report)
        report.seconds = time.perf_counter() - started
        return report

    def _loader(self) -> LoaderProcess | None:
        """The loader process, started on first use and kept for the next ingests (a watch)."""
        if not self.isolate:
            return None
        if self._loader_process is None:
            self._loader_process = LoaderProcess(
                timeout_s=self.file_timeout_s, memory_mb=self.file_memory_mb, max_bytes=self.walk_options.max_file_bytes
            )
            weakref.finalize(self, self._loader_process.close)
        return self._loader_process

    def close(self) -> None:
        """Stop the loader process (also done when the ingestor is garbage-collected)."""
        if self._loader_process is not None:
            self._loader_process.close()
            self._loader_process = None

    def __enter__(self) -> Ingestor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _load_and_ingest(
        self,
        files: Sequence[FoundFile],
        source: str,
        description: str | None,
        metadata: Mapping[str, Any] | None,
        unchanged: Mapping[str, tuple[int, int]],
        report: IngestReport,
        loader: LoaderProcess | None,
    ) -> None:
        """Load each file (in the loader process when isolated) and ingest what was loaded every
        ``flush_chars`` characters, so memory holds one batch of documents, not the whole folder."""
        pending: list[Document] = []
        pending_chars = 0
        read = 0
        self.progress("files", 0, len(files))
        self.progress("bytes", 0, report.bytes)
        for done, found in enumerate(files, start=1):
            key = path_text(found.path)
            if unchanged.get(key) == found.fingerprint:
                report.files_unchanged += 1
                report.fingerprints[key] = found.fingerprint
            else:
                loaded = self._load_one(found, metadata, report, loader)
                if loaded is not None:
                    report.fingerprints[key] = found.fingerprint
                    pending.extend(loaded)
                    pending_chars += sum(len(d.text) for d in loaded)
            read += found.size
            self.progress("files", done, len(files))
            self.progress("bytes", read, report.bytes)
            if pending_chars >= self.flush_chars:
                self._ingest(pending, source, description, report)
                pending, pending_chars = [], 0
        self._ingest(pending, source, description, report)

    def _load_one(
        self,
        found: FoundFile,
        metadata: Mapping[str, Any] | None,
        report: IngestReport,
        loader: LoaderProcess | None,
    ) -> list[Document] | None:
        identity = (found.device, found.inode) if found.inode else None
        try:
            if loader is not None:
                loaded = loader.load(found.path, identity)
            else:
                loaded = load_file(found.path, max_bytes=self.walk_options.max_file_bytes, identity=identity)
            documents = [_with_metadata(d, metadata) for d in loaded.documents]
        except LoadError as exc:
            report.problems.append(exc)
            return None
        except Exception as exc:  # one file's failure is that file's problem, never the batch's
            report.problems.append(LoadError(found.path, f"failed to load: {type(exc).__name__}: {exc}"))
            return None
        report.files_loaded += 1
        report.warnings.extend(loaded.warnings)
        chars = sum(len(d.text) for d in documents)
        if chars > _BIG_TEXT:
            step = max(self.chunker.chunk_size - self.chunker.chunk_overlap, 1)
            estimate = sum(max(1, -(-len(d.text) // step)) for d in documents)
            report.warnings.append(
                f"{path_text(found.path)}: {chars / 1e6:.1f} million characters of text, about {estimate:,} "
                "chunks to embed; the chunks bar shows the time left"
            )
        return documents

    def ingest_documents(
        self, documents: Sequence[Document], source: str, *, description: str | None = None
    ) -> IngestReport:
        """Ingest documents already in memory into ``source``."""
        started = time.perf_counter()
        report = IngestReport(source)
        self._ingest(documents, source, description, report)
        if report.documents:
            report.indexed = self.store.refresh_index(source, progress=self.progress)
        report.seconds = time.perf_counter() - started
        return report

    def _ingest(
        self, documents: Sequence[Document], source: str, description: str | None, report: IngestReport
    ) -> None:
        report.documents += len(documents)
        if not documents:
            return
        chunks = list({c.id: c for d in documents for c in self.chunker.split(d, source)}.values())
        report.chunks += len(chunks)
        avgdl, created = self._ensure_source(source, description, chunks)

        present = self.store.existing_ids(source, [c.id for c in chunks])
        new = sorted((c for c in chunks if c.id not in present), key=lambda c: len(c.index_text))
        report.unchanged += len(chunks) - len(new)
        try:
            self._embed_and_store(source, new, avgdl, report)
        except Exception as exc:
            raise IngestError(report, exc) from exc
        if not created:  # a source made by this ingest holds nothing older
            report.removed += self._remove_stale(source, documents, {c.id for c in chunks})

    def _ensure_source(self, source: str, description: str | None, chunks: Sequence[Chunk]) -> tuple[float, bool]:
        """The source's BM25 avgdl, and whether this call created the source."""
        try:
            existing = self.store.get_source(source)
        except SourceNotFoundError:
            created = self.store.create_source(
                source,
                description=description or "",
                dimension=embedding_dimension(self.embeddings),
                embedding_model=model_identity(self.embeddings),
                bm25_avgdl=self.encoder.average_length(c.index_text for c in chunks),
            )
            return created.bm25_avgdl, True
        identity = model_identity(self.embeddings)
        dimension = embedding_dimension(self.embeddings)
        if (existing.embedding_model, existing.dimension) != (identity, dimension):
            msg = (
                f"source {source!r} holds {existing.dimension}-d vectors of {existing.embedding_model!r}, "
                f"not {dimension}-d of {identity!r}; use the same embedding model or ingest into a new source"
            )
            raise ValueError(msg)
        if description is not None and description != existing.description:
            self.store.set_description(source, description)
        return existing.bm25_avgdl, False

    def _embed_and_store(self, source: str, chunks: Sequence[Chunk], avgdl: float, report: IngestReport) -> None:
        total = report.added + len(chunks)  # this batch's chunks after those of the batches before
        self.progress("chunks", report.added, total)
        in_flight: Future[None] | None = None
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="arag-upsert") as writer:
            for start in range(0, total, self.batch_size):
                batch = chunks[start : start + self.batch_size]
                texts = [c.index_text for c in batch]
                tick = time.perf_counter()
                dense = embed_array(self.embeddings, texts).tolist()
                report.embed_seconds += time.perf_counter() - tick
                sparse = self.encoder.encode_documents(texts, avgdl)
                points = [Point(c.id, dense[i], sparse[i], c.payload) for i, c in enumerate(batch)]
                # One write in flight: the model embeds the next batch while the store writes this
                # one, and a store error surfaces at the next batch rather than at the end.
                if in_flight is not None:
                    in_flight.result()
                in_flight = writer.submit(self._store_batch, source, points, report, total)
            if in_flight is not None:
                in_flight.result()

    def _store_batch(self, source: str, points: list[Point], report: IngestReport, total: int) -> None:
        self.store.upsert(source, points)
        report.added += len(points)
        self.progress("chunks", report.added, total)

    def _remove_stale(self, source: str, documents: Sequence[Document], current: set[str]) -> int:
        keys = {(d.doc_id, d.path) for d in documents}
        refs = self.store.chunk_refs(source, [d.doc_id for d in documents])
        stale = [r.id for r in refs if (r.doc_id, r.path) in keys and r.id not in current]
        self.store.delete(source, ids=stale)
        return len(stale)

    def _remove_gone(self, source: str, keep: set[str], report: IngestReport) -> None:
        """Sync: remove every chunk whose file is not in ``keep``."""
        try:
            refs = self.store.chunk_refs(source)
        except SourceNotFoundError:
            return  # nothing stored, nothing to remove
        gone = [r for r in refs if r.path not in keep]
        for ref in gone:
            report.removed_files[ref.path] = report.removed_files.get(ref.path, 0) + 1
        self.store.delete(source, ids=[r.id for r in gone])
        report.removed += len(gone)
        if gone:
            report.indexed = self.store.refresh_index(source, progress=self.progress) or report.indexed

    def _find_gone(self, source: str, found: Walk, report: IngestReport) -> None:
        """Without sync: the source's files under the walked folders that the walk did not find."""
        folders = [r for r in found.roots if r.is_dir()]
        if not folders:
            return
        try:
            refs = self.store.chunk_refs(source)
        except SourceNotFoundError:
            return
        here = {path_text(f.path) for f in found.files}
        for ref in refs:
            path = Path(ref.path)
            if ref.path not in here and any(path.is_relative_to(folder) for folder in folders):
                report.gone_files[ref.path] = report.gone_files.get(ref.path, 0) + 1


def _with_metadata(document: Document, metadata: Mapping[str, Any] | None) -> Document:
    if not metadata:
        return document
    return Document(document.doc_id, document.text, document.title, document.path, {**metadata, **document.metadata})
