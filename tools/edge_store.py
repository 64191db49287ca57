"""The embedded store on Qdrant Edge: Qdrant's Rust engine in-process, behind :class:`VectorStore`.

qdrant-client's local mode is exact brute force in Python (a sparse query over 10k chunks takes
~180 ms); Qdrant Edge (PyPI ``qdrant-edge-py``, beta) runs the same engine as the Qdrant server
inside this process: HNSW for dense vectors, an inverted index for sparse ones, payload indexes,
and the same Query API (prefetch + RRF). This module is the only one that imports it; its API
is not qdrant-client's and may change, so the version is pinned.

Layout on disk: ``<path>/<source>/shard/`` is an Edge shard, ``<path>/<source>/source.json`` the
source's description and ingest statistics. One process at a time may open ``<path>``.

The HNSW index is built by :meth:`EdgeStore.refresh_index`, after ingestion rather than during it;
until then new points are searched exactly (still in Rust). Edge's optimizer holds the GIL while
it runs, so the index is built in a child process while this one waits and shows progress.
Deleted points keep counting in the BM25 IDF until the next refresh vacuums them (qdrant-client
recounts at once); re-ingesting an edited file deletes a handful of chunks, so the drift is small.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

import qdrant_edge as edge
from qdrant_client import models

from tools.sparse import SparseVector
from tools.store import (
    DENSE,
    SPARSE,
    TIE_MARGIN,
    ChunkRef,
    FilterSpec,
    Hit,
    Point,
    Source,
    SourceExistsError,
    SourceNotFoundError,
    StoreError,
    StoreLockedError,
    build_filter,
    check_source_name,
    missing_source_message,
    rrf_scores,
    source_from_metadata,
    source_metadata,
    stable_top,
)

__all__ = ["EDGE_VERSION", "EdgeStore"]

EDGE_VERSION = "0.9.0"
"""The qdrant-edge-py release this module is written and tested against."""

_META_FILE = "source.json"
_SHARD_DIR = "shard"
_INDEXED_FIELDS = ("source", "doc_id", "path")
_PAGE = 1000

Progress = Callable[[str, int, int], None]


class EdgeStore:
    """:class:`~tools.store.VectorStore` on Qdrant Edge shards in a folder, one per source.

    Args:
        path: Folder of the store (created if missing).
        hnsw_ef: Candidates HNSW explores per query; higher is more exact and slower.
        index_threshold: :meth:`refresh_index` builds the HNSW index once this many dense vectors
            are not yet in it; below, exact search over them is fast enough.
        batch_size: Points per upsert call.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        hnsw_ef: int = 128,
        index_threshold: int = 20_000,
        batch_size: int = 1024,
    ) -> None:
        self.path = Path(path).expanduser()
        if self.path.exists() and not self.path.is_dir():
            msg = f"the store path {self.path} is a file; give a folder (it is created if missing)"
            raise StoreError(msg)
        self.path.mkdir(parents=True, exist_ok=True)
        self.location = str(self.path)
        self.hnsw_ef = hnsw_ef
        self.index_threshold = index_threshold
        self.batch_size = batch_size
        self.is_local = True
        self._lock = _lock_folder(self.path)
        self._open_lock = threading.Lock()
        self._shards: dict[str, edge.EdgeShard] = {}

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
        if (self.path / name / _META_FILE).is_file():
            existing = self.get_source(name)
            if existing.dimension != dimension or existing.embedding_model != embedding_model:
                msg = (
                    f"source {name!r} holds {existing.dimension}-d vectors of "
                    f"{existing.embedding_model!r}, not {dimension}-d of {embedding_model!r}; "
                    f"ingest into another source or delete this one first (arag sources --delete {name})"
                )
                raise SourceExistsError(msg)
            return existing
        folder = self.path / name
        if folder.exists():  # a crash between creating the shard and writing the metadata
            shutil.rmtree(folder)
        folder.mkdir()
        config = edge.EdgeConfig(
            vectors={DENSE: edge.EdgeVectorParams(size=dimension, distance=edge.Distance.Cosine)},
            sparse_vectors={SPARSE: edge.EdgeSparseVectorParams(modifier=edge.Modifier.Idf)},
            hnsw_config=edge.HnswIndexConfig(m=16, ef_construct=100, full_scan_threshold=10_000),
            # Index every segment when refresh_index runs (it decides when), and drop deleted
            # points then too: until they are vacuumed they still count in the BM25 IDF.
            optimizers=edge.EdgeOptimizersConfig(
                indexing_threshold=1, deleted_threshold=0.01, vacuum_min_vector_number=1
            ),
        )
        shard = edge.EdgeShard.create(str(folder / _SHARD_DIR), config)
        for field_name in _INDEXED_FIELDS:
            shard.update(edge.UpdateOperation.create_field_index(field_name, edge.PayloadSchemaType.Keyword))
        self._shards[name] = shard
        meta = source_metadata(description, dimension, embedding_model, bm25_avgdl)
        _write_json(folder / _META_FILE, meta)  # last: a source exists once its metadata does
        return source_from_metadata(name, meta)

    def get_source(self, name: str) -> Source:
        """The source called ``name``; raises :class:`~tools.store.SourceNotFoundError`."""
        meta_path = self.path / name / _META_FILE
        if not meta_path.is_file():
            raise SourceNotFoundError(missing_source_message(name, self._source_names()))
        return source_from_metadata(name, json.loads(meta_path.read_text(encoding="utf-8")))

    def list_sources(self, *, with_counts: bool = False) -> list[Source]:
        """Every source in the store, by name."""
        sources = [self.get_source(name) for name in self._source_names()]
        if with_counts:
            sources = [replace(s, points=self.count(s.name)) for s in sources]
        return sources

    def set_description(self, name: str, description: str) -> None:
        """Replace a source's description."""
        self.get_source(name)
        meta_path = self.path / name / _META_FILE
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        meta["description"] = description
        _write_json(meta_path, meta)

    def delete_source(self, name: str) -> None:
        """Drop a source and all its chunks."""
        self.get_source(name)
        shard = self._shards.pop(name, None)
        if shard is not None:
            shard.close()
        (self.path / name / _META_FILE).unlink()  # first: a half-deleted source is no source
        shutil.rmtree(self.path / name)

    def _source_names(self) -> list[str]:
        return sorted(p.parent.name for p in self.path.glob(f"*/{_META_FILE}"))

    def _shard(self, name: str) -> edge.EdgeShard:
        shard = self._shards.get(name)
        if shard is not None:
            return shard
        with self._open_lock:  # threads racing to open one shard would each take its file lock
            shard = self._shards.get(name)
            if shard is not None:
                return shard
            self.get_source(name)
            try:
                shard = edge.EdgeShard.load(str(self.path / name / _SHARD_DIR))
            except Exception as exc:
                if "WouldBlock" in str(exc):
                    raise StoreLockedError(_locked_message(self.path)) from None
                raise
            self._shards[name] = shard
        return shard

    # -- points --------------------------------------------------------------------------

    def upsert(self, source: str, points: Sequence[Point]) -> None:
        """Insert or replace points (same id = same chunk)."""
        shard = self._shard(source)
        for start in range(0, len(points), self.batch_size):
            batch = [
                edge.Point(
                    p.id,
                    {DENSE: list(p.dense), SPARSE: edge.SparseVector(p.sparse.indices, p.sparse.values)},
                    p.payload,
                )
                for p in points[start : start + self.batch_size]
            ]
            shard.update(edge.UpdateOperation.upsert_points(batch))

    def existing_ids(self, source: str, ids: Sequence[str]) -> set[str]:
        """The subset of ``ids`` already stored."""
        shard = self._shard(source)
        found: set[str] = set()
        for start in range(0, len(ids), _PAGE):
            records = shard.retrieve(list(ids[start : start + _PAGE]), with_payload=False, with_vector=False)
            found.update(str(r.id) for r in records)
        return found

    def chunk_refs(self, source: str, doc_ids: Sequence[str]) -> list[ChunkRef]:
        """Id, document id and path of every stored chunk of the given documents."""
        refs: list[ChunkRef] = []
        unique = sorted(set(doc_ids))
        for start in range(0, len(unique), _PAGE):
            where = to_edge_filter({"doc_id": unique[start : start + _PAGE]})
            for record in self._scroll(source, where, payload=["doc_id", "path"], vectors=False):
                payload = record.payload or {}
                refs.append(ChunkRef(str(record.id), str(payload.get("doc_id")), str(payload.get("path"))))
        return refs

    def delete(self, source: str, *, ids: Sequence[str] | None = None, where: FilterSpec | None = None) -> None:
        """Delete points by id or by payload filter (exactly one of the two)."""
        if (ids is None) == (where is None):
            msg = "delete takes ids or where, not both and not neither"
            raise ValueError(msg)
        shard = self._shard(source)
        if ids is not None:
            if ids:
                shard.update(edge.UpdateOperation.delete_points(list(ids)))
            return
        built = to_edge_filter(where)
        assert built is not None
        shard.update(edge.UpdateOperation.delete_points_by_filter(built))

    def count(self, source: str, where: FilterSpec | None = None) -> int:
        """Exact number of points, optionally matching a filter."""
        return int(self._shard(source).count(edge.CountRequest(exact=True, filter=to_edge_filter(where))))

    def scroll(self, source: str, where: FilterSpec | None = None) -> Iterator[Hit]:
        """Every point (optionally matching a filter) with its payload, in id order."""
        records = self._scroll(source, to_edge_filter(where), payload=True, vectors=False)
        return (Hit(id=str(r.id), score=0.0, payload=dict(r.payload or {})) for r in records)

    def points(self, source: str) -> Iterator[Point]:
        """Every point with both vectors and its payload (for export and migration)."""
        for record in self._scroll(source, None, payload=True, vectors=True):
            vectors: dict[str, Any] = record.vector  # type: ignore[assignment]
            sparse = vectors.get(SPARSE)
            yield Point(
                str(record.id),
                list(vectors[DENSE]),
                SparseVector(list(sparse.indices), list(sparse.values)) if sparse else SparseVector([], []),
                dict(record.payload or {}),
            )

    def _scroll(
        self, source: str, where: edge.Filter | None, *, payload: bool | list[str], vectors: bool
    ) -> Iterator[edge.Record]:
        shard = self._shard(source)
        offset: Any = None
        while True:
            request = edge.ScrollRequest(
                offset=offset, limit=_PAGE, filter=where, with_payload=payload, with_vector=vectors
            )
            records, offset = shard.scroll(request)
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
        """Dense, sparse, or hybrid search of one source (see :meth:`tools.store.VectorStore.search`).

        ``exact`` skips the HNSW index: brute force over every vector, for congruence checks.
        """
        if dense is None and sparse is None:
            msg = "search needs a dense vector, a sparse vector, or both"
            raise ValueError(msg)
        if sparse is not None and not sparse.indices:
            sparse = None  # a query of stopwords only: BM25 has nothing to match
            if dense is None:
                return []
        shard = self._shard(source)
        params = edge.SearchParams(exact=True) if exact else edge.SearchParams(hnsw_ef=self.hnsw_ef)
        dense_query = edge.Query.Nearest(list(dense), using=DENSE) if dense is not None else None
        sparse_query = (
            edge.Query.Nearest(edge.SparseVector(sparse.indices, sparse.values), using=SPARSE)
            if sparse is not None
            else None
        )
        filter_ = to_edge_filter(where)
        # Ids and scores first (hybrid: both rankings in one batch, fused here), ties ordered by id,
        # then the payloads of the kept points: the same hits every run (see stable_top).
        depth = max(limit, prefetch_limit or limit) if dense_query is not None and sparse_query is not None else limit
        requests = [
            edge.QueryRequest(limit=depth + TIE_MARGIN, query=q, filter=filter_, params=params, with_payload=False)
            for q in (dense_query, sparse_query)
            if q is not None
        ]
        rankings = [
            stable_top(((str(p.id), float(p.score)) for p in points), depth)
            for points in shard.query_batch(edge.QueryBatchRequest(requests))
        ]
        kept = rrf_scores(rankings, rrf_k)[:limit] if len(rankings) == 2 else rankings[0]
        records = shard.retrieve([i for i, _ in kept], with_payload=True, with_vector=False) if kept else []
        payloads = {str(r.id): dict(r.payload or {}) for r in records}
        return [Hit(id=i, score=score, payload=payloads.get(i, {})) for i, score in kept]

    # -- index ---------------------------------------------------------------------------

    def pending_index(self, source: str) -> int:
        """Dense vectors not yet in the HNSW index (searched exactly until it is rebuilt)."""
        info = self._shard(source).info()
        # indexed_vectors_count counts sparse vectors (always indexed) and HNSW-indexed dense ones.
        return max(0, 2 * int(info.points_count) - int(info.indexed_vectors_count))

    def refresh_index(self, source: str, *, force: bool = False, progress: Progress | None = None) -> bool:
        """Build the HNSW index over vectors added since the last build.

        Runs when at least ``index_threshold`` vectors are waiting (or ``force``). Edge's optimizer
        holds the GIL, so it runs in a child process on the closed shard while this process
        waits, reporting ``("index", 0, 1)`` then ``("index", 1, 1)``. Returns whether it ran.
        """
        pending = self.pending_index(source)
        if pending == 0 or (pending < self.index_threshold and not force):
            return False
        if progress:
            progress("index", 0, 1)
        shard = self._shards.pop(source)
        shard.flush()
        shard.close()
        script = textwrap.dedent(
            """
            import sys
            import qdrant_edge
            shard = qdrant_edge.EdgeShard.load(sys.argv[1])
            shard.optimize()
            shard.close()
            """
        )
        child = subprocess.Popen(  # noqa: S603 - our own interpreter and script
            [sys.executable, "-c", script, str(self.path / source / _SHARD_DIR)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        _, errors = child.communicate()
        if child.returncode != 0:
            msg = f"building the index of {source!r} failed: {errors.strip().splitlines()[-1:] or child.returncode}"
            raise StoreError(msg)
        if progress:
            progress("index", 1, 1)
        return True

    def close(self) -> None:
        """Flush and close every shard, and release the folder."""
        for shard in self._shards.values():
            shard.flush()
            shard.close()
        self._shards.clear()
        if not self._lock.closed:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()

    def __enter__(self) -> EdgeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def to_edge_filter(where: FilterSpec | None) -> edge.Filter | None:
    """A :data:`~tools.store.FilterSpec` as an Edge filter (dicts, and the common qdrant-client
    conditions: match value/any/except, ranges, is-empty, is-null, has-id, nested filters)."""
    built = build_filter(where)
    return None if built is None else _convert_filter(built)


def _convert_filter(f: models.Filter) -> edge.Filter:
    def many(conditions: Any) -> list[Any] | None:
        if conditions is None:
            return None
        items = conditions if isinstance(conditions, list) else [conditions]
        return [_convert_condition(c) for c in items]

    if f.min_should is not None:
        msg = "min_should filters are not supported by the embedded engine; use must/should/must_not"
        raise ValueError(msg)
    return edge.Filter(must=many(f.must), should=many(f.should), must_not=many(f.must_not))


def _convert_condition(c: Any) -> Any:
    if isinstance(c, models.Filter):
        return _convert_filter(c)
    if isinstance(c, models.HasIdCondition):
        return edge.HasIdCondition({str(i) for i in c.has_id})
    if isinstance(c, models.IsEmptyCondition):
        return edge.IsEmptyCondition(c.is_empty.key)
    if isinstance(c, models.IsNullCondition):
        return edge.IsNullCondition(c.is_null.key)
    if isinstance(c, models.FieldCondition):
        if c.match is not None:
            return edge.FieldCondition(key=c.key, match=_convert_match(c.match))
        if isinstance(c.range, models.Range):
            r = c.range
            return edge.FieldCondition(key=c.key, range=edge.RangeFloat(gt=r.gt, gte=r.gte, lt=r.lt, lte=r.lte))
    msg = f"filter condition {type(c).__name__} is not supported by the embedded engine; use a dict filter"
    raise ValueError(msg)


def _convert_match(m: Any) -> Any:
    if isinstance(m, models.MatchValue):
        return edge.MatchValue(m.value)
    if isinstance(m, models.MatchAny):
        return edge.MatchAny(list(m.any))  # type: ignore[arg-type]
    if isinstance(m, models.MatchExcept):
        return edge.MatchExcept(list(m.except_))  # type: ignore[arg-type]
    if isinstance(m, models.MatchText):
        return edge.MatchText(m.text)
    msg = f"match {type(m).__name__} is not supported by the embedded engine"
    raise ValueError(msg)


def _lock_folder(path: Path) -> IO[str]:
    handle = (path / ".lock").open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StoreLockedError(_locked_message(path)) from None
    return handle


def _locked_message(path: Path) -> str:
    return (
        f"the store at {path} is open in another process (an embedded store allows one process at a "
        "time); close that process, or run a Qdrant server and set ARAG_QDRANT_URL for concurrent access"
    )


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    tmp.replace(path)
