"""Settings from ARAG_* variables and .env files."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from agents.components import build_embeddings, build_store
from agents.settings import Settings
from tools.embeddings import CachedEmbeddings, LocalEmbeddings
from tools.store import EdgeStore, QdrantStore


def test_defaults_are_embedded_and_heuristic(tmp_path: Path) -> None:
    settings = Settings()
    assert settings.model.name is None
    assert settings.store.qdrant_url is None
    assert settings.store.effective_backend == "embedded"
    assert settings.store.location == str(tmp_path / "arag-data" / "edge")
    assert settings.store.cache_path == tmp_path / "arag-data" / "cache" / "embeddings.sqlite"


def test_environment_and_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("ARAG_TOP_K=7\nARAG_CHAT_MODEL=gpt-4o-mini\nARAG_QDRANT_API_KEY=secret\n")
    monkeypatch.setenv("ARAG_TOP_K", "3")  # the environment wins over .env
    settings = Settings()
    assert settings.retrieval.top_k == 3
    assert settings.model.name == "gpt-4o-mini"
    assert settings.store.qdrant_api_key is not None
    assert settings.store.qdrant_api_key.get_secret_value() == "secret"
    assert "secret" not in repr(settings)


def test_backend_follows_the_url_unless_chosen(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ARAG_QDRANT_URL", "http://127.0.0.1:6333")
    monkeypatch.setenv("ARAG_QDRANT_PATH", "/somewhere")
    assert (Settings().store.effective_backend, Settings().store.location) == ("server", "http://127.0.0.1:6333")
    monkeypatch.setenv("ARAG_STORE_BACKEND", "local")
    assert (Settings().store.effective_backend, Settings().store.location) == ("local", "/somewhere")
    monkeypatch.setenv("ARAG_STORE_BACKEND", "embedded")
    monkeypatch.setenv("ARAG_EDGE_PATH", str(tmp_path / "e"))
    assert (Settings().store.effective_backend, Settings().store.location) == ("embedded", str(tmp_path / "e"))
    monkeypatch.setenv("ARAG_QDRANT_URL", "  ")
    monkeypatch.delenv("ARAG_STORE_BACKEND")
    assert Settings().store.effective_backend == "embedded"
    monkeypatch.setenv("ARAG_STORE_BACKEND", "server")
    with pytest.raises(ValidationError, match="needs ARAG_QDRANT_URL"):
        Settings()


def test_factory_builds_the_chosen_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    with build_store(Settings()) as store:
        assert isinstance(store, EdgeStore)
    monkeypatch.setenv("ARAG_STORE_BACKEND", "local")
    with build_store(Settings()) as store:
        assert isinstance(store, QdrantStore)
        assert store.is_local


@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        ("ARAG_CHUNK_OVERLAP", "2000", "ARAG_CHUNK_OVERLAP"),
        ("ARAG_QDRANT_URL", "localhost:6333", "http://"),
        ("ARAG_TOP_K", "0", "greater than or equal"),
        ("ARAG_RETRIEVAL_MODE", "fuzzy", "hybrid"),
    ],
)
def test_invalid_values_are_rejected(monkeypatch: pytest.MonkeyPatch, name: str, value: str, needle: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=needle):
        Settings()


def test_factories_follow_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    embeddings = build_embeddings(Settings())
    assert isinstance(embeddings, CachedEmbeddings)
    assert isinstance(embeddings.inner, LocalEmbeddings)
    monkeypatch.setenv("ARAG_EMBEDDING_CACHE", "false")
    assert isinstance(build_embeddings(Settings()), LocalEmbeddings)
    monkeypatch.setenv("ARAG_EMBEDDING_MODEL", "bge-small")
    with pytest.raises(ValueError, match="ARAG_EMBEDDING_PROVIDER=openai"):
        build_embeddings(Settings())
    monkeypatch.setenv("ARAG_EMBEDDING_PROVIDER", "openai")
    monkeypatch.setenv("ARAG_OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert getattr(build_embeddings(Settings()), "model", None) == "bge-small"
    with build_store(Settings()) as store:
        assert store.list_sources() == []


def test_every_flat_variable_still_sets_its_grouped_field(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The variables users' .env files name, each with a non-default value, and where it lands.
    variables = {
        "ARAG_DATA_DIR": ("store", "data_dir", tmp_path / "d"),
        "ARAG_STORE_BACKEND": ("store", "backend", "local"),
        "ARAG_QDRANT_URL": ("store", "qdrant_url", "http://127.0.0.1:6333"),
        "ARAG_QDRANT_PATH": ("store", "qdrant_path", tmp_path / "q"),
        "ARAG_EDGE_PATH": ("store", "edge_path", tmp_path / "e"),
        "ARAG_HNSW_EF": ("store", "hnsw_ef", 64),
        "ARAG_HNSW_M": ("store", "hnsw_m", 32),
        "ARAG_HNSW_EF_CONSTRUCT": ("store", "hnsw_ef_construct", 200),
        "ARAG_INDEX_THRESHOLD": ("store", "index_threshold", 5),
        "ARAG_THREADS_PATH": ("store", "threads_path", tmp_path / "t.sqlite"),
        "ARAG_THREADS_POOL_SIZE": ("store", "threads_pool_size", 3),
        "ARAG_THREADS_TIMEOUT": ("store", "threads_timeout", 2.5),
        "ARAG_QDRANT_SHARDS": ("store", "qdrant_shards", 3),
        "ARAG_QDRANT_REPLICATION": ("store", "qdrant_replication", 2),
        "ARAG_QDRANT_WRITE_CONSISTENCY": ("store", "qdrant_write_consistency", 2),
        "ARAG_EMBEDDING_PROVIDER": ("embeddings", "provider", "openai"),
        "ARAG_EMBEDDING_MODEL": ("embeddings", "model", "bge-small"),
        "ARAG_EMBEDDING_BATCH_SIZE": ("embeddings", "batch_size", 8),
        "ARAG_EMBEDDING_CACHE": ("embeddings", "cache", False),
        "ARAG_TORCH_THREADS": ("embeddings", "torch_threads", 2),
        "ARAG_EMBEDDING_THREADS": ("embeddings", "threads", 1),
        "ARAG_EMBEDDING_BACKEND": ("embeddings", "backend", "onnx-int8"),
        "ARAG_MODEL_CACHE": ("embeddings", "model_cache", tmp_path / "m"),
        "ARAG_CHAT_MODEL": ("model", "name", "gpt-4o-mini"),
        "ARAG_OPENAI_BASE_URL": ("model", "base_url", "http://127.0.0.1:9/v1"),
        "ARAG_REQUEST_TIMEOUT": ("model", "request_timeout", 5.0),
        "ARAG_MODEL_MAX_ATTEMPTS": ("model", "max_attempts", 2),
        "ARAG_MAX_OUTPUT_TOKENS": ("model", "max_output_tokens", 256),
        "ARAG_MCP_CONFIG": ("tools", "mcp_config", tmp_path / "mcp.json"),
        "ARAG_TOOLS_APPROVE": ("tools", "approve", ("send_mail", "pay")),
        "ARAG_MAX_ITERATIONS": ("limits", "max_iterations", 5),
        "ARAG_MAX_ANSWER_ATTEMPTS": ("limits", "max_answer_attempts", 3),
        "ARAG_MAX_MODEL_CALLS": ("limits", "max_model_calls", 7),
        "ARAG_MAX_TOKENS": ("limits", "max_tokens", 999),
        "ARAG_RUN_DEADLINE": ("limits", "deadline", 9.5),
        "ARAG_SERVER_HOST": ("server", "host", "0.0.0.0"),
        "ARAG_SERVER_PORT": ("server", "port", 9000),
        "ARAG_SERVER_NO_AUTH": ("server", "no_auth", True),
        "ARAG_SERVER_MAX_RUNS": ("server", "max_runs", 2),
        "ARAG_SERVER_WORKERS": ("server", "workers", 3),
        "ARAG_SERVER_MAX_QUEUE": ("server", "max_queue", 3),
        "ARAG_SERVER_MAX_BODY": ("server", "max_body", 5_000),
        "ARAG_SERVER_DEADLINE": ("server", "deadline", 7.0),
        "ARAG_SERVER_LIMIT_CONCURRENCY": ("server", "limit_concurrency", 50),
        "ARAG_SERVER_KEEP_ALIVE": ("server", "keep_alive", 2),
        "ARAG_SERVER_HEADER_TIMEOUT": ("server", "header_timeout", 1.5),
        "ARAG_SERVER_BODY_TIMEOUT": ("server", "body_timeout", 2.5),
        "ARAG_SERVER_SAFE_MARKDOWN": ("server", "safe_markdown", False),
        "ARAG_SERVER_OPEN_WEBUI_REFERENCES": ("server", "open_webui_references", True),
        "ARAG_RLM_MAX_ITERATIONS": ("rlm", "max_iterations", 4),
        "ARAG_RLM_MAX_DEPTH": ("rlm", "max_depth", 1),
        "ARAG_RLM_MAX_SUB_CALLS": ("rlm", "max_sub_calls", 10),
        "ARAG_RLM_MAX_TOKENS": ("rlm", "max_tokens", 1_000),
        "ARAG_RLM_DEADLINE": ("rlm", "deadline", 30.0),
        "ARAG_RLM_MAX_CONCURRENCY": ("rlm", "max_concurrency", 4),
        "ARAG_RLM_SUB_CONTEXT_CHARS": ("rlm", "sub_context_chars", 1_000),
        "ARAG_RLM_CODE_MODE": ("rlm", "code_mode", True),
        "ARAG_RLM_CODE_MODE_UNSAFE": ("rlm", "code_mode_unsafe", True),
        "ARAG_SUB_CHAT_MODEL": ("rlm", "sub_model", "gpt-4o-nano"),
        "ARAG_CHUNK_SIZE": ("ingest", "chunk_size", 500),
        "ARAG_CHUNK_OVERLAP": ("ingest", "chunk_overlap", 50),
        "ARAG_INGEST_BATCH_SIZE": ("ingest", "batch_size", 16),
        "ARAG_INGEST_MAX_FILE_MB": ("ingest", "max_file_mb", 8.0),
        "ARAG_INGEST_ISOLATE": ("ingest", "isolate", False),
        "ARAG_INGEST_FILE_TIMEOUT": ("ingest", "file_timeout", 30.0),
        "ARAG_INGEST_FILE_MEMORY_MB": ("ingest", "file_memory_mb", 1024),
        "ARAG_RETRIEVAL_MODE": ("retrieval", "mode", "sparse"),
        "ARAG_TOP_K": ("retrieval", "top_k", 4),
        "ARAG_PREFETCH_LIMIT": ("retrieval", "prefetch_limit", 20),
        "ARAG_RRF_K": ("retrieval", "rrf_k", 60),
    }
    secrets = {"ARAG_QDRANT_API_KEY": ("store", "qdrant_api_key"), "ARAG_OPENAI_API_KEY": ("model", "api_key")}
    secrets["ARAG_API_KEY"] = ("server", "api_key")
    secrets["ARAG_THREADS_URL"] = ("store", "threads_url")
    secret_values = {"ARAG_THREADS_URL": "postgresql://arag:k@db/threads"}
    # Half in the environment, half in .env: both sources read the flat names.
    names = sorted([*variables, *secrets])
    dotenv = names[::2]
    for name in dotenv:
        monkeypatch.delenv(name, raising=False)  # the test set-up sets ARAG_DATA_DIR
    (tmp_path / ".env").write_text(
        "".join(f"{n}={_text(variables[n][2]) if n in variables else secret_values.get(n, 'k')}\n" for n in dotenv)
    )
    for name in names[1::2]:
        monkeypatch.setenv(name, _text(variables[name][2]) if name in variables else secret_values.get(name, "k"))
    settings = Settings()
    for name, (group, field, value) in variables.items():
        assert getattr(getattr(settings, group), field) == value, name
    for name, (group, field) in secrets.items():
        assert getattr(getattr(settings, group), field).get_secret_value() == secret_values.get(name, "k"), name
    # Every field of every group is covered, so no variable is left behind.
    fields = {(group, name) for group, info in Settings.model_fields.items() for name in info.annotation.model_fields}  # type: ignore[union-attr]
    assert fields == {(g, f) for g, f, _ in variables.values()} | set(secrets.values())
    # The manifest shape: every field under its old flat name.
    assert set(settings.flat_dump()) == {name.removeprefix("ARAG_").lower() for name in names}


def _text(value: object) -> str:
    if isinstance(value, tuple):  # a list setting: comma-separated
        return ",".join(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def test_arguments_win_field_by_field_and_errors_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARAG_SERVER_HOST", "0.0.0.0")
    monkeypatch.setenv("ARAG_SERVER_PORT", "9000")
    settings = Settings(server={"port": 0})
    assert (settings.server.host, settings.server.port) == ("0.0.0.0", 0)
    monkeypatch.setenv("ARAG_SERVER_PORT", "70000")
    with pytest.raises(ValidationError, match=r"server\.ARAG_SERVER_PORT\n.*less than or equal to 65535"):
        Settings()
    with pytest.raises(ValidationError, match="top_k\n  Extra inputs are not permitted"):
        Settings(top_k=1)  # type: ignore[call-arg]  # the flat names are the variables', not keywords


def test_group_variables_are_not_json(monkeypatch: pytest.MonkeyPatch) -> None:
    # ARAG_MODEL or ARAG_SERVER never meant anything; grouping must not make them parsed as JSON.
    monkeypatch.setenv("ARAG_MODEL", "gpt-4o-mini")
    monkeypatch.setenv("ARAG_SERVER", '{"port": 1}')
    settings = Settings()
    assert (settings.model.name, settings.server.port) == (None, 8000)


def test_a_validation_error_does_not_print_the_secrets_beside_the_bad_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARAG_QDRANT_API_KEY", "sekrit-qdrant-key")
    monkeypatch.setenv("ARAG_OPENAI_API_KEY", "sekrit-openai-key")
    monkeypatch.setenv("ARAG_QDRANT_URL", "not-a-url")
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None)
    assert "ARAG_QDRANT_URL" in str(caught.value)
    assert "sekrit" not in str(caught.value)
