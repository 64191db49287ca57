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
    assert settings.chat_model is None
    assert settings.qdrant_url is None
    assert settings.backend == "embedded"
    assert settings.store_location == str(tmp_path / "arag-data" / "edge")
    assert settings.cache_path == tmp_path / "arag-data" / "cache" / "embeddings.sqlite"


def test_environment_and_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("ARAG_TOP_K=7\nARAG_CHAT_MODEL=gpt-4o-mini\nARAG_QDRANT_API_KEY=secret\n")
    monkeypatch.setenv("ARAG_TOP_K", "3")  # the environment wins over .env
    settings = Settings()
    assert settings.top_k == 3
    assert settings.chat_model == "gpt-4o-mini"
    assert settings.qdrant_api_key is not None
    assert settings.qdrant_api_key.get_secret_value() == "secret"
    assert "secret" not in repr(settings)


def test_backend_follows_the_url_unless_chosen(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ARAG_QDRANT_URL", "http://127.0.0.1:6333")
    monkeypatch.setenv("ARAG_QDRANT_PATH", "/somewhere")
    assert (Settings().backend, Settings().store_location) == ("server", "http://127.0.0.1:6333")
    monkeypatch.setenv("ARAG_STORE_BACKEND", "local")
    assert (Settings().backend, Settings().store_location) == ("local", "/somewhere")
    monkeypatch.setenv("ARAG_STORE_BACKEND", "embedded")
    monkeypatch.setenv("ARAG_EDGE_PATH", str(tmp_path / "e"))
    assert (Settings().backend, Settings().store_location) == ("embedded", str(tmp_path / "e"))
    monkeypatch.setenv("ARAG_QDRANT_URL", "  ")
    monkeypatch.delenv("ARAG_STORE_BACKEND")
    assert Settings().backend == "embedded"
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
