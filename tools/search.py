"""Search: dense, sparse (BM25) or hybrid over one or more sources of a store, without LangChain's
runnable machinery (what ``arag search`` loads). :class:`tools.retrieval.Retriever` is the LangChain
``BaseRetriever`` over the same :class:`Searcher`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

from tools._fusion import rrf, tie_order
from tools.sparse import Bm25Encoder
from tools.vector_cache import model_identity

if TYPE_CHECKING:
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings

    from tools.store import FilterSpec, Hit, VectorStore
    from tools.vector_cache import CachedQuery

__all__ = [
    "DEFAULT_RRF_K",
    "MODES",
    "Mode",
    "RetrievedChunk",
    "Searcher",
    "StoredDocument",
    "fuse_rrf",
    "join_chunks",
    "mismatch_message",
]

Mode = Literal["dense", "sparse", "hybrid"]
MODES: tuple[Mode, ...] = get_args(Mode)

DEFAULT_RRF_K = 10
"""Rank constant of reciprocal rank fusion. Chosen on the SciFact *train* queries, where k = 2, 5,
10, 30, 60 gave hybrid nDCG@10 0.7272, 0.7273, 0.7285, 0.7244, 0.7204: the textbook 60 lets weak
ranks count too much (see evals/README.md)."""


@dataclass(frozen=True, slots=True)
class RetrievedChunk:
    """A retrieved chunk with its provenance."""

    id: str
    score: float
    """Score in the mode's scale: cosine (dense), BM25 (sparse), or fused reciprocal rank."""
    source: str
    doc_id: str
    title: str
    text: str
    path: str = ""
    chunk_index: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_hit(cls, hit: Hit, source: str) -> RetrievedChunk:
        """Build from a store hit."""
        p = hit.payload
        return cls(
            id=hit.id,
            score=hit.score,
            source=str(p.get("source", source)),
            doc_id=str(p.get("doc_id", "")),
            title=str(p.get("title", "")),
            text=str(p.get("text", "")),
            path=str(p.get("path", "")),
            chunk_index=int(p.get("chunk_index", 0)),
            metadata=dict(p.get("metadata") or {}),
        )

    def to_document(self) -> Document:
        """As a LangChain ``Document`` (id and score in metadata)."""
        from langchain_core.documents import Document

        meta = {
            "id": self.id,
            "score": self.score,
            "source": self.source,
            "doc_id": self.doc_id,
            "title": self.title,
            "path": self.path,
            "chunk_index": self.chunk_index,
            **self.metadata,
        }
        return Document(page_content=self.text, metadata=meta, id=self.id)


def fuse_rrf(rankings: Sequence[Sequence[RetrievedChunk]], k: int = DEFAULT_RRF_K) -> list[RetrievedChunk]:
    """Reciprocal rank fusion of several rankings, deduplicated by chunk id; scores become RRF scores.

    Ranks count from 0, as in Qdrant's own fusion: the top hit of a ranking adds ``1/k``. The
    same ``k`` therefore means the same fusion inside one source and across sources.
    """
    fused = rrf(([chunk.id for chunk in ranking] for ranking in rankings), k)  # exact; ties by id
    first: dict[str, RetrievedChunk] = {}
    for ranking in rankings:
        for chunk in ranking:
            first.setdefault(chunk.id, chunk)
    return [replace(first[cid], score=score) for cid, score in fused]


@dataclass
class Searcher:
    """Searches sources in a store: ``dense``, ``sparse`` (BM25) or ``hybrid`` (both, fused by RRF).

    With several sources, each is searched and the rankings are fused by RRF, so scores of
    different collections never have to be compared. A source embedded with another model (or
    another backend of the bundled one) is refused with the way out, never searched with vectors
    it cannot compare with.
    """

    store: VectorStore
    embeddings: Embeddings | CachedQuery
    encoder: Bm25Encoder = field(default_factory=Bm25Encoder)
    sources: list[str] | None = None
    """Sources to search; ``None`` searches all."""
    mode: Mode = "hybrid"
    k: int = 10
    """Chunks returned."""
    prefetch_limit: int = 100
    """Candidates each of dense and sparse ranks before hybrid fusion."""
    rrf_k: int = DEFAULT_RRF_K
    where: dict[str, Any] | None = None
    """Payload filter applied to every search (see :data:`tools.store.FilterSpec`)."""
    checked: set[str] = field(default_factory=set)
    """Sources whose embedding model was checked against :attr:`embeddings`."""

    def search(
        self,
        query: str,
        *,
        k: int | None = None,
        mode: Mode | None = None,
        sources: Sequence[str] | None = None,
        where: FilterSpec | None = None,
    ) -> list[RetrievedChunk]:
        """The ``k`` best chunks for ``query``, best first."""
        k = self.k if k is None else k
        mode = mode or self.mode
        if mode not in MODES:
            msg = f"unknown retrieval mode {mode!r}; use one of {', '.join(MODES)}"
            raise ValueError(msg)
        if k < 1:
            msg = f"k must be >= 1, got {k}"
            raise ValueError(msg)
        names = list(sources or self.sources or [s.name for s in self.store.list_sources()])
        if not names:
            msg = "the store has no sources yet; run `arag ingest PATH --source NAME` first"
            raise LookupError(msg)
        self._check_models(names)
        dense = self.embeddings.embed_query(query) if mode in ("dense", "hybrid") else None
        sparse = self.encoder.encode_query(query) if mode in ("sparse", "hybrid") else None
        filter_spec = where if where is not None else self.where
        rankings = []
        for name in names:
            hits = self.store.search(
                name,
                dense=dense,
                sparse=sparse,
                limit=k,
                where=filter_spec,
                prefetch_limit=max(self.prefetch_limit, k),
                rrf_k=self.rrf_k,
            )
            # Engines may return equal scores in any order (Edge searches segments in parallel):
            # break ties by id, so a question gets the same ranking every run.
            hits = sorted(hits, key=lambda h: tie_order(h.id, h.score))
            rankings.append([RetrievedChunk.from_hit(h, name) for h in hits])
        if len(rankings) == 1:
            return rankings[0]
        return fuse_rrf(rankings, self.rrf_k)[:k]

    def search_documents(
        self, query: str, *, k: int = 10, chunks_per_document: int = 3, **kwargs: Any
    ) -> list[RetrievedChunk]:
        """The best chunk of each of the ``k`` best documents (a document ranks by its best chunk).

        Fetches ``k * chunks_per_document`` chunks; fewer than ``k`` documents come back when the
        sources hold fewer, or when the best chunks crowd into fewer documents.
        """
        seen: set[tuple[str, str]] = set()
        best: list[RetrievedChunk] = []
        for chunk in self.search(query, k=k * chunks_per_document, **kwargs):
            key = (chunk.source, chunk.doc_id)
            if key not in seen:
                seen.add(key)
                best.append(chunk)
                if len(best) == k:
                    break
        return best

    def document(self, doc_id: str, *, source: str | None = None) -> StoredDocument:
        """A whole stored document, rebuilt from its chunks in order (overlaps removed).

        Raises:
            LookupError: No source holds a document with this id.
        """
        names = [source] if source else list(self.sources or [s.name for s in self.store.list_sources()])
        for name in names:
            hits = list(self.store.scroll(name, {"doc_id": doc_id}))
            if hits:
                hits.sort(key=lambda h: int(h.payload.get("chunk_index", 0)))
                first = hits[0].payload
                return StoredDocument(
                    source=name,
                    doc_id=doc_id,
                    title=str(first.get("title") or ""),
                    path=str(first.get("path") or ""),
                    text=_rebuild([h.payload for h in hits]),
                    chunks=len(hits),
                )
        msg = (
            f"no document {doc_id!r} in source(s) {', '.join(names) or '(none)'}; "
            "use a doc id from the search results (doc=...)"
        )
        raise LookupError(msg)

    def _check_models(self, names: Sequence[str]) -> None:
        identity = model_identity(self.embeddings)
        for name in names:
            if name in self.checked:
                continue
            source = self.store.get_source(name)
            if source.embedding_model and source.embedding_model != identity:
                raise ValueError(mismatch_message(name, source.embedding_model, identity))
            self.checked.add(name)


def mismatch_message(source: str, stored: str, identity: str) -> str:
    """Why a source cannot be searched with ``identity``'s vectors, and the two ways out."""
    stored_model, _, stored_backend = stored.partition("@")
    model, _, backend = identity.partition("@")
    if stored_model == model:  # the same model run by another backend: close vectors, never mixed
        return (
            f"source {source!r} was embedded with the {stored_backend or 'torch'} backend of {model}, "
            f"but the {backend or 'torch'} backend is configured; keep the old one "
            f"(ARAG_EMBEDDING_BACKEND={stored_backend or 'torch'}) or re-embed the source with the new one "
            f"(arag sources --delete {source}, then arag ingest it again)"
        )
    return (
        f"source {source!r} was embedded with {stored!r} but the retriever uses {identity!r}; "
        "set the same embedding model (ARAG_EMBEDDING_MODEL) or re-embed the source"
    )


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """A document as the store holds it: its chunks joined back together."""

    source: str
    doc_id: str
    title: str
    path: str
    text: str
    chunks: int

    @property
    def chars(self) -> int:
        return len(self.text)


def _rebuild(payloads: Sequence[dict[str, Any]]) -> str:
    """A document from its chunk payloads: placed at their ``start`` offsets when every chunk has
    one (exact), else joined by :func:`join_chunks` (stores written before offsets were kept)."""
    texts = [str(p.get("text", "")) for p in payloads]
    starts = [p.get("start") for p in payloads]
    if not all(isinstance(s, int) and s >= 0 for s in starts):
        return join_chunks(texts)
    out = ""
    for start, text in zip(cast(list[int], starts), texts, strict=True):
        gap = start - len(out)
        if gap > 0:  # whitespace the splitter stripped: keep the offsets exact
            out += ("\n\n" if gap >= 2 else " ") + " " * max(0, gap - 2)
        out = out[:start] + text + out[start + len(text) :]
    return out.strip()


def join_chunks(texts: Sequence[str], *, max_overlap: int = 200, probe: int = 24) -> str:
    """Join consecutive chunks of one document, dropping the text each repeats from the previous one
    (the splitter's overlap, at most ``max_overlap``: the ingest default). Chunks that do not
    overlap are joined by a blank line."""
    if not texts:
        return ""
    out = texts[0]
    for text in texts[1:]:
        cut = _overlap(out[-max_overlap:], text, probe)
        out = out + text[cut:] if cut else f"{out}\n\n{text}"
    return out


def _overlap(tail: str, text: str, probe: int) -> int:
    """The length of the longest prefix of ``text`` that ``tail`` ends with (0 if none)."""
    head = text[:probe]
    if len(head) < probe:  # a tiny chunk: try every length
        return next((n for n in range(min(len(tail), len(text)), 0, -1) if tail.endswith(text[:n])), 0)
    pos = tail.find(head)
    while pos != -1:
        n = len(tail) - pos
        if text.startswith(tail[pos:]):
            return n
        pos = tail.find(head, pos + 1)
    return 0
