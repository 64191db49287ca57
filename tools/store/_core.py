"""The store's semantics, once: how a source is checked, how a search ranks, how calls page.

:class:`VectorStore` is the store's one API, over a narrow :class:`Engine`, the way
qdrant-client's public client forwards to a local or a remote backend. The store owns every
rule users can see: source names and metadata, the source checks (a missing source is a
:class:`~tools.store.SourceNotFoundError` that names the sources there are), batching and
paging, payload filters, hybrid search with RRF, and the order of equal scores
(:mod:`tools._fusion`). An engine only stores and finds: it runs queries (ids and scores),
retrieves payloads by id, scrolls, upserts, counts, deletes, and keeps each source's metadata.
The engines are Qdrant Edge (:class:`tools.store.edge.EdgeEngine`) and qdrant-client
(:class:`tools.store.qdrant.QdrantEngine`). The vocabulary they share is :mod:`tools.store._types`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol, Self

from tools._fusion import TIE_MARGIN, rrf, stable_top
from tools.sparse import SparseVector
from tools.store._types import (
    DENSE,
    INDEXED_FIELDS,
    SPARSE,
    ChunkRef,
    FilterSpec,
    Hit,
    Point,
    Progress,
    Source,
    SourceExistsError,
    SourceNotFoundError,
    build_filter,
    check_source_name,
    missing_source_message,
    source_from_metadata,
    source_metadata,
)

if TYPE_CHECKING:
    from qdrant_client import models

__all__ = ["Engine", "Page", "Query", "Record", "Scored", "VectorStore"]

_PAGE = 1000
"""Ids per retrieve call, points per scroll page, document ids per match-any filter."""


class Record(Protocol):
    """A stored point as an engine returns it (qdrant-client's and Edge's records both fit)."""

    @property
    def id(self) -> object: ...

    @property
    def payload(self) -> Mapping[str, Any] | None: ...

    @property
    def vector(self) -> object:
        """``{DENSE: [...], SPARSE: <indices, values>}`` when vectors were asked for."""
        ...


class Scored(Protocol):
    """A query result as an engine returns it: an id and a score."""

    @property
    def id(self) -> object: ...

    @property
    def score(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a scroll, as the store asks an engine for it."""

    where: models.Filter | None
    """Only points matching this filter."""
    offset: Any
    """Where the page starts: ``None`` for the first, then what the engine returned."""
    limit: int
    """Points per page."""
    payload: bool | list[str]
    """The payload, none of it, or these keys of it."""
    vectors: bool
    """Both vectors too (for export)."""


@dataclass(frozen=True, slots=True)
class Query:
    """The engine's half of a search: rank by each vector given, keep ``limit`` ids and scores."""

    dense: Sequence[float] | None
    sparse: SparseVector | None
    where: models.Filter | None
    """Only points matching this filter (applied inside each ranking)."""
    limit: int
    exact: bool
    """Bypass approximate indexes (brute force)."""

    def vectors(self) -> list[tuple[str, Sequence[float] | SparseVector]]:
        """``(vector name, query vector)`` for each vector given, dense first."""
        given = ((DENSE, self.dense), (SPARSE, self.sparse))
        return [(using, vector) for using, vector in given if vector is not None]


class Engine(Protocol):
    """What a :class:`VectorStore` needs from a storage engine, and nothing more.

    Sources are named collections with a dense vector :data:`DENSE` (cosine) and a sparse vector
    :data:`SPARSE` (IDF modifier). Filters arrive as qdrant-client ``Filter``s, already checked.
    The engine raises what it raises for a missing source (listed in :attr:`not_found`); the
    store turns that into :class:`SourceNotFoundError`.
    """

    not_found: tuple[type[Exception], ...]
    """Errors an engine call raises when the source does not exist (or for other reasons:
    the store asks :meth:`exists` before it says the source is missing)."""
    match_any_limit: int | None
    """Most values a match-any filter should hold (``None``: no limit); above it, finding the
    chunks of many documents scans the whole source instead."""

    # -- metadata --
    def exists(self, name: str) -> bool:
        """Whether a collection called ``name`` exists (made by arag or not)."""
        ...

    def sources(self) -> dict[str, dict[str, Any]]:
        """Every collection's name and metadata (``{}`` for one without metadata)."""
        ...

    def metadata(self, name: str) -> dict[str, Any] | None:
        """The collection's metadata; ``None`` if there is no such collection."""
        ...

    def create(self, name: str, *, dimension: int, metadata: dict[str, Any], indexed: Sequence[str]) -> None:
        """Create a collection with both vectors, keyword indexes on ``indexed``, and ``metadata``."""
        ...

    def update_metadata(self, name: str, changes: dict[str, Any]) -> None:
        """Replace the given keys of the collection's metadata, keep the others."""
        ...

    def drop(self, name: str) -> None:
        """Delete the collection and its points."""
        ...

    # -- points --
    def upsert(self, name: str, points: Sequence[Point]) -> None:
        """Insert or replace one batch of points."""
        ...

    def retrieve(self, name: str, ids: Sequence[str], *, payload: bool) -> Sequence[Record]:
        """The stored points among ``ids`` (without vectors)."""
        ...

    def scroll(self, name: str, page: Page) -> tuple[Sequence[Record], Any]:
        """One page of points in id order, and the next page's offset (``None``: it was the last)."""
        ...

    def count(self, name: str, where: models.Filter | None) -> int:
        """Exact number of points matching ``where``."""
        ...

    def delete(self, name: str, selector: Sequence[str] | models.Filter) -> None:
        """Delete points by id (a non-empty list) or by filter."""
        ...

    def query(self, name: str, query: Query) -> list[Sequence[Scored]]:
        """One ranking of ids and scores per vector of :meth:`Query.vectors`, in one batch.
        The order of equal scores is the engine's."""
        ...

    def close(self) -> None:
        """Release the engine's resources."""
        ...


class VectorStore:
    """What retrieval and ingestion need from a vector store: the semantics every engine shares.

    Graphs, retrievers and ingestion take a ``VectorStore``; :class:`~tools.store.EdgeStore` and
    :class:`~tools.store.QdrantStore` are this class over their engines. A new backend is a new
    :class:`Engine`, not a second copy of these rules.

    Args:
        engine: Where the points live.
        batch_size: Points per upsert call to the engine.
    """

    location: str
    """Where the store is: a folder, ``":memory:"`` or a server URL."""
    is_local: bool
    """Whether the store is in this process (embedded), not on a server."""

    def __init__(self, engine: Engine, *, batch_size: int) -> None:
        self._engine = engine
        self.batch_size = batch_size

    # -- sources -------------------------------------------------------------------------

    def create_source(
        self,
        name: str,
        *,
        description: str,
        dimension: int,
        embedding_model: str,
        bm25_avgdl: float,
    ) -> Source:
        """Create a source; an existing one with the same vector size and model is returned as is."""
        check_source_name(name)
        if self._engine.exists(name):
            existing = self.get_source(name)
            if existing.dimension != dimension or existing.embedding_model != embedding_model:
                msg = (
                    f"source {name!r} holds {existing.dimension}-d vectors of "
                    f"{existing.embedding_model!r}, not {dimension}-d of {embedding_model!r}; "
                    f"ingest into another source or delete this one first (arag sources --delete {name})"
                )
                raise SourceExistsError(msg)
            return existing
        meta = source_metadata(description, dimension, embedding_model, bm25_avgdl)
        self._engine.create(name, dimension=dimension, metadata=meta, indexed=INDEXED_FIELDS)
        return source_from_metadata(name, meta)

    def get_source(self, name: str) -> Source:
        """The source called ``name``; raises :class:`SourceNotFoundError`."""
        meta = self._engine.metadata(name)
        if meta is None:
            raise SourceNotFoundError(missing_source_message(name, self._source_names()))
        if "arag_schema" not in meta:
            msg = f"collection {name!r} was not created by arag (no source metadata); pick another name"
            raise SourceNotFoundError(msg)
        return source_from_metadata(name, meta)

    def list_sources(self, *, with_counts: bool = False) -> list[Source]:
        """Every source in the store, by name (collections not made by arag are left out)."""
        found = self._arag_sources()
        sources = [source_from_metadata(name, found[name]) for name in sorted(found)]
        if with_counts:
            sources = [replace(s, points=self.count(s.name)) for s in sources]
        return sources

    def set_description(self, name: str, description: str) -> None:
        """Replace a source's description."""
        self.get_source(name)
        self._engine.update_metadata(name, {"description": description})

    def delete_source(self, name: str) -> None:
        """Drop a source and all its chunks."""
        self.get_source(name)
        self._engine.drop(name)

    def _arag_sources(self) -> dict[str, dict[str, Any]]:
        return {name: meta for name, meta in self._engine.sources().items() if "arag_schema" in meta}

    def _source_names(self) -> list[str]:
        return sorted(self._arag_sources())

    @contextmanager
    def _existing(self, source: str) -> Iterator[None]:
        """Turn the engine's error for a missing source into :class:`SourceNotFoundError`."""
        try:
            yield
        except self._engine.not_found:
            if self._engine.exists(source):
                raise
            raise SourceNotFoundError(missing_source_message(source, self._source_names())) from None

    def _check(self, source: str) -> None:
        """Fail now for a missing source (calls with nothing to do reach no engine error)."""
        if not self._engine.exists(source):
            raise SourceNotFoundError(missing_source_message(source, self._source_names()))

    # -- points --------------------------------------------------------------------------

    def upsert(self, source: str, points: Sequence[Point]) -> None:
        """Insert or replace points (same id = same chunk), in batches of ``batch_size``."""
        if not points:
            self._check(source)
        with self._existing(source):
            for start in range(0, len(points), self.batch_size):
                self._engine.upsert(source, points[start : start + self.batch_size])

    def existing_ids(self, source: str, ids: Sequence[str]) -> set[str]:
        """The subset of ``ids`` already stored."""
        if not ids:
            self._check(source)
        found: set[str] = set()
        with self._existing(source):
            for start in range(0, len(ids), _PAGE):
                records = self._engine.retrieve(source, ids[start : start + _PAGE], payload=False)
                found.update(str(r.id) for r in records)
        return found

    def chunk_refs(self, source: str, doc_ids: Sequence[str] | None = None) -> list[ChunkRef]:
        """Id, document id and path of every stored chunk of the given documents (of every chunk
        of the source when ``doc_ids`` is None)."""
        if doc_ids is None:
            records = self._records(source, None, payload=["doc_id", "path"])
            return [_chunk_ref(r) for r in records]
        wanted = sorted(set(doc_ids))
        if not wanted:
            self._check(source)
            return []
        limit = self._engine.match_any_limit
        if limit is not None and len(wanted) > limit:
            # One pass over every chunk's (doc_id, path): local mode checks a match-any filter
            # value by value, so a filter of thousands of ids costs thousands of passes.
            filters: list[models.Filter | None] = [None]
        else:
            filters = [build_filter({"doc_id": wanted[i : i + _PAGE]}) for i in range(0, len(wanted), _PAGE)]
        keep = set(wanted)
        refs: list[ChunkRef] = []
        for where in filters:
            for record in self._records(source, where, payload=["doc_id", "path"]):
                ref = _chunk_ref(record)
                if ref.doc_id in keep:
                    refs.append(ref)
        return refs

    def delete(self, source: str, *, ids: Sequence[str] | None = None, where: FilterSpec | None = None) -> None:
        """Delete points by id or by payload filter (exactly one of the two)."""
        if (ids is None) == (where is None):
            msg = "delete takes ids or where, not both and not neither"
            raise ValueError(msg)
        selector: Sequence[str] | models.Filter | None
        if ids is not None:
            if not ids:
                self._check(source)
                return
            selector = list(ids)
        else:
            selector = build_filter(where)
            assert selector is not None
        with self._existing(source):
            self._engine.delete(source, selector)

    def count(self, source: str, where: FilterSpec | None = None) -> int:
        """Exact number of points, optionally matching a filter."""
        built = build_filter(where)
        with self._existing(source):
            return self._engine.count(source, built)

    def scroll(self, source: str, where: FilterSpec | None = None) -> Iterator[Hit]:
        """Every point (optionally matching a filter) with its payload, in id order."""
        self.get_source(source)  # fail now, not at the first iteration
        records = self._records(source, build_filter(where), payload=True)
        return (Hit(id=str(r.id), score=0.0, payload=dict(r.payload or {})) for r in records)

    def points(self, source: str) -> Iterator[Point]:
        """Every point with both vectors and its payload (for export and migration)."""
        self.get_source(source)
        return (_to_point(r) for r in self._records(source, None, payload=True, vectors=True))

    def _records(
        self, source: str, where: models.Filter | None, *, payload: bool | list[str], vectors: bool = False
    ) -> Iterator[Record]:
        offset: Any = None
        with self._existing(source):
            while True:
                page = Page(where, offset, _PAGE, payload, vectors)
                records, offset = self._engine.scroll(source, page)
                yield from records
                if offset is None:
                    return

    # -- search --------------------------------------------------------------------------

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
        """Dense, sparse, or hybrid search of one source.

        With both vectors, each ranks ``prefetch_limit`` candidates (default ``limit``) and the two
        lists are fused by reciprocal rank fusion with constant ``rrf_k`` (standard: 60; ranks from
        0, as Qdrant counts them). Equal scores are ordered by id, so a query gets the same hits
        every run. ``exact`` bypasses approximate indexes (brute force, for congruence checks).
        """
        if dense is None and sparse is None:
            msg = "search needs a dense vector, a sparse vector, or both"
            raise ValueError(msg)
        if sparse is not None and not sparse.indices:
            sparse = None  # a query of stopwords only: BM25 has nothing to match
            if dense is None:
                self._check(source)
                return []
        built = build_filter(where)
        # Ids and scores first (hybrid: both rankings in one batch, fused here), ties ordered by id,
        # then the payloads of the kept points: the same hits every run (see stable_top).
        hybrid = dense is not None and sparse is not None
        depth = max(limit, prefetch_limit or limit) if hybrid else limit
        with self._existing(source):
            results = self._engine.query(source, Query(dense, sparse, built, depth + TIE_MARGIN, exact))
            rankings = [stable_top(((str(p.id), float(p.score)) for p in points), depth) for points in results]
            kept = rrf(([i for i, _ in r] for r in rankings), rrf_k)[:limit] if hybrid else rankings[0]
            records = self._engine.retrieve(source, [i for i, _ in kept], payload=True) if kept else []
        payloads = {str(r.id): dict(r.payload or {}) for r in records}
        return [Hit(id=i, score=score, payload=payloads.get(i, {})) for i, score in kept]

    # -- index and lifetime --------------------------------------------------------------

    def refresh_index(self, source: str, *, force: bool = False, progress: Progress | None = None) -> bool:
        """Bring the source's vector index up to date after an ingest; returns whether work was done.

        Nothing to do here: qdrant-client's local mode has no index, and a server indexes in the
        background. A store whose engine builds its index on demand overrides this (Edge).
        """
        self.get_source(source)
        return False

    def close(self) -> None:
        """Release the store (and its lock, for an embedded one)."""
        self._engine.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _chunk_ref(record: Record) -> ChunkRef:
    payload = record.payload or {}
    return ChunkRef(str(record.id), str(payload.get("doc_id")), str(payload.get("path")))


def _to_point(record: Record) -> Point:
    vectors: Mapping[str, Any] = record.vector if isinstance(record.vector, dict) else {}
    dense = vectors.get(DENSE)
    sparse = vectors.get(SPARSE)
    return Point(
        str(record.id),
        [float(x) for x in dense] if isinstance(dense, list) else [],
        SparseVector(list(sparse.indices), list(sparse.values)) if sparse is not None else SparseVector([], []),
        dict(record.payload or {}),
    )
