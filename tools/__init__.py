"""What graphs call: the vector store, embeddings, BM25 vectors, ingestion, retrieval, long contexts."""

from tools.context import ContextInfo, ContextStore, load_context
from tools.embeddings import CachedEmbeddings, LocalEmbeddings, openai_compatible_embeddings
from tools.extractive import ExtractiveAnswer, extractive_answer
from tools.ingest import Chunker, Ingestor, IngestReport, WalkOptions, Watcher
from tools.ingest.loaders import Document, LoadError, load_file
from tools.retrieval import RetrievedChunk, Retriever, StoredDocument
from tools.sandbox import Sandbox, SandboxLimits, SandboxResult, SandboxUnavailable
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
