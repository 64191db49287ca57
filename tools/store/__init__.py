"""The vector store: one API, and two engines behind it.

Graphs and retrievers depend only on :class:`VectorStore`, which holds the semantics once
(:mod:`tools.store._core`: source checks, hybrid search, RRF, tie order) over a narrow engine
(:class:`tools.store._core.Engine`). The two stores are it over their engines:

- :class:`EdgeStore` (:mod:`tools.store.edge`), the embedded default: Qdrant Edge, Qdrant's Rust
  engine in this process.
- :class:`QdrantStore` (:mod:`tools.store.qdrant`): qdrant-client, in memory, in local mode on
  disk, or on a Qdrant server.

:mod:`tools.store.migrate` moves sources between stores. The vocabulary (sources, points, hits,
errors, filters) is :mod:`tools.store._types`, re-exported here.

Names are imported on first use (PEP 562): the embedded store loads without qdrant-client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tools._lazy import lazy_exports

if TYPE_CHECKING:
    from tools.store._core import VectorStore
    from tools.store._types import (
        DENSE,
        SPARSE,
        ChunkRef,
        FilterSpec,
        Hit,
        Point,
        Progress,
        Source,
        SourceExistsError,
        SourceNotFoundError,
        StoreError,
        StoreLockedError,
        build_filter,
        check_source_name,
        missing_source_message,
        source_from_metadata,
        source_metadata,
    )
    from tools.store.edge import EdgeStore
    from tools.store.qdrant import QdrantEngine, QdrantStore

_EXPORTS = {
    "ChunkRef": "tools.store._types",
    "DENSE": "tools.store._types",
    "EdgeStore": "tools.store.edge",
    "FilterSpec": "tools.store._types",
    "Hit": "tools.store._types",
    "Point": "tools.store._types",
    "Progress": "tools.store._types",
    "QdrantEngine": "tools.store.qdrant",
    "QdrantStore": "tools.store.qdrant",
    "SPARSE": "tools.store._types",
    "Source": "tools.store._types",
    "SourceExistsError": "tools.store._types",
    "SourceNotFoundError": "tools.store._types",
    "StoreError": "tools.store._types",
    "StoreLockedError": "tools.store._types",
    "VectorStore": "tools.store._core",
    "annotations": "__future__",
    "build_filter": "tools.store._types",
    "check_source_name": "tools.store._types",
    "missing_source_message": "tools.store._types",
    "source_from_metadata": "tools.store._types",
    "source_metadata": "tools.store._types",
}

__all__ = [
    "DENSE",
    "SPARSE",
    "ChunkRef",
    "EdgeStore",
    "FilterSpec",
    "Hit",
    "Point",
    "Progress",
    "QdrantEngine",
    "QdrantStore",
    "Source",
    "SourceExistsError",
    "SourceNotFoundError",
    "StoreError",
    "StoreLockedError",
    "VectorStore",
    "build_filter",
    "check_source_name",
    "missing_source_message",
    "source_from_metadata",
    "source_metadata",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
