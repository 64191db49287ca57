"""The embedded store on Qdrant Edge: Qdrant's Rust engine in-process, behind :class:`VectorStore`.

qdrant-client's local mode is exact brute force in Python (a sparse query over 10k chunks takes
~180 ms); Qdrant Edge (PyPI ``qdrant-edge-py``, beta) runs the same engine as the Qdrant server
inside this process: HNSW for dense vectors, an inverted index for sparse ones, payload indexes,
and the same Query API. This module is the only one that imports it; its API is not
qdrant-client's and may change, so the version is pinned. :class:`EdgeStore` is the shared store
semantics (:class:`~tools.store.VectorStore`) over :class:`EdgeEngine`, which only stores and finds.

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
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import qdrant_edge as edge

from tools.sparse import SparseVector
from tools.store._core import Page, Query, Record, Scored, VectorStore
from tools.store._types import (
    DENSE,
    SPARSE,
    FilterSpec,
    Point,
    Progress,
    SourceNotFoundError,
    StoreError,
    StoreLockedError,
    build_filter,
    locked_message,
    store_folder,
)

if TYPE_CHECKING:  # loaded with the first filter: a plain search does not pay for qdrant-client
    from qdrant_client import models

__all__ = ["EDGE_VERSION", "EdgeEngine", "EdgeStore"]

EDGE_VERSION = "0.9.0"
"""The qdrant-edge-py release this module is written and tested against."""

_META_FILE = "source.json"
_SHARD_DIR = "shard"


class EdgeStore(VectorStore):
    """:class:`~tools.store.VectorStore` on Qdrant Edge shards in a folder, one per source.

    Args:
        path: Folder of the store (created if missing).
        hnsw_ef: Candidates HNSW explores per query; higher is more exact and slower. 256: the
            smallest of 128/256/512 whose recall@10 against exact search reached 0.98 for
            SciFact's train queries at a million chunks (``evals/bench_store.py --hnsw-ef``).
        index_threshold: :meth:`refresh_index` builds the HNSW index once this many dense vectors
            are not yet in it; below, exact search over them is fast enough.
        batch_size: Points per upsert call.
        hnsw_m, hnsw_ef_construct: The HNSW graph of the sources this store creates (links per
            node, candidates while building; Qdrant's defaults 16 and 100). Denser graphs find
            more true neighbours at the same ``hnsw_ef`` and take longer to build.
    """

    _engine: EdgeEngine

    def __init__(
        self,
        path: str | Path,
        *,
        hnsw_ef: int = 256,
        index_threshold: int = 20_000,
        batch_size: int = 1024,
        hnsw_m: int = 16,
        hnsw_ef_construct: int = 100,
    ) -> None:
        self.path = store_folder(path)
        self.location = str(self.path)
        self.is_local = True
        self.index_threshold = index_threshold
        engine = EdgeEngine(self.path, hnsw_ef=hnsw_ef, hnsw_m=hnsw_m, hnsw_ef_construct=hnsw_ef_construct)
        super().__init__(engine, batch_size=batch_size)

    @property
    def hnsw_ef(self) -> int:
        """Candidates HNSW explores per query (``exact`` searches ignore it)."""
        return self._engine.hnsw_ef

    @hnsw_ef.setter
    def hnsw_ef(self, value: int) -> None:
        self._engine.hnsw_ef = value

    def pending_index(self, source: str) -> int:
        """Dense vectors not yet in the HNSW index (searched exactly until it is rebuilt)."""
        with self._existing(source):
            return self._engine.pending_index(source)

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
        self._engine.optimize(source)
        if progress:
            progress("index", 1, 1)
        return True


class EdgeEngine:
    """The Qdrant Edge engine of :class:`EdgeStore`: one shard and one metadata file per source.

    Holds the folder's lock from construction to :meth:`close`; shards open on first use.

    Args:
        path: The store's folder (it must exist).
        hnsw_ef: Candidates HNSW explores per approximate query.
        hnsw_m, hnsw_ef_construct: The HNSW graph of the shards it creates.
    """

    not_found: tuple[type[Exception], ...] = (SourceNotFoundError,)
    """Raised by :meth:`_shard` for a folder without metadata (the store words the message)."""
    match_any_limit: int | None = None
    """Edge's keyword index answers match-any filters of any size."""

    def __init__(self, path: Path, *, hnsw_ef: int, hnsw_m: int = 16, hnsw_ef_construct: int = 100) -> None:
        self.path = path
        self.hnsw_ef = hnsw_ef
        self.hnsw_m = hnsw_m
        self.hnsw_ef_construct = hnsw_ef_construct
        self._lock = _lock_folder(path)
        self._open_lock = threading.Lock()
        self._shards: dict[str, edge.EdgeShard] = {}
        self._written: set[str] = set()
        """Sources whose shard this engine has changed: :meth:`close` flushes only these. A flush
        msyncs and fsyncs every file of the shard even when nothing changed (a few ms on an idle
        disk, up to 0.1 s on a busy one), and a shard that was only read (``arag search``,
        ``arag sources``) has nothing to flush."""

    # -- metadata --

    def exists(self, name: str) -> bool:
        return (self.path / name / _META_FILE).is_file()  # a source exists once its metadata does

    def sources(self) -> dict[str, dict[str, Any]]:
        return {p.parent.name: _read_json(p) for p in sorted(self.path.glob(f"*/{_META_FILE}"))}

    def metadata(self, name: str) -> dict[str, Any] | None:
        return _read_json(self.path / name / _META_FILE) if self.exists(name) else None

    def create(self, name: str, *, dimension: int, metadata: dict[str, Any], indexed: Sequence[str]) -> None:
        folder = self.path / name
        if folder.exists():  # a crash between creating the shard and writing the metadata
            shutil.rmtree(folder)
        folder.mkdir()
        config = edge.EdgeConfig(
            vectors={DENSE: edge.EdgeVectorParams(size=dimension, distance=edge.Distance.Cosine)},
            sparse_vectors={SPARSE: edge.EdgeSparseVectorParams(modifier=edge.Modifier.Idf)},
            hnsw_config=edge.HnswIndexConfig(
                m=self.hnsw_m, ef_construct=self.hnsw_ef_construct, full_scan_threshold=10_000
            ),
            # Index every segment when refresh_index runs (it decides when), and drop deleted
            # points then too: until they are vacuumed they still count in the BM25 IDF.
            optimizers=edge.EdgeOptimizersConfig(
                indexing_threshold=1, deleted_threshold=0.01, vacuum_min_vector_number=1
            ),
        )
        shard = edge.EdgeShard.create(str(folder / _SHARD_DIR), config)
        for field_name in indexed:
            shard.update(edge.UpdateOperation.create_field_index(field_name, edge.PayloadSchemaType.Keyword))
        self._shards[name] = shard
        self._written.add(name)
        _write_json(folder / _META_FILE, metadata)  # last: a source exists once its metadata does

    def update_metadata(self, name: str, changes: dict[str, Any]) -> None:
        meta_path = self.path / name / _META_FILE
        _write_json(meta_path, {**_read_json(meta_path), **changes})

    def drop(self, name: str) -> None:
        shard = self._shards.pop(name, None)
        self._written.discard(name)
        if shard is not None:
            shard.close()
        (self.path / name / _META_FILE).unlink()  # first: a half-deleted source is no source
        shutil.rmtree(self.path / name)

    # -- points --

    def upsert(self, name: str, points: Sequence[Point]) -> None:
        batch = [edge.Point(p.id, {DENSE: _vector(p.dense), SPARSE: _vector(p.sparse)}, p.payload) for p in points]
        shard = self._shard(name)
        self._written.add(name)  # before the update: one that fails half-way is flushed too
        shard.update(edge.UpdateOperation.upsert_points(batch))

    def retrieve(self, name: str, ids: Sequence[str], *, payload: bool) -> Sequence[Record]:
        return self._shard(name).retrieve(list(ids), with_payload=payload, with_vector=False)

    def scroll(self, name: str, page: Page) -> tuple[Sequence[Record], Any]:
        request = edge.ScrollRequest(
            offset=page.offset,
            limit=page.limit,
            filter=_native(page.where),
            with_payload=page.payload,
            with_vector=page.vectors,
        )
        return self._shard(name).scroll(request)

    def count(self, name: str, where: models.Filter | None) -> int:
        return int(self._shard(name).count(edge.CountRequest(exact=True, filter=_native(where))))

    def delete(self, name: str, selector: Sequence[str] | models.Filter) -> None:
        from qdrant_client import models

        if isinstance(selector, models.Filter):
            operation = edge.UpdateOperation.delete_points_by_filter(_convert_filter(selector))
        else:
            operation = edge.UpdateOperation.delete_points(list(selector))
        shard = self._shard(name)
        self._written.add(name)
        shard.update(operation)

    def query(self, name: str, query: Query) -> list[Sequence[Scored]]:
        params = edge.SearchParams(exact=True) if query.exact else edge.SearchParams(hnsw_ef=self.hnsw_ef)
        where = _native(query.where)
        requests = [
            edge.QueryRequest(
                limit=query.limit,
                query=edge.Query.Nearest(_vector(vector), using=using),
                filter=where,
                params=params,
                with_payload=False,
            )
            for using, vector in query.vectors()
        ]
        return list(self._shard(name).query_batch(edge.QueryBatchRequest(requests)))

    def _shard(self, name: str) -> edge.EdgeShard:
        shard = self._shards.get(name)
        if shard is not None:
            return shard
        with self._open_lock:  # threads racing to open one shard would each take its file lock
            shard = self._shards.get(name)
            if shard is not None:
                return shard
            if not self.exists(name):
                raise SourceNotFoundError(f"source {name!r} does not exist")
            try:
                shard = edge.EdgeShard.load(str(self.path / name / _SHARD_DIR))
            except Exception as exc:
                if "WouldBlock" in str(exc):
                    raise StoreLockedError(locked_message(self.path)) from None
                raise
            self._shards[name] = shard
        return shard

    # -- index and lifetime --

    def pending_index(self, name: str) -> int:
        """Dense vectors not yet in the HNSW index."""
        info = self._shard(name).info()
        # indexed_vectors_count counts sparse vectors (always indexed) and HNSW-indexed dense ones.
        return max(0, 2 * int(info.points_count) - int(info.indexed_vectors_count))

    def optimize(self, name: str) -> None:
        """Build the shard's index in a child process (Edge's optimizer holds the GIL), which dies
        with this one (a killed ingest or ``arag store optimize`` leaves no build running)."""
        shard = self._shard(name)
        del self._shards[name]
        self._written.discard(name)
        shard.flush()
        shard.close()
        script = textwrap.dedent(
            """
            import ctypes, signal, sys
            try:  # Linux: die with the parent, rather than build an index nobody waits for
                ctypes.CDLL(None).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
            except (AttributeError, OSError):
                pass
            import qdrant_edge
            shard = qdrant_edge.EdgeShard.load(sys.argv[1])
            shard.optimize()
            shard.close()
            """
        )
        child = subprocess.Popen(  # noqa: S603 - our own interpreter and script
            [sys.executable, "-c", script, str(self.path / name / _SHARD_DIR)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        _, errors = child.communicate()
        if child.returncode != 0:
            msg = f"building the index of {name!r} failed: {errors.strip().splitlines()[-1:] or child.returncode}"
            raise StoreError(msg)

    def close(self) -> None:
        """Flush every shard written to, close every shard, and release the folder."""
        for name, shard in self._shards.items():
            if name in self._written:
                shard.flush()
            shard.close()
        self._shards.clear()
        self._written.clear()
        if not self._lock.closed:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()


def _vector(vector: Sequence[float] | SparseVector) -> list[float] | edge.SparseVector:
    if isinstance(vector, SparseVector):
        return edge.SparseVector(vector.indices, vector.values)
    return list(vector)


def _native(where: models.Filter | None) -> edge.Filter | None:
    return None if where is None else _convert_filter(where)


def to_edge_filter(where: FilterSpec | None) -> edge.Filter | None:
    """A :data:`~tools.store.FilterSpec` as an Edge filter (dicts, and the common qdrant-client
    conditions: match value/any/except, ranges, is-empty, is-null, has-id, nested filters)."""
    return _native(build_filter(where))


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
    from qdrant_client import models

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
    from qdrant_client import models

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
        raise StoreLockedError(locked_message(path)) from None
    return handle


def _read_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    tmp.replace(path)
