"""Retrieval as a LangChain retriever: dense, sparse (BM25) or hybrid search over one or more sources.

:class:`Retriever` is a LangChain ``BaseRetriever`` (``invoke(query)`` returns ``Document``s), and
its :meth:`Retriever.search` returns :class:`RetrievedChunk`s with ids, scores and payload for code
that needs them. The search itself is :class:`tools.search.Searcher`, which loads without
LangChain's runnables (``arag search`` uses it directly).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field, PrivateAttr

from tools import tracing
from tools.search import (
    DEFAULT_RRF_K,
    MODES,
    Mode,
    RetrievedChunk,
    Searcher,
    StoredDocument,
    fuse_rrf,
    join_chunks,
)
from tools.sparse import Bm25Encoder
from tools.store import FilterSpec, VectorStore

__all__ = ["MODES", "Mode", "RetrievedChunk", "Retriever", "StoredDocument", "fuse_rrf", "join_chunks"]


class Retriever(BaseRetriever):
    """Searches sources in a store: ``dense``, ``sparse`` (BM25) or ``hybrid`` (both, fused by RRF).

    With several sources, each is searched and the rankings are fused by RRF, so scores of
    different collections never have to be compared.

    Example:
        >>> retriever = Retriever(store=store, embeddings=embeddings, sources=["docs"], k=5)
        >>> retriever.invoke("how do I rotate the keys?")  # LangChain Documents
        >>> retriever.search("how do I rotate the keys?", mode="sparse")  # RetrievedChunks
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    store: VectorStore
    embeddings: Embeddings
    encoder: Bm25Encoder = Field(default_factory=Bm25Encoder)
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

    _checked: set[str] = PrivateAttr(default_factory=set)

    def searcher(self) -> Searcher:
        """A :class:`~tools.search.Searcher` with this retriever's settings (sharing its model checks)."""
        return Searcher(
            store=self.store,
            embeddings=self.embeddings,
            encoder=self.encoder,
            sources=self.sources,
            mode=self.mode,
            k=self.k,
            prefetch_limit=self.prefetch_limit,
            rrf_k=self.rrf_k,
            where=self.where,
            checked=self._checked,
        )

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
        attributes = {
            "gen_ai.operation.name": "retrieval",
            "arag.retrieval.sources": list(sources or self.sources or []),
            "arag.retrieval.k": k or self.k,
            "arag.retrieval.mode": mode or self.mode,
            "arag.retrieval.query_chars": len(query),
        }
        with tracing.span("arag.retrieve", attributes) as span:
            hits = self.searcher().search(query, k=k, mode=mode, sources=sources, where=where)
            tracing.set_attributes(span, {"arag.retrieval.hits": len(hits)})
        return hits

    def search_documents(
        self, query: str, *, k: int = 10, chunks_per_document: int = 3, **kwargs: Any
    ) -> list[RetrievedChunk]:
        """The best chunk of each of the ``k`` best documents (see :meth:`Searcher.search_documents`)."""
        return self.searcher().search_documents(query, k=k, chunks_per_document=chunks_per_document, **kwargs)

    def document(self, doc_id: str, *, source: str | None = None) -> StoredDocument:
        """A whole stored document, rebuilt from its chunks in order (see :meth:`Searcher.document`)."""
        return self.searcher().document(doc_id, source=source)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [chunk.to_document() for chunk in self.search(query)]
