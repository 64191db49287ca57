"""Build the runtime parts (store, embeddings, retriever, ingestor) from :class:`Settings`.

The one place where settings turn into objects; graphs and tools receive the objects.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from agents.settings import Settings

if TYPE_CHECKING:  # each factory imports what it builds: `arag search` loads no ingestion, no LangChain runnables
    from langchain_core.embeddings import Embeddings

    from tools.embeddings import LocalEmbeddings
    from tools.ingest import Ingestor, Progress
    from tools.retrieval import Retriever
    from tools.search import Searcher
    from tools.store import VectorStore
    from tools.vector_cache import CachedQuery

__all__ = [
    "build_embeddings",
    "build_ingestor",
    "build_query_embeddings",
    "build_retriever",
    "build_searcher",
    "build_store",
]


def build_store(settings: Settings) -> VectorStore:
    """The store of the settings' backend: Qdrant Edge (embedded), qdrant-client local mode, or a
    Qdrant server."""
    from tools.store import EdgeStore

    store = settings.store
    if store.effective_backend == "embedded":
        return EdgeStore(
            store.location,
            hnsw_ef=store.hnsw_ef,
            index_threshold=store.index_threshold,
            hnsw_m=store.hnsw_m,
            hnsw_ef_construct=store.hnsw_ef_construct,
        )
    from tools.store import QdrantStore

    api_key = store.qdrant_api_key.get_secret_value() if store.qdrant_api_key else None
    return QdrantStore(
        store.location, api_key=api_key, timeout=settings.model.request_timeout, cluster=store.qdrant_cluster
    )


def build_embeddings(settings: Settings, *, cache: bool | None = None) -> Embeddings:
    """The embedding model of the settings, behind the disk cache unless it is turned off."""
    from tools.embeddings import LOCAL_MODEL_NAME, CachedEmbeddings, openai_compatible_embeddings

    inner: Embeddings
    if settings.embeddings.provider == "local":
        if settings.embeddings.model != LOCAL_MODEL_NAME:
            msg = (
                f"the local embedding provider has only {LOCAL_MODEL_NAME}, not {settings.embeddings.model!r}; "
                "set ARAG_EMBEDDING_PROVIDER=openai (with ARAG_OPENAI_BASE_URL) for other models"
            )
            raise ValueError(msg)
        inner = _local_embeddings(settings)
    else:
        api_key = settings.model.api_key.get_secret_value() if settings.model.api_key else None
        inner = openai_compatible_embeddings(
            settings.embeddings.model,
            base_url=settings.model.base_url,
            api_key=api_key,
            timeout=settings.model.request_timeout,
        )
    use_cache = settings.embeddings.cache if cache is None else cache
    return CachedEmbeddings(inner, settings.store.cache_path) if use_cache else inner


def preload_embeddings(settings: Settings) -> threading.Thread | None:
    """Start loading the local model in a background thread (a server's start-up: ONNX Runtime
    reads and optimises the graph in native code while the server's modules import on the other
    core). Later uses of the same backend share the loaded session. ``None`` for other providers."""
    if settings.embeddings.provider != "local":
        return None
    thread = threading.Thread(
        target=lambda: _local_embeddings(settings).load(), name="arag-preload-embeddings", daemon=True
    )
    thread.start()
    return thread


def _local_embeddings(settings: Settings) -> LocalEmbeddings:
    """The bundled model as the settings run it (batch size, threads, backend, export cache)."""
    from tools.embeddings import LocalEmbeddings

    local = settings.embeddings
    return LocalEmbeddings(
        batch_size=local.batch_size,
        threads=local.effective_threads,
        backend=local.backend,
        model_cache=local.model_cache,
    )


def build_query_embeddings(settings: Settings) -> Embeddings | CachedQuery:
    """What ``arag search`` embeds its query with: with the cache on, a lookup in the cache that
    builds the model (:func:`build_embeddings`) only when the query is new, so a repeated search
    loads no model stack at all; with the cache off, the model itself."""
    from tools.vector_cache import CachedQuery, VectorCache, local_model_name

    embeddings = settings.embeddings
    if not embeddings.cache:
        return build_embeddings(settings)
    identity = local_model_name(embeddings.backend) if embeddings.provider == "local" else embeddings.model
    return CachedQuery(VectorCache(settings.store.cache_path, identity), lambda: build_embeddings(settings))


def build_retriever(settings: Settings, store: VectorStore, embeddings: Embeddings) -> Retriever:
    """A LangChain retriever with the settings' mode, k and fusion parameters."""
    from tools.retrieval import Retriever

    return Retriever(
        store=store,
        embeddings=embeddings,
        mode=settings.retrieval.mode,
        k=settings.retrieval.top_k,
        prefetch_limit=settings.retrieval.prefetch_limit,
        rrf_k=settings.retrieval.rrf_k,
    )


def build_searcher(settings: Settings, store: VectorStore, embeddings: Embeddings | CachedQuery) -> Searcher:
    """The plain searcher (no LangChain runnables) with the settings' mode, k and fusion parameters."""
    from tools.search import Searcher

    return Searcher(
        store=store,
        embeddings=embeddings,
        mode=settings.retrieval.mode,
        k=settings.retrieval.top_k,
        prefetch_limit=settings.retrieval.prefetch_limit,
        rrf_k=settings.retrieval.rrf_k,
    )


def build_ingestor(
    settings: Settings,
    store: VectorStore,
    embeddings: Embeddings,
    progress: Progress | None = None,
    *,
    hidden: bool = False,
    gitignore: bool = True,
    follow_symlinks: bool = False,
) -> Ingestor:
    """An ingestor with the settings' chunking, batch size and per-file size cap, and the walk's
    rules (hidden entries, ``.gitignore``, symlinks to outside the given paths)."""
    from tools.ingest import SUPPORTED_SUFFIXES, Chunker, Ingestor, WalkOptions

    walk_options = WalkOptions(
        frozenset(SUPPORTED_SUFFIXES),
        hidden=hidden,
        gitignore=gitignore,
        follow_symlinks=follow_symlinks,
        max_file_bytes=int(settings.ingest.max_file_mb * 2**20),
    )
    return Ingestor(
        store,
        embeddings,
        chunker=Chunker(settings.ingest.chunk_size, settings.ingest.chunk_overlap),
        batch_size=settings.ingest.batch_size,
        progress=progress,
        walk_options=walk_options,
        isolate=settings.ingest.isolate,
        file_timeout_s=settings.ingest.file_timeout,
        file_memory_mb=settings.ingest.file_memory_mb,
    )
