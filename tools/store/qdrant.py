"""The store on qdrant-client: :class:`QdrantStore`, the shared store semantics over :class:`QdrantEngine`.

One code path for ``":memory:"`` (tests), ``path=`` (local mode, for debugging) and ``url=`` (a
Qdrant server or cluster). Each *source* is one collection holding chunks with a named dense
vector (``dense``, cosine) and a named sparse vector (``bm25``, with Qdrant's IDF modifier). The
source's description and the statistics ingestion needs (embedding model, BM25 average length)
live in the collection's metadata, so a store folder or server is self-describing.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse
from threadpoolctl import ThreadpoolController

from tools.sparse import SparseVector
from tools.store._core import Page, Query, Record, Scored, VectorStore
from tools.store._types import DENSE, SPARSE, Point, StoreError, StoreLockedError, locked_message, store_folder

__all__ = ["QdrantEngine", "QdrantStore"]

_MATCH_ANY_LIMIT = 64


class QdrantStore(VectorStore):
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
        cluster: For the collections this store creates on a cluster: ``shard_number``,
            ``replication_factor``, ``write_consistency_factor`` (Qdrant's names; unset ones take
            the server's defaults). Local mode has no shards and ignores them.
    """

    _engine: QdrantEngine

    def __init__(
        self,
        location: str | Path = ":memory:",
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        batch_size: int = 256,
        cluster: dict[str, int] | None = None,
    ) -> None:
        self.location = str(location)
        self.is_local = not self.location.startswith(("http://", "https://"))
        unknown = set(cluster or {}) - set(CLUSTER_OPTIONS)
        if unknown:
            msg = f"unknown cluster options {sorted(unknown)}; use {list(CLUSTER_OPTIONS)}"
            raise ValueError(msg)
        client = _open_client(self.location, api_key, timeout)
        engine = QdrantEngine(client, local=self.is_local, cluster={} if self.is_local else dict(cluster or {}))
        super().__init__(engine, batch_size=batch_size)


CLUSTER_OPTIONS = ("shard_number", "replication_factor", "write_consistency_factor")
"""What :class:`QdrantStore` passes to ``create_collection`` on a server (``cluster=``)."""


def _unanswered_is_store_error(cls: type) -> type:
    """Every public method of ``cls`` raises :class:`StoreError` when the server gives no answer
    (qdrant-client's ``ResponseHandlingException``: refused, reset, timed out), so callers catch one
    error of the store's own, not a client library's (whose import costs a second)."""

    def translating(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except ResponseHandlingException as exc:
                msg = f"the Qdrant server did not answer: {exc}"
                raise StoreError(msg) from exc

        return call

    for name, member in list(vars(cls).items()):
        if callable(member) and not name.startswith("_"):
            setattr(cls, name, translating(member))
    return cls


@_unanswered_is_store_error
class QdrantEngine:
    """The qdrant-client engine of :class:`QdrantStore`: collections of one client, as they are.

    Args:
        client: An open client (local mode or a server).
        local: Whether it is local mode: exact already, and numpy-bound (one BLAS thread).
    """

    not_found: tuple[type[Exception], ...] = (ValueError, UnexpectedResponse)
    """Local mode raises ``ValueError`` for a missing collection, a server answers 404."""
    match_any_limit: int | None = _MATCH_ANY_LIMIT
    """Local mode checks a match-any filter value by value: a scan is cheaper past this many."""

    def __init__(self, client: QdrantClient, *, local: bool, cluster: dict[str, int] | None = None) -> None:
        self.client = client
        self.local = local
        self.cluster = dict(cluster or {})
        """Shards, replicas and write consistency of the collections created (see :class:`QdrantStore`)."""

    def exists(self, name: str) -> bool:
        return bool(self.client.collection_exists(name))

    def sources(self) -> dict[str, dict[str, Any]]:
        return {c.name: self._metadata(c.name) for c in self.client.get_collections().collections}

    def metadata(self, name: str) -> dict[str, Any] | None:
        return self._metadata(name) if self.client.collection_exists(name) else None

    def _metadata(self, name: str) -> dict[str, Any]:
        return dict(self.client.get_collection(name).config.metadata or {})

    def create(self, name: str, *, dimension: int, metadata: dict[str, Any], indexed: Sequence[str]) -> None:
        self.client.create_collection(
            name,
            vectors_config={DENSE: models.VectorParams(size=dimension, distance=models.Distance.COSINE)},
            sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            metadata=metadata,
            **self.cluster,  # type: ignore[arg-type]
        )
        # A server needs keyword indexes for fast filters and deletes by source or document;
        # local mode has no indexes and says so in a warning that would only confuse users.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for field_name in indexed:
                self.client.create_payload_index(name, field_name, models.PayloadSchemaType.KEYWORD)

    def update_metadata(self, name: str, changes: dict[str, Any]) -> None:
        self.client.update_collection(name, metadata=changes)  # qdrant merges metadata keys

    def drop(self, name: str) -> None:
        self.client.delete_collection(name)

    def upsert(self, name: str, points: Sequence[Point]) -> None:
        structs = [
            models.PointStruct(id=p.id, vector={DENSE: _vector(p.dense), SPARSE: _vector(p.sparse)}, payload=p.payload)
            for p in points
        ]
        self.client.upsert(name, points=structs, wait=True)

    def retrieve(self, name: str, ids: Sequence[str], *, payload: bool) -> Sequence[Record]:
        return self.client.retrieve(name, ids=list(ids), with_payload=payload, with_vectors=False)

    def scroll(self, name: str, page: Page) -> tuple[Sequence[Record], Any]:
        return self.client.scroll(
            name,
            scroll_filter=page.where,
            limit=page.limit,
            offset=page.offset,
            with_payload=page.payload,
            with_vectors=page.vectors,
        )

    def count(self, name: str, where: models.Filter | None) -> int:
        return int(self.client.count(name, count_filter=where, exact=True).count)

    def delete(self, name: str, selector: Sequence[str] | models.Filter) -> None:
        points: models.PointIdsList | models.FilterSelector = (
            models.FilterSelector(filter=selector)
            if isinstance(selector, models.Filter)
            else models.PointIdsList(points=list(selector))
        )
        self.client.delete(name, points_selector=points, wait=True)

    def query(self, name: str, query: Query) -> list[Sequence[Scored]]:
        # Local mode is always exact (and warns about search params); a server may need telling.
        params = models.SearchParams(exact=True) if query.exact and not self.local else None
        requests = [
            models.QueryRequest(
                query=_vector(vector),
                using=using,
                params=params if using == DENSE else None,
                filter=query.where,
                limit=query.limit,
                with_payload=False,
            )
            for using, vector in query.vectors()
        ]
        with _one_blas_thread() if self.local else nullcontext():
            responses = self.client.query_batch_points(name, requests=requests)
        return [r.points for r in responses]

    def close(self) -> None:
        self.client.close()


def _vector(vector: Sequence[float] | SparseVector) -> list[float] | models.SparseVector:
    if isinstance(vector, SparseVector):
        return models.SparseVector(indices=vector.indices, values=vector.values)
    return list(vector)


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
    path = store_folder(location)
    try:
        return QdrantClient(path=str(path))
    except RuntimeError as exc:
        if "already accessed" in str(exc):
            raise StoreLockedError(locked_message(path)) from None
        raise
