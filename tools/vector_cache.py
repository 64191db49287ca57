"""The embedding cache's storage: vectors by a hash of (model identity, text) in one SQLite file.

Light on purpose (sqlite3; numpy only where arrays are asked for): ``arag search`` looks a
query's vector up here before anything that can compute one is loaded. :class:`tools.embeddings.CachedEmbeddings`
is the LangChain ``Embeddings`` over it.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import threading
from array import array
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where arrays are made: a cached query vector needs no numpy (0.1 s to import)
    import numpy as np

__all__ = ["LOCAL_MODEL_NAME", "CachedQuery", "VectorCache", "local_model_name", "model_identity"]

LOCAL_MODEL_NAME = "all-MiniLM-L6-v2"


def local_model_name(backend: str) -> str:
    """The identity of the bundled model run by ``backend``: ``all-MiniLM-L6-v2`` for torch (the
    name stores had before the other backends), ``all-MiniLM-L6-v2@<backend>`` for the others."""
    return LOCAL_MODEL_NAME if backend == "torch" else f"{LOCAL_MODEL_NAME}@{backend}"


def model_identity(embeddings: Any) -> str:
    """A name for the model behind ``embeddings`` (through a cache, the cached model's); vectors of
    different identities never mix."""
    inner = embeddings.inner if getattr(embeddings, "caches_inner", False) else embeddings
    name = getattr(inner, "model_name", None) or getattr(inner, "model", None)
    return str(name) if name else type(inner).__name__


class _Connections:
    """At most ``size`` SQLite connections to one file, shared by any number of threads.

    A thread borrows a connection for one statement or transaction and gives it back, so
    short-lived threads (LangGraph runs each step in fresh worker threads) reuse a few open
    connections instead of leaving one each for the garbage collector: a WAL connection holds
    three open files. :meth:`close` closes them all; the next use opens new ones.
    """

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._generation = 0  # bumped by close(): connections from before are closed when returned

    @contextlib.contextmanager
    def borrow(self) -> Iterator[sqlite3.Connection]:
        with self._slots:
            with self._lock:
                db = self._idle.pop() if self._idle else None
                generation = self._generation
            if db is None:
                db = self._open()
            try:
                yield db
            finally:
                with self._lock:
                    keep = generation == self._generation
                    if keep:
                        self._idle.append(db)
                if not keep:
                    db.close()

    def _open(self) -> sqlite3.Connection:
        # check_same_thread=False: a connection serves one thread at a time, but not always the same one.
        db = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            db.close()
            raise
        return db

    @property
    def open_idle(self) -> int:
        """Connections open and not lent out."""
        with self._lock:
            return len(self._idle)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
            self._generation += 1
        for db in idle:
            db.close()


class VectorCache:
    """Float32 vectors keyed by a hash of (namespace, text), in one SQLite file (safe across
    processes; WAL). At most ``max_connections`` connections are open at once, whatever the
    number of threads; :meth:`close` closes them and the next use opens new ones."""

    def __init__(self, path: str | Path, namespace: str, *, max_connections: int = 4) -> None:
        if max_connections < 1:
            msg = f"max_connections must be >= 1, got {max_connections}"
            raise ValueError(msg)
        self.path = Path(path)
        self.namespace = namespace
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._connections = _Connections(self.path, max_connections)
        with self._connections.borrow() as db, db:
            db.execute("CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vec BLOB NOT NULL)")

    def key(self, text: str) -> bytes:
        return hashlib.sha256(f"{self.namespace}\x00{text}".encode()).digest()[:16]

    def lookup(self, keys: list[bytes]) -> dict[bytes, np.ndarray]:
        """The cached vectors among ``keys``."""
        import numpy as np

        return {key: np.frombuffer(blob, dtype=np.float32) for key, blob in self._blobs(keys).items()}

    def lookup_list(self, key: bytes) -> list[float] | None:
        """The cached vector of ``key`` as a list (what ``embed_query`` returns), without numpy."""
        blob = self._blobs([key]).get(key)
        return None if blob is None else array("f", blob).tolist()

    def _blobs(self, keys: list[bytes]) -> dict[bytes, bytes]:
        """The stored float32 bytes of the ``keys`` that are cached."""
        found: dict[bytes, bytes] = {}
        unique = list(dict.fromkeys(keys))
        with self._connections.borrow() as db:
            for start in range(0, len(unique), 500):
                part = unique[start : start + 500]
                marks = ",".join("?" * len(part))
                rows = db.execute(f"SELECT key, vec FROM vectors WHERE key IN ({marks})", part)  # noqa: S608 - only placeholders
                for key, blob in rows:
                    found[bytes(key)] = blob
        return found

    def store(self, items: list[tuple[bytes, np.ndarray]]) -> None:
        import numpy as np

        with self._connections.borrow() as db, db:
            db.executemany(
                "INSERT OR REPLACE INTO vectors (key, vec) VALUES (?, ?)",
                [(k, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for k, v in items],
            )

    def clear(self) -> None:
        """Forget every cached vector of every namespace."""
        with self._connections.borrow() as db, db:
            db.execute("DELETE FROM vectors")

    def close(self) -> None:
        """Close the SQLite connections (the cache stays usable: it reopens on use)."""
        self._connections.close()


class CachedQuery:
    """A query embedder that tries the cache first and builds the model only on a miss
    (``arag search`` with a query seen before loads no model, not even LangChain's base classes).

    Args:
        cache: The vector cache, whose namespace is the model's identity.
        build: Makes the real embeddings (called once, on the first miss).
    """

    def __init__(self, cache: VectorCache, build: Callable[[], Any]) -> None:
        self.cache = cache
        self.model_name = cache.namespace
        self._build = build
        self._model: Any = None

    def embed_query(self, text: str) -> list[float]:
        found = self.cache.lookup_list(self.cache.key(text))
        if found is None:
            if self._model is None:
                self._model = self._build()
            return self._model.embed_query(text)  # type: ignore[no-any-return]
        return found

    def close(self) -> None:
        self.cache.close()
        if self._model is not None and hasattr(self._model, "close"):
            self._model.close()
