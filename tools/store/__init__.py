"""The vector store: one small interface, and two engines behind it.

Graphs and retrievers depend only on :class:`VectorStore`. Both stores implement it with the same
semantics (:class:`tools.store._core.Store`: source checks, hybrid search, RRF, tie order) over a
narrow engine (:class:`tools.store._core.Engine`):

- :class:`EdgeStore` (:mod:`tools.store.edge`), the embedded default: Qdrant Edge, Qdrant's Rust
  engine in this process.
- :class:`QdrantStore` (:mod:`tools.store.qdrant`): qdrant-client, in memory, in local mode on
  disk, or on a Qdrant server.

:mod:`tools.store.migrate` moves sources between stores. The vocabulary (sources, points, hits,
errors, filters) is :mod:`tools.store._types`, re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

from tools.sparse import SparseVector
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


@runtime_checkable
class VectorStore(Protocol):
    """What retrieval and ingestion need from a vector store."""

    def create_source(
        self,
        name: str,
        *,
        description: str,
        dimension: int,
        embedding_model: str,
        bm25_avgdl: float,
    ) -> Source:
        """Create a source; an existing one with the same vector size is returned as is."""
        ...

    def get_source(self, name: str) -> Source:
        """The source called ``name``; raises :class:`SourceNotFoundError`."""
        ...

    def list_sources(self, *, with_counts: bool = False) -> list[Source]:
        """Every source in the store, by name."""
        ...

    def set_description(self, name: str, description: str) -> None:
        """Replace a source's description."""
        ...

    def delete_source(self, name: str) -> None:
        """Drop a source and all its chunks."""
        ...

    def upsert(self, source: str, points: Sequence[Point]) -> None:
        """Insert or replace points (same id = same chunk)."""
        ...

    def existing_ids(self, source: str, ids: Sequence[str]) -> set[str]:
        """The subset of ``ids`` already stored."""
        ...

    def chunk_refs(self, source: str, doc_ids: Sequence[str]) -> list[ChunkRef]:
        """Id, document id and path of every stored chunk of the given documents."""
        ...

    def delete(self, source: str, *, ids: Sequence[str] | None = None, where: FilterSpec | None = None) -> None:
        """Delete points by id or by payload filter."""
        ...

    def count(self, source: str, where: FilterSpec | None = None) -> int:
        """Exact number of points, optionally matching a filter."""
        ...

    def search(
        self,
        source: str,
        *,
        dense: Sequence[float] | None = None,
        sparse: SparseVector | None = None,
        limit: int = 10,
        where: FilterSpec | None = None,
        prefetch_limit: int | None = None,
        rrf_k: int = 60,
        exact: bool = False,
    ) -> list[Hit]:
        """Dense, sparse, or hybrid (both given: RRF over the two rankings) search; ``exact``
        bypasses approximate indexes."""
        ...

    def scroll(self, source: str, where: FilterSpec | None = None) -> Iterator[Hit]:
        """Every point (optionally matching a filter) with its payload, in id order."""
        ...

    def points(self, source: str) -> Iterator[Point]:
        """Every point with both vectors and its payload (for export and migration)."""
        ...

    def refresh_index(self, source: str, *, force: bool = False, progress: Progress | None = None) -> bool:
        """Bring the source's vector index up to date after an ingest; returns whether work was done."""
        ...

    def close(self) -> None:
        """Release the store (and its lock, for an embedded one)."""
        ...

    def __enter__(self) -> VectorStore: ...

    def __exit__(self, *exc: object) -> None: ...
