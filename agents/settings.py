"""Settings: one pydantic-settings class, read from ``ARAG_*`` environment variables and ``.env``.

The fields come in groups (``settings.store``, ``settings.model``, ``settings.server``, ...), but
the variables stay flat: each field names its own variable (``settings.server.port`` is
``ARAG_SERVER_PORT``, ``settings.model.name`` is ``ARAG_CHAT_MODEL``), so every ``.env`` file
keeps working. Only ``agents`` reads settings; everything below receives plain arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

__all__ = [
    "EmbeddingSettings",
    "IngestSettings",
    "LimitSettings",
    "ModelSettings",
    "RetrievalSettings",
    "RlmSettings",
    "ServerSettings",
    "Settings",
    "StoreSettings",
]


class _Group(BaseModel):
    """A group of settings; each field's ``validation_alias`` is its environment variable.

    Values from the environment arrive under the variable's name, so a validation error names
    the variable (``server.ARAG_SERVER_PORT``); keyword arguments use the field's name and win.
    """

    # hide_input_in_errors: a group's input holds its secrets (API keys), and errors end up in logs.
    model_config = ConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True, hide_input_in_errors=True)

    @model_validator(mode="before")
    @classmethod
    def _arguments_win(cls, data: Any) -> Any:
        # Settings(server={"port": 0}) is merged with ARAG_SERVER_PORT from the environment;
        # the argument must win, as it does for pydantic-settings' own fields.
        if isinstance(data, dict):
            given = {env_name(field) for name, field in cls.model_fields.items() if name in data}
            data = {key: value for key, value in data.items() if key not in given}
        return data


def env_name(field: FieldInfo) -> str:
    """The environment variable of a group's field (``ARAG_SERVER_PORT``)."""
    assert isinstance(field.validation_alias, str)  # every group field declares its variable
    return field.validation_alias


def _blank_is_unset(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


class StoreSettings(_Group):
    """Where data lives: the data folder (embedded store, embedding cache, chat threads) and the
    vector store backend (Qdrant Edge in-process, qdrant-client local mode, or a Qdrant server)."""

    data_dir: Path = Field(default=Path(".arag"), validation_alias="ARAG_DATA_DIR")
    """Folder for the embedded store, the embedding cache and the chat threads."""
    backend: Literal["embedded", "local", "server"] | None = Field(default=None, validation_alias="ARAG_STORE_BACKEND")
    """``embedded``: Qdrant Edge in-process (``<data_dir>/edge``); ``local``: qdrant-client's
    pure-Python local mode (``<data_dir>/qdrant``); ``server``: the Qdrant at ``ARAG_QDRANT_URL``.
    Default: ``server`` when a URL is set, else ``embedded`` (see :attr:`effective_backend`)."""
    qdrant_url: str | None = Field(default=None, validation_alias="ARAG_QDRANT_URL")
    """Qdrant server URL (``http://host:6333``); use it for concurrent access or large corpora."""
    qdrant_api_key: SecretStr | None = Field(default=None, validation_alias="ARAG_QDRANT_API_KEY")
    """API key of the Qdrant server."""
    qdrant_shards: int | None = Field(default=None, ge=1, validation_alias="ARAG_QDRANT_SHARDS")
    """Qdrant cluster: shards of each collection (source) created; default: the server's (one per
    node in a cluster). Fixed once a collection exists."""
    qdrant_replication: int | None = Field(default=None, ge=1, validation_alias="ARAG_QDRANT_REPLICATION")
    """Qdrant cluster: copies of each shard (the server's default: 1, no copy)."""
    qdrant_write_consistency: int | None = Field(default=None, ge=1, validation_alias="ARAG_QDRANT_WRITE_CONSISTENCY")
    """Qdrant cluster: replicas that must apply a write before it is acknowledged; set it to the
    replication factor so an ingest's reads see its own writes (``docs/deployment.md``)."""
    qdrant_path: Path | None = Field(default=None, validation_alias="ARAG_QDRANT_PATH")
    """Local-mode (qdrant-client) store folder; defaults to ``<data_dir>/qdrant``."""
    edge_path: Path | None = Field(default=None, validation_alias="ARAG_EDGE_PATH")
    """Embedded (Edge) store folder; defaults to ``<data_dir>/edge``."""
    hnsw_ef: int = Field(default=256, ge=1, validation_alias="ARAG_HNSW_EF")
    """Embedded store: candidates HNSW explores per query (higher: more exact, slower)."""
    hnsw_m: int = Field(default=16, ge=4, validation_alias="ARAG_HNSW_M")
    """Embedded store: links per node of the HNSW graph of sources created from now on."""
    hnsw_ef_construct: int = Field(default=100, ge=4, validation_alias="ARAG_HNSW_EF_CONSTRUCT")
    """Embedded store: candidates per node while building the HNSW graph of new sources."""
    index_threshold: int = Field(default=20_000, ge=0, validation_alias="ARAG_INDEX_THRESHOLD")
    """Embedded store: build the HNSW index after an ingest once this many vectors await it."""
    threads_path: Path | None = Field(default=None, validation_alias="ARAG_THREADS_PATH")
    """SQLite file of chat threads (the LangGraph checkpointer); defaults to ``<data_dir>/threads.sqlite``."""
    threads_url: SecretStr | None = Field(default=None, validation_alias="ARAG_THREADS_URL")
    """Postgres for chat threads instead of SQLite (``postgresql://user:password@host:5432/db``):
    LangGraph's Postgres checkpointer over a connection pool, shared by every ``arag serve``
    process and replica pointed at it (:mod:`agents._thread_store`). A secret: it may hold a password."""
    threads_pool_size: int = Field(default=8, ge=1, validation_alias="ARAG_THREADS_POOL_SIZE")
    """Postgres: connections per process (the pool's maximum; it keeps one open when idle)."""
    threads_timeout: float = Field(default=5.0, gt=0, validation_alias="ARAG_THREADS_TIMEOUT")
    """Postgres: seconds to wait for a connection (connecting, or a free one from the pool); past
    it a request that needs its thread gets a 503 (``thread_store_unavailable``)."""

    _url_blank_is_unset = field_validator("qdrant_url", "threads_url", mode="before")(_blank_is_unset)

    @model_validator(mode="after")
    def _check(self) -> StoreSettings:
        if self.backend == "server" and not self.qdrant_url:
            msg = "ARAG_STORE_BACKEND=server needs ARAG_QDRANT_URL (e.g. http://localhost:6333)"
            raise ValueError(msg)
        if self.qdrant_url and not self.qdrant_url.startswith(("http://", "https://")):
            msg = f"ARAG_QDRANT_URL must start with http:// or https://, got {self.qdrant_url!r}"
            raise ValueError(msg)
        if self.qdrant_write_consistency is not None and self.qdrant_write_consistency > (self.qdrant_replication or 1):
            msg = (
                f"ARAG_QDRANT_WRITE_CONSISTENCY ({self.qdrant_write_consistency}) cannot exceed "
                f"ARAG_QDRANT_REPLICATION ({self.qdrant_replication or 1}): a write cannot wait for more "
                "replicas than there are"
            )
            raise ValueError(msg)
        if self.threads_url and not self.threads_url.get_secret_value().startswith(("postgresql://", "postgres://")):
            # The value is not repeated: it may hold a password.
            msg = "ARAG_THREADS_URL must be a Postgres URL (postgresql://user:password@host:5432/db)"
            raise ValueError(msg)
        return self

    @property
    def qdrant_cluster(self) -> dict[str, int]:
        """The cluster options set, by Qdrant's names (for :class:`~tools.store.QdrantStore`)."""
        given = {
            "shard_number": self.qdrant_shards,
            "replication_factor": self.qdrant_replication,
            "write_consistency_factor": self.qdrant_write_consistency,
        }
        return {name: value for name, value in given.items() if value is not None}

    @property
    def effective_backend(self) -> Literal["embedded", "local", "server"]:
        """The backend in effect (see :attr:`backend`)."""
        if self.backend is not None:
            return self.backend
        return "server" if self.qdrant_url else "embedded"

    @property
    def location(self) -> str:
        """The server URL, or the folder of the embedded or local store."""
        if self.effective_backend == "server":
            assert self.qdrant_url is not None  # checked by the validator
            return self.qdrant_url
        if self.effective_backend == "local":
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


class EmbeddingSettings(_Group):
    """The embedding model: the bundled local one on the CPU, or an OpenAI-compatible endpoint
    (which uses :class:`ModelSettings`' base URL, key and timeout)."""

    provider: Literal["local", "openai"] = Field(default="local", validation_alias="ARAG_EMBEDDING_PROVIDER")
    """``local``: bundled all-MiniLM-L6-v2 on the CPU; ``openai``: an OpenAI-compatible endpoint."""
    model: str = Field(default="all-MiniLM-L6-v2", validation_alias="ARAG_EMBEDDING_MODEL")
    """Model name; for ``openai`` e.g. ``text-embedding-3-small`` or the name your server serves."""
    batch_size: int = Field(default=32, ge=1, validation_alias="ARAG_EMBEDDING_BATCH_SIZE")
    """Texts per forward pass (local) or request (openai)."""
    cache: bool = Field(default=True, validation_alias="ARAG_EMBEDDING_CACHE")
    """Cache embeddings on disk by content hash (``<data_dir>/cache/embeddings.sqlite``)."""
    backend: Literal["onnx", "onnx-int8", "torch"] = Field(default="onnx", validation_alias="ARAG_EMBEDDING_BACKEND")
    """How the local model runs: ``onnx`` (ONNX Runtime, fp32: torch's vectors within 2e-7; no
    torch on the query path), ``onnx-int8`` (dynamically quantised, one text per run) or ``torch``
    (sentence-transformers). Part of the model's identity: a store embedded with one backend is
    searched with the same one (another says so and names the backend that built it). The default
    is fp32 ONNX: int8 embeds 2x faster on cores with VNNI (4.7x torch) in half the memory and
    keeps SciFact's nDCG@10 (0.7208 hybrid), but on HotpotQA test the RAG agent's all-gold@10 fell
    0.012 (0.879 -> 0.867; the bar is 0.01) and its gain over one search to +0.043; set
    ``onnx-int8`` for ingest-heavy work on such cores (evals/README.md, "Embedding backends")."""
    threads: int | None = Field(default=None, ge=1, validation_alias="ARAG_EMBEDDING_THREADS")
    """Intra-op threads of the local model (ONNX Runtime or torch); default: all cores."""
    torch_threads: int | None = Field(default=None, ge=1, validation_alias="ARAG_TORCH_THREADS")
    """The older name of ``threads`` (used when ``threads`` is unset)."""
    model_cache: Path | None = Field(default=None, validation_alias="ARAG_MODEL_CACHE")
    """Folder of the exported ONNX files; default ``$XDG_CACHE_HOME/arag/models`` (``~/.cache``)."""

    @property
    def effective_threads(self) -> int | None:
        """``threads``, else the older ``torch_threads``, else ``None`` (all cores)."""
        return self.threads or self.torch_threads


class ModelSettings(_Group):
    """The chat model and its OpenAI-compatible endpoint: name, URL, key, timeout and retries.

    The URL and key also serve the ``openai`` embeddings provider; the timeout bounds every
    model, embeddings and Qdrant server request.
    """

    name: str | None = Field(default=None, validation_alias="ARAG_CHAT_MODEL")
    """Chat model name; unset means the heuristic (extractive) strategies, no model calls."""
    base_url: str | None = Field(default=None, validation_alias="ARAG_OPENAI_BASE_URL")
    """Base URL of an OpenAI-compatible server (vLLM, Ollama, llama.cpp, LM Studio, ...)."""
    api_key: SecretStr | None = Field(default=None, validation_alias="ARAG_OPENAI_API_KEY")
    """API key for OpenAI or the compatible server."""
    request_timeout: float = Field(default=60.0, gt=0, validation_alias="ARAG_REQUEST_TIMEOUT")
    """Seconds before a model or embeddings request times out."""
    max_attempts: int = Field(default=4, ge=1, validation_alias="ARAG_MODEL_MAX_ATTEMPTS")
    """Attempts per model call on transient faults (429, 5xx, timeouts), the first included."""
    max_output_tokens: int = Field(default=1024, ge=1, validation_alias="ARAG_MAX_OUTPUT_TOKENS")
    """Cap on the tokens of one model reply, sent as both ``max_tokens`` and
    ``max_completion_tokens`` (servers honour one or the other; llama.cpp ignores the second, and
    without a cap it generates until its context is full)."""

    _blank_is_unset = field_validator("name", "base_url", mode="before")(_blank_is_unset)


class ToolSettings(_Group):
    """Tools of the ReAct agent from outside: MCP servers, and the tools that need a person's approval."""

    mcp_config: Path | None = Field(default=None, validation_alias="ARAG_MCP_CONFIG")
    """A JSON file in the usual ``{"mcpServers": {name: {...}}}`` shape (``command``/``args``/``env``
    for stdio, ``url``/``headers`` for streamable HTTP); their tools join the ReAct agent's."""
    approve: tuple[str, ...] = Field(default=(), validation_alias="ARAG_TOOLS_APPROVE")
    """Names of tools whose calls wait for a person's approval (comma-separated); ``*`` for all.
    A run that reaches one pauses (a LangGraph interrupt) until it is approved, edited or rejected."""

    @field_validator("approve", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value


class LimitSettings(_Group):
    """Per-question limits of the RAG and ReAct agents (the recursive agent's are :class:`RlmSettings`)."""

    max_iterations: int = Field(default=3, ge=1, validation_alias="ARAG_MAX_ITERATIONS")
    """Retrieval rounds per question (the first plus refinements)."""
    max_answer_attempts: int = Field(default=2, ge=1, validation_alias="ARAG_MAX_ANSWER_ATTEMPTS")
    """Drafts per question; a draft that fails validation is corrected while attempts remain."""
    max_model_calls: int | None = Field(default=30, ge=1, validation_alias="ARAG_MAX_MODEL_CALLS")
    """Model calls per question."""
    max_tokens: int | None = Field(default=100_000, ge=1, validation_alias="ARAG_MAX_TOKENS")
    """Prompt plus completion tokens per question."""
    deadline: float | None = Field(default=120.0, gt=0, validation_alias="ARAG_RUN_DEADLINE")
    """Seconds per question before the run ends with the best answer so far."""


class ServerSettings(_Group):
    """The HTTP server (``arag serve``): address, authentication, and the limits on runs,
    queue, bodies and connections that keep it up under load."""

    host: str = Field(default="127.0.0.1", validation_alias="ARAG_SERVER_HOST")
    """Address ``arag serve`` listens on (``0.0.0.0`` for every interface)."""
    port: int = Field(default=8000, ge=0, le=65535, validation_alias="ARAG_SERVER_PORT")
    """Port of ``arag serve`` (0 picks a free one)."""
    api_key: SecretStr | None = Field(default=None, validation_alias="ARAG_API_KEY")
    """Bearer key that clients of ``arag serve`` must send. Unset: no authentication, which
    ``arag serve`` allows on a loopback address only (see :attr:`no_auth`). A blank
    value is an error, never "no authentication"."""
    no_auth: bool = Field(default=False, validation_alias="ARAG_SERVER_NO_AUTH")
    """Serve without a key on a non-loopback address (``arag serve --no-auth``); off, ``arag
    serve`` refuses to listen on another address without :attr:`api_key`."""
    workers: int = Field(default=1, ge=1, validation_alias="ARAG_SERVER_WORKERS")
    """Server processes sharing the port (``arag serve --workers N``): more than one needs a Qdrant
    server (``ARAG_QDRANT_URL``) and keeps threads best in Postgres (``ARAG_THREADS_URL``);
    see :mod:`agents.serve._workers`. The limits below are per worker."""
    max_runs: int = Field(default=4, ge=1, validation_alias="ARAG_SERVER_MAX_RUNS")
    """Agent runs the server executes at once."""
    max_queue: int = Field(default=32, ge=0, validation_alias="ARAG_SERVER_MAX_QUEUE")
    """Requests that may wait for a run slot; past runs + queue, clients get 429 with Retry-After."""
    max_body: int = Field(default=1_000_000, ge=1_000, validation_alias="ARAG_SERVER_MAX_BODY")
    """Largest request body in bytes (413 past it)."""
    deadline: float = Field(default=180.0, gt=0, validation_alias="ARAG_SERVER_DEADLINE")
    """Seconds per request, waiting included; past it the run is stopped and the client told (504)."""
    limit_concurrency: int = Field(default=1000, ge=1, validation_alias="ARAG_SERVER_LIMIT_CONCURRENCY")
    """Connections the server holds at once (uvicorn's ``limit_concurrency``: requests past it get
    503); lowered to the process's open-files limit minus 64, so the server never runs out of
    files. A connection past it is answered 503 and closed at once."""
    keep_alive: int = Field(default=5, ge=1, validation_alias="ARAG_SERVER_KEEP_ALIVE")
    """Seconds an idle keep-alive connection stays open between requests (uvicorn's
    ``timeout_keep_alive``)."""
    header_timeout: float = Field(default=10.0, gt=0, validation_alias="ARAG_SERVER_HEADER_TIMEOUT")
    """Seconds a client has to send a request's headers, from connecting or from the end of the
    previous response; past it the server answers 408 and closes (slow or idle clients)."""
    body_timeout: float = Field(default=30.0, gt=0, validation_alias="ARAG_SERVER_BODY_TIMEOUT")
    """Seconds a client has to send a request body; past it the server answers 408 and closes."""
    safe_markdown: bool = Field(default=True, validation_alias="ARAG_SERVER_SAFE_MARKDOWN")
    """Neutralise Markdown images and raw HTML in the answers the server sends, so a document
    carrying an injected ``![](https://attacker/?q=...)`` or ``<img>`` cannot make a Markdown
    front end fetch a URL (images are shown as their text, tags are escaped; ``[n]`` citations and other
    Markdown are kept)."""

    open_webui_references: bool = Field(default=False, validation_alias="ARAG_SERVER_OPEN_WEBUI_REFERENCES")
    """Append the text "Sources" list to answers for Open WebUI too. Off: Open WebUI gets the
    references as source events only, which it shows as chips on the ``[n]`` marks (how its
    requests are recognised: :mod:`agents.serve.open_webui`). A request's own ``references``
    field wins over this."""

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


class RlmSettings(_Group):
    """The recursive agent over long contexts: its budget for a whole tree of sub-calls, the
    sub-call model, and code mode."""

    max_iterations: int = Field(default=12, ge=1, validation_alias="ARAG_RLM_MAX_ITERATIONS")
    """Root-model turns per (sub-)run of the recursive agent."""
    max_depth: int = Field(default=2, ge=0, validation_alias="ARAG_RLM_MAX_DEPTH")
    """Recursion levels below the root run."""
    max_sub_calls: int | None = Field(default=5_000, ge=1, validation_alias="ARAG_RLM_MAX_SUB_CALLS")
    """Sub-calls over a whole recursive run."""
    max_tokens: int | None = Field(default=2_000_000, ge=1, validation_alias="ARAG_RLM_MAX_TOKENS")
    """Tokens over every model call of a recursive run."""
    deadline: float | None = Field(default=600.0, gt=0, validation_alias="ARAG_RLM_DEADLINE")
    """Seconds per recursive run."""
    max_concurrency: int = Field(default=16, ge=1, validation_alias="ARAG_RLM_MAX_CONCURRENCY")
    """Sub-calls running at once."""
    sub_context_chars: int = Field(default=40_000, ge=200, validation_alias="ARAG_RLM_SUB_CONTEXT_CHARS")
    """Characters one sub-call reads; longer pieces recurse. Fit it to the sub-model's context."""
    code_mode: bool = Field(default=False, validation_alias="ARAG_RLM_CODE_MODE")
    """Let the root model run Python in a sandboxed process (the ``run_python`` tool). Needs the OS
    boundary (bubblewrap, user namespaces, libseccomp): without it code mode refuses to start."""
    code_mode_unsafe: bool = Field(default=False, validation_alias="ARAG_RLM_CODE_MODE_UNSAFE")
    """Run code mode WITHOUT the OS boundary where it cannot be set up (loud warning; the code then
    runs as this user behind an in-process guard that it can switch off)."""
    sub_model: str | None = Field(default=None, validation_alias="ARAG_SUB_CHAT_MODEL")
    """Model for the recursive agent's sub-calls (e.g. a smaller one); default: the chat model."""


class IngestSettings(_Group):
    """How documents are cut into chunks and stored (``arag ingest``)."""

    chunk_size: int = Field(default=1000, ge=50, validation_alias="ARAG_CHUNK_SIZE")
    """Maximum characters per chunk."""
    chunk_overlap: int = Field(default=200, ge=0, validation_alias="ARAG_CHUNK_OVERLAP")
    """Characters shared by neighbouring chunks."""
    batch_size: int = Field(default=256, ge=1, validation_alias="ARAG_INGEST_BATCH_SIZE")
    """Chunks per embed-and-store step."""
    max_file_mb: float = Field(default=50.0, gt=0, validation_alias="ARAG_INGEST_MAX_FILE_MB")
    """Files larger than this are left out and reported (with how to raise it). Sized for a
    2-core machine: all-MiniLM-L6-v2 embeds about 30 KB of text a second there, so 50 MB of text
    is about half an hour; a 200 MB file would embed for hours."""
    isolate: bool = Field(default=True, validation_alias="ARAG_INGEST_ISOLATE")
    """Parse files in a child process with a time and a memory limit (a hostile file then costs
    only itself); false parses in the ingesting process."""
    file_timeout: float = Field(default=300.0, gt=0, validation_alias="ARAG_INGEST_FILE_TIMEOUT")
    """Seconds one file may take to parse before it is stopped and reported."""
    file_memory_mb: int = Field(default=4096, ge=256, validation_alias="ARAG_INGEST_FILE_MEMORY_MB")
    """Address-space limit of the parsing process, in MB."""

    @model_validator(mode="after")
    def _check(self) -> IngestSettings:
        if self.chunk_overlap >= self.chunk_size:
            msg = f"ARAG_CHUNK_OVERLAP ({self.chunk_overlap}) must be smaller than ARAG_CHUNK_SIZE ({self.chunk_size})"
            raise ValueError(msg)
        return self


class RetrievalSettings(_Group):
    """How a search ranks chunks: mode, result count, and hybrid fusion."""

    mode: Literal["dense", "sparse", "hybrid"] = Field(default="hybrid", validation_alias="ARAG_RETRIEVAL_MODE")
    """Default search mode."""
    top_k: int = Field(default=10, ge=1, validation_alias="ARAG_TOP_K")
    """Chunks returned by a search."""
    prefetch_limit: int = Field(default=100, ge=1, validation_alias="ARAG_PREFETCH_LIMIT")
    """Candidates each of dense and sparse ranks before hybrid fusion."""
    rrf_k: int = Field(default=10, ge=1, validation_alias="ARAG_RRF_K")
    """Reciprocal rank fusion constant (chosen on the SciFact train queries; see evals/README.md)."""


class _FlatVariables(PydanticBaseSettingsSource):
    """The groups' fields from their flat variables, in the environment or in a ``.env`` file.

    Wraps pydantic-settings' own source (which has read the variables, honouring ``_env_file``
    and case rules) and files each variable under its group: ``ARAG_SERVER_PORT=9000`` becomes
    ``{"server": {"ARAG_SERVER_PORT": "9000"}}``. Nothing else is read: an ``ARAG_SERVER`` or
    ``ARAG_MODEL`` variable means nothing, as before the fields were grouped.
    """

    def __init__(self, settings_cls: type[BaseSettings], source: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        assert isinstance(source, EnvSettingsSource)  # the environment or the .env source
        self.source = source

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # every value comes from __call__

    def __call__(self) -> dict[str, Any]:
        found = self.source.env_vars
        data: dict[str, Any] = {}
        for group, group_field in self.settings_cls.model_fields.items():
            group_cls = group_field.annotation
            assert isinstance(group_cls, type)
            assert issubclass(group_cls, _Group)
            for field in group_cls.model_fields.values():
                name = env_name(field)
                value = found.get(name if self.source.case_sensitive else name.lower())
                if value is not None:
                    data.setdefault(group, {})[name] = value
        return data


class Settings(BaseSettings):
    """Configuration of stores, models, limits and the server, in groups.

    Every field can be set as an environment variable (``ARAG_QDRANT_URL=http://localhost:6333``
    sets ``settings.store.qdrant_url``) or in a ``.env`` file in the working directory; each field's
    docstring in its group says what it does, its ``validation_alias`` names its variable. The
    environment wins over ``.env``; keyword arguments, one dict per group
    (``Settings(server={"port": 0})``), win over both, field by field.
    """

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="forbid", hide_input_in_errors=True
    )

    store: StoreSettings = Field(default_factory=StoreSettings)
    """Where data lives, and the vector store backend."""
    embeddings: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    """The embedding model."""
    model: ModelSettings = Field(default_factory=ModelSettings)
    """The chat model and its endpoint."""
    limits: LimitSettings = Field(default_factory=LimitSettings)
    """Per-question limits of the RAG and ReAct agents."""
    server: ServerSettings = Field(default_factory=ServerSettings)
    """The HTTP server (``arag serve``)."""
    rlm: RlmSettings = Field(default_factory=RlmSettings)
    """The recursive agent over long contexts."""
    tools: ToolSettings = Field(default_factory=ToolSettings)
    """MCP servers' tools and tool approval (ReAct agent)."""
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    """Chunking and storing documents."""
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    """Search defaults."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, _FlatVariables(settings_cls, env_settings), _FlatVariables(settings_cls, dotenv_settings)

    def flat_dump(self) -> dict[str, Any]:
        """Every setting as a JSON value under its flat name (``top_k`` for ``ARAG_TOP_K``): the
        shape run manifests have always had, so runs compare across versions."""
        flat: dict[str, Any] = {}
        for group in type(self).model_fields:
            values: _Group = getattr(self, group)
            dumped = values.model_dump(mode="json")
            for name, field in type(values).model_fields.items():
                flat[env_name(field).removeprefix("ARAG_").lower()] = dumped[name]
        return flat
