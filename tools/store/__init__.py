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
"""

from __future__ import annotations

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
