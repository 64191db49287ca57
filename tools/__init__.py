"""What graphs call: the vector store, embeddings, BM25 vectors, ingestion, retrieval, long contexts.

Names are imported on first use (PEP 562), so importing one submodule does not load them all:
`arag --help` must not pay for the model stack."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tools._lazy import lazy_exports

if TYPE_CHECKING:
    from tools.context import ContextInfo, ContextStore, load_context
    from tools.embeddings import CachedEmbeddings, LocalEmbeddings, openai_compatible_embeddings
    from tools.extractive import ExtractiveAnswer, extractive_answer
    from tools.ingest import Chunker, Ingestor, IngestReport, WalkOptions, Watcher
    from tools.ingest.loaders import Document, LoadError, load_file
    from tools.retrieval import RetrievedChunk, Retriever, StoredDocument
    from tools.sandbox import Sandbox, SandboxLimits, SandboxResult, SandboxUnavailable
    from tools.search import Searcher
    from tools.sparse import Bm25Encoder, SparseVector
    from tools.store import (
        EdgeStore,
        Hit,
        Point,
        QdrantStore,
        Source,
        SourceExistsError,
        SourceNotFoundError,
        StoreError,
        StoreLockedError,
        VectorStore,
    )

_EXPORTS = {
    "Bm25Encoder": "tools.sparse",
    "CachedEmbeddings": "tools.embeddings",
    "Chunker": "tools.ingest",
    "ContextInfo": "tools.context",
    "ContextStore": "tools.context",
    "Document": "tools.ingest.loaders",
    "EdgeStore": "tools.store",
    "ExtractiveAnswer": "tools.extractive",
    "Hit": "tools.store",
    "IngestReport": "tools.ingest",
    "Ingestor": "tools.ingest",
    "LoadError": "tools.ingest.loaders",
    "LocalEmbeddings": "tools.embeddings",
    "Point": "tools.store",
    "QdrantStore": "tools.store",
    "RetrievedChunk": "tools.retrieval",
    "Retriever": "tools.retrieval",
    "Sandbox": "tools.sandbox",
    "Searcher": "tools.search",
    "SandboxLimits": "tools.sandbox",
    "SandboxResult": "tools.sandbox",
    "SandboxUnavailable": "tools.sandbox",
    "Source": "tools.store",
    "SourceExistsError": "tools.store",
    "SourceNotFoundError": "tools.store",
    "SparseVector": "tools.sparse",
    "StoreError": "tools.store",
    "StoreLockedError": "tools.store",
    "StoredDocument": "tools.retrieval",
    "VectorStore": "tools.store",
    "WalkOptions": "tools.ingest",
    "Watcher": "tools.ingest",
    "extractive_answer": "tools.extractive",
    "load_context": "tools.context",
    "load_file": "tools.ingest.loaders",
    "openai_compatible_embeddings": "tools.embeddings",
}

__all__ = [
    "Bm25Encoder",
    "CachedEmbeddings",
    "Chunker",
    "ContextInfo",
    "ContextStore",
    "Document",
    "EdgeStore",
    "ExtractiveAnswer",
    "Hit",
    "IngestReport",
    "Ingestor",
    "LoadError",
    "LocalEmbeddings",
    "Point",
    "QdrantStore",
    "RetrievedChunk",
    "Retriever",
    "Sandbox",
    "SandboxLimits",
    "SandboxResult",
    "SandboxUnavailable",
    "Searcher",
    "Source",
    "SourceExistsError",
    "SourceNotFoundError",
    "SparseVector",
    "StoreError",
    "StoreLockedError",
    "StoredDocument",
    "VectorStore",
    "WalkOptions",
    "Watcher",
    "extractive_answer",
    "load_context",
    "load_file",
    "openai_compatible_embeddings",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
