"""The vector store: one small interface, and its implementation over qdrant-client.

Graphs and retrievers depend only on :class:`VectorStore`. :class:`QdrantStore` implements it on
every qdrant-client backend with the same code: ``":memory:"`` (tests), ``path=`` (the embedded
default, on disk) and ``url=`` (a Qdrant server or cluster). A faster embedded engine can replace
local mode behind the same interface.

Each *source* is one collection holding chunks with a named dense vector (``dense``, cosine) and
a named sparse vector (``bm25``, with Qdrant's IDF modifier). The source's description and the
statistics ingestion needs (embedding model, BM25 average length) live in the collection's
metadata, so a store folder or server is self-describing.
"""

from __future__ import annotations

import functools
import math
import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse
from threadpoolctl import ThreadpoolController

from tools.sparse import SparseVector

__all__ = [
    "DENSE",
    "SPARSE",
    "ChunkRef",
    "Hit",
    "Point",
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

DENSE = "dense"
"""Name of the dense vector in every collection."""
SPARSE = "bm25"
"""Name of the sparse (BM25) vector in every collection."""

_SCHEMA_VERSION = 1
_SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_INDEXED_FIELDS = ("source", "doc_id", "path")
_MATCH_ANY_LIMIT = 64
_PAGE = 1000
TIE_MARGIN = 10
"""Extra hits a search asks the engine for, so that ties at the cut are ordered by id, not by chance."""


def stable_top(points: Iterable[tuple[str, float]], limit: int) -> list[tuple[str, float]]:
    """The ``limit`` best (id, score) pairs, equal scores ordered by id.

    Engines return equal scores in any order (Edge searches segments in parallel), so which of
    them make the cut would otherwise change from run to run.
    """
    return sorted(points, key=lambda h: (-h[1], h[0]))[:limit]


def rrf_scores(rankings: Sequence[Sequence[tuple[str, float]]], k: int) -> list[tuple[str, float]]:
    """Reciprocal rank fusion as Qdrant does it (ranks from 0: a top hit adds ``1/k``), done here
    so that it is exact (``fsum``) and its ties are ordered by id; best first."""
    parts: dict[str, list[float]] = {}
    for ranking in rankings:
        for rank, (pid, _) in enumerate(ranking):
            parts.setdefault(pid, []).append(1.0 / (k + rank))
    return stable_top(((pid, math.fsum(v)) for pid, v in parts.items()), len(parts))


Progress = Callable[[str, int, int], None]
"""Progress callback: ``(stage, done, total)``."""

FilterSpec = Mapping[str, Any] | models.Filter
"""A payload filter: ``{"doc_id": "42", "metadata.lang": ["en", "fr"]}`` (all keys must match; a
list matches any of its values), or a qdrant-client ``Filter`` for anything richer."""


class StoreError(RuntimeError):
    """A store operation failed for a reason the user can act on."""


class StoreLockedError(StoreError):
    """Another process holds the embedded store."""


class SourceNotFoundError(StoreError):
    """The named source (collection) does not exist."""


class SourceExistsError(StoreError):
    """A source of that name exists with an incompatible configuration."""


@dataclass(frozen=True, slots=True)
class Source:
    """A named collection of chunks and what ingestion recorded about it."""

    name: str
    """Collection name; what ``--source`` selects."""
    description: str
    """What the source holds, in words the source selector can match questions against."""
    dimension: int
    """Size of the dense vectors."""
    embedding_model: str
    """The model that made the dense vectors; queries must use the same one."""
    bm25_avgdl: float
    """Average chunk length in BM25 terms, fixed when the source was created."""
    created_at: str = ""
    """ISO timestamp of creation."""
    points: int = 0
    """Number of chunks stored (when listed with counts)."""


@dataclass(frozen=True, slots=True)
class Point:
    """One chunk to store: its id, both vectors and its payload."""

    id: str
    dense: Sequence[float]
    sparse: SparseVector
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ChunkRef:
    """Where a stored chunk came from: enough to find chunks left over from an older version."""

    id: str
    doc_id: str
    path: str


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result: a chunk id, its score in the query's scale, and its payload."""

    id: str
    score: float
    payload: dict[str, Any] = field(default_factory=dict)


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


def build_filter(where: FilterSpec | None) -> models.Filter | None:
    """Turn a :data:`FilterSpec` into a qdrant-client ``Filter``."""
    if where is None or isinstance(where, models.Filter):
        return where
    conditions: list[models.Condition] = []
    for key, value in where.items():
        if isinstance(value, list | tuple | set | frozenset):
            values = list(value)
            all_str = all(isinstance(v, str) for v in values)
            all_int = all(isinstance(v, int) and not isinstance(v, bool) for v in values)
            if not values or not (all_str or all_int):
                msg = f"filter {key!r}: a list must hold only strings or only integers, got {values!r}"
                raise ValueError(msg)
            conditions.append(models.FieldCondition(key=key, match=models.MatchAny(any=values)))
        elif isinstance(value, str | int | bool):
            conditions.append(models.FieldCondition(key=key, match=models.MatchValue(value=value)))
        else:
            msg = f"filter {key!r}: match a string, integer, boolean or a list of them, got {value!r}"
            raise ValueError(msg)
    return models.Filter(must=conditions)


_Method = TypeVar("_Method", bound=Callable[..., Any])


def _source_must_exist(method: _Method) -> _Method:
    """Turn qdrant's "collection not found" (ValueError locally, 404 remotely) into SourceNotFoundError."""

    @functools.wraps(method)
    def wrapper(self: QdrantStore, source: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, source, *args, **kwargs)
        except (ValueError, UnexpectedResponse):
            if self._client.collection_exists(source):
                raise
            raise SourceNotFoundError(missing_source_message(source, self._source_names())) from None

    return wrapper  # type: ignore[return-value]


class QdrantStore:
    """:class:`VectorStore` over qdrant-client: in memory, on disk, or on a Qdrant server.

    Local mode (``":memory:"`` or ``path=``) is qdrant-client's pure-Python engine: exact
    brute-force search, meant for development, tests and corpora up to some ten thousand chunks.
    Only one process may open a ``path`` at a time. For concurrent access or larger corpora, run a
    Qdrant server and pass ``url=``; nothing else changes.

    Args:
        location: ``":memory:"``, a folder path, or an ``http(s)://`` URL.
        api_key: API key for a Qdrant server.
        timeout: Request timeout in seconds for a server.
        batch_size: Points per upsert request.
    """

    def __init__(
        self,
        location: str | Path = ":memory:",
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        batch_size: int = 256,
    ) -> None:
        self.location = str(location)
        self.batch_size = batch_size
        self._client = _open_client(self.location, api_key, timeout)
        self.is_local = not self.location.startswith(("http://", "https://"))

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
        """Create a source; an existing one with the same vector size is returned as is."""
        check_source_name(name)
        if self._client.collection_exists(name):
            existing = self.get_source(name)
            if existing.dimension != dimension or existing.embedding_model != embedding_model:
                msg = (
                    f"source {name!r} holds {existing.dimension}-d vectors of "
                    f"{existing.embedding_model!r}, not {dimension}-d of {embedding_model!r}; "
                    f"ingest into another source or delete this one first (arag sources --delete {name})"
                )
                raise SourceExistsError(msg)
            return existing
        metadata = source_metadata(description, dimension, embedding_model, bm25_avgdl)
        self._client.create_collection(
            name,
            vectors_config={DENSE: models.VectorParams(size=dimension, distance=models.Distance.COSINE)},
            sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            metadata=metadata,
        )
        for field_name in _INDEXED_FIELDS:
            self._payload_index(name, field_name)
        return self.get_source(name)

    def get_source(self, name: str) -> Source:
        """The source called ``name``; raises :class:`SourceNotFoundError`."""
        if not self._client.collection_exists(name):
            raise SourceNotFoundError(missing_source_message(name, self._source_names()))
        meta = self._client.get_collection(name).config.metadata or {}
        if "arag_schema" not in meta:
            msg = f"collection {name!r} was not created by arag (no source metadata); pick another name"
            raise SourceNotFoundError(msg)
        return source_from_metadata(name, meta)

    def list_sources(self, *, with_counts: bool = False) -> list[Source]:
        """Every source in the store, by name (collections not made by arag are left out)."""
        sources = []
        for name in self._source_names():
            meta = self._client.get_collection(name).config.metadata or {}
            source = source_from_metadata(name, meta)
            if with_counts:
                source = replace(source, points=self.count(name))
            sources.append(source)
        return sources

    def set_description(self, name: str, description: str) -> None:
        """Replace a source's description."""
        self.get_source(name)
        self._client.update_collection(name, metadata={"description": description})

    def delete_source(self, name: str) -> None:
        """Drop a source and all its chunks."""
        self.get_source(name)
        self._client.delete_collection(name)

    def _source_names(self) -> list[str]:
        names = []
        for collection in self._client.get_collections().collections:
            meta = self._client.get_collection(collection.name).config.metadata or {}
            if "arag_schema" in meta:
                names.append(collection.name)
        return sorted(names)

    def _payload_index(self, name: str, field_name: str) -> None:
        # A server needs keyword indexes for fast filters and deletes by source or document;
        # local mode has no indexes and says so in a warning that would only confuse users.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._client.create_payload_index(name, field_name, models.PayloadSchemaType.KEYWORD)

    # -- points --------------------------------------------------------------------------

    @_source_must_exist
    def upsert(self, source: str, points: Sequence[Point]) -> None:
        """Insert or replace points in batches of ``batch_size``."""
        for start in range(0, len(points), self.batch_size):
            batch = points[start : start + self.batch_size]
            self._client.upsert(
                source,
                points=[
                    models.PointStruct(
                        id=p.id,
                        vector={
                            DENSE: list(p.dense),
                            SPARSE: models.SparseVector(indices=p.sparse.indices, values=p.sparse.values),
                        },
                        payload=p.payload,
                    )
                    for p in batch
                ],
                wait=True,
            )

    @_source_must_exist
    def existing_ids(self, source: str, ids: Sequence[str]) -> set[str]:
        """The subset of ``ids`` already stored."""
        found: set[str] = set()
        for start in range(0, len(ids), 1000):
            records = self._client.retrieve(
                source, ids=list(ids[start : start + 1000]), with_payload=False, with_vectors=False
            )
            found.update(str(r.id) for r in records)
        return found

    @_source_must_exist
    def chunk_refs(self, source: str, doc_ids: Sequence[str]) -> list[ChunkRef]:
        """Id, document id and path of every stored chunk of the given documents."""
        wanted = set(doc_ids)
        if not wanted:
            return []
        if len(wanted) > _MATCH_ANY_LIMIT:
            # One pass over every chunk's (doc_id, path): local mode checks a match-any filter
            # value by value, so a filter of thousands of ids costs thousands of passes.
            records: Iterable[models.Record] = self._scroll(source, None, payload=["doc_id", "path"])
        else:
            records = self._scroll(source, build_filter({"doc_id": sorted(wanted)}), payload=["doc_id", "path"])
        refs = (
            ChunkRef(str(r.id), str((r.payload or {}).get("doc_id")), str((r.payload or {}).get("path")))
            for r in records
        )
        return [ref for ref in refs if ref.doc_id in wanted]

    @_source_must_exist
    def delete(self, source: str, *, ids: Sequence[str] | None = None, where: FilterSpec | None = None) -> None:
        """Delete points by id or by payload filter (exactly one of the two)."""
        if (ids is None) == (where is None):
            msg = "delete takes ids or where, not both and not neither"
            raise ValueError(msg)
        selector: models.PointIdsList | models.FilterSelector
        if ids is not None:
            if not ids:
                return
            selector = models.PointIdsList(points=list(ids))
        else:
            built = build_filter(where)
            assert built is not None
            selector = models.FilterSelector(filter=built)
        self._client.delete(source, points_selector=selector, wait=True)

    @_source_must_exist
    def count(self, source: str, where: FilterSpec | None = None) -> int:
        """Exact number of points, optionally matching a filter."""
        return int(self._client.count(source, count_filter=build_filter(where), exact=True).count)

    def scroll(self, source: str, where: FilterSpec | None = None) -> Iterator[Hit]:
        """Every point (optionally matching a filter) with its payload, in id order."""
        self.get_source(source)  # fail now, not at the first iteration
        return (
            Hit(id=str(r.id), score=0.0, payload=dict(r.payload or {}))
            for r in self._scroll(source, build_filter(where), payload=True)
        )

    def _scroll(self, source: str, where: models.Filter | None, payload: bool | list[str]) -> Iterator[models.Record]:
        offset: models.ExtendedPointId | None = None
        while True:
            records, offset = self._client.scroll(
                source, scroll_filter=where, limit=_PAGE, offset=offset, with_payload=payload, with_vectors=False
            )
            yield from records
            if offset is None:
                return

    # -- search --------------------------------------------------------------------------

    @_source_must_exist
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
        lists are fused by reciprocal rank fusion with constant ``rrf_k`` (standard: 60). Equal
        scores are ordered by id, so a query gets the same hits every run.
        """
        if dense is None and sparse is None:
            msg = "search needs a dense vector, a sparse vector, or both"
            raise ValueError(msg)
        query_filter = build_filter(where)
        # Local mode is always exact (and warns about search params); a server may need telling.
        params = models.SearchParams(exact=True) if exact and not self.is_local else None
        sparse_query = models.SparseVector(indices=sparse.indices, values=sparse.values) if sparse is not None else None
        if sparse is not None and not sparse.indices:
            sparse_query = None  # a query of stopwords only: BM25 has nothing to match
            if dense is None:
                return []
        # Ids and scores first (hybrid: both rankings in one batch, fused here), ties ordered by id,
        # then the payloads of the kept points: the same hits every run (see stable_top).
        depth = max(limit, prefetch_limit or limit) if dense is not None and sparse_query is not None else limit
        requests = []
        if dense is not None:
            requests.append(models.QueryRequest(query=list(dense), using=DENSE, params=params))
        if sparse_query is not None:
            requests.append(models.QueryRequest(query=sparse_query, using=SPARSE))
        for request in requests:
            request.filter, request.limit, request.with_payload = query_filter, depth + TIE_MARGIN, False
        with _one_blas_thread() if self.is_local else nullcontext():
            responses = self._client.query_batch_points(source, requests=requests)
            rankings = [stable_top(((str(p.id), float(p.score)) for p in r.points), depth) for r in responses]
            kept = rrf_scores(rankings, rrf_k)[:limit] if len(rankings) == 2 else rankings[0]
            records = self._client.retrieve(source, [i for i, _ in kept], with_payload=True) if kept else []
        payloads = {str(r.id): dict(r.payload or {}) for r in records}
        return [Hit(id=i, score=score, payload=payloads.get(i, {})) for i, score in kept]

    @_source_must_exist
    def points(self, source: str) -> Iterator[Point]:
        """Every point with both vectors and its payload (for export and migration)."""
        offset: models.ExtendedPointId | None = None
        while True:
            records, offset = self._client.scroll(
                source, limit=_PAGE, offset=offset, with_payload=True, with_vectors=True
            )
            for r in records:
                vectors = r.vector if isinstance(r.vector, dict) else {}
                dense = vectors.get(DENSE)
                sparse = vectors.get(SPARSE)
                yield Point(
                    str(r.id),
                    [float(x) for x in dense] if isinstance(dense, list) else [],  # type: ignore[arg-type]
                    SparseVector(list(sparse.indices), list(sparse.values))
                    if isinstance(sparse, models.SparseVector)
                    else SparseVector([], []),
                    dict(r.payload or {}),
                )
            if offset is None:
                return

    def refresh_index(self, source: str, *, force: bool = False, progress: Progress | None = None) -> bool:
        """Nothing to do: local mode has no index, and a server indexes in the background."""
        self.get_source(source)
        return False

    def close(self) -> None:
        """Release the store (and its lock, for an embedded one)."""
        self._client.close()

    def __enter__(self) -> QdrantStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@functools.cache
def _threadpools() -> ThreadpoolController:
    return ThreadpoolController()


def _one_blas_thread() -> AbstractContextManager[object]:
    """Local mode scores with numpy. When numpy's BLAS threads and torch's threads alternate on
    few cores they fight: measured on 2 cores, embed-then-search went from 20 ms to 41 ms per query.
    A matrix-vector product over ~10k vectors gains nothing from a second BLAS thread anyway."""
    limiter: AbstractContextManager[object] = _threadpools().limit(limits=1, user_api="blas")
    return limiter


def _open_client(location: str, api_key: str | None, timeout: float) -> QdrantClient:
    if location == ":memory:":
        return QdrantClient(location=":memory:")
    if location.startswith(("http://", "https://")):
        return QdrantClient(url=location, api_key=api_key, timeout=int(timeout))
    path = Path(location).expanduser()
    if path.exists() and not path.is_dir():
        msg = f"the Qdrant path {path} is a file; give a folder (it is created if missing)"
        raise StoreError(msg)
    path.mkdir(parents=True, exist_ok=True)
    try:
        return QdrantClient(path=str(path))
    except RuntimeError as exc:
        if "already accessed" in str(exc):
            msg = (
                f"the store at {path} is open in another process (an embedded store allows one "
                "process at a time); close that process, or run a Qdrant server and set "
                "ARAG_QDRANT_URL for concurrent access"
            )
            raise StoreLockedError(msg) from None
        raise


def source_metadata(description: str, dimension: int, embedding_model: str, bm25_avgdl: float) -> dict[str, Any]:
    """What a store records about a new source (collection metadata, or a file beside a shard)."""
    return {
        "arag_schema": _SCHEMA_VERSION,
        "description": description,
        "dimension": dimension,
        "embedding_model": embedding_model,
        "bm25_avgdl": bm25_avgdl,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def check_source_name(name: str) -> None:
    """Raise ``ValueError`` unless ``name`` is a valid source name."""
    if not _SOURCE_NAME.match(name):
        msg = f"invalid source name {name!r}: use 1-64 letters, digits, '-' or '_', starting with a letter or digit"
        raise ValueError(msg)


def missing_source_message(name: str, known: Iterable[str]) -> str:
    """The error message for a source that does not exist, naming the ones that do."""
    names = ", ".join(known)
    hint = f"known sources: {names}" if names else "the store has no sources yet"
    return f"source {name!r} does not exist ({hint}); run `arag ingest PATH --source {name}` first"


def source_from_metadata(name: str, meta: Mapping[str, Any]) -> Source:
    """A :class:`Source` from what :func:`source_metadata` recorded."""
    return Source(
        name=name,
        description=str(meta.get("description", "")),
        dimension=int(meta.get("dimension", 0)),
        embedding_model=str(meta.get("embedding_model", "")),
        bm25_avgdl=float(meta.get("bm25_avgdl", 1.0)),
        created_at=str(meta.get("created_at", "")),
    )
