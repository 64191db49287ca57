"""The OpenAI-compatible embeddings path, over real HTTP to a loopback stub."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.cli import main
from agents.components import build_embeddings, build_ingestor, build_retriever, build_store
from agents.settings import Settings
from agents.testing import Fault, OpenAIStub, stub_vector
from tools.embeddings import CachedEmbeddings, embedding_dimension, openai_compatible_embeddings


@pytest.fixture
def stub() -> Iterator[OpenAIStub]:
    with OpenAIStub(dimension=16) as server:
        yield server


@pytest.fixture
def openai_env(stub: OpenAIStub, monkeypatch: pytest.MonkeyPatch) -> OpenAIStub:
    monkeypatch.setenv("ARAG_EMBEDDING_PROVIDER", "openai")
    monkeypatch.setenv("ARAG_EMBEDDING_MODEL", "stub-embed")
    monkeypatch.setenv("ARAG_OPENAI_BASE_URL", stub.base_url)
    monkeypatch.setenv("ARAG_OPENAI_API_KEY", "sk-test")
    return stub


def test_embeddings_come_from_the_endpoint(stub: OpenAIStub) -> None:
    embeddings = openai_compatible_embeddings("stub-embed", base_url=stub.base_url, api_key="sk-test")
    vectors = embeddings.embed_documents(["alpha beta", "gamma"])
    assert vectors[0] == pytest.approx(stub_vector("alpha beta", 16))
    assert vectors[1] == pytest.approx(stub_vector("gamma", 16))
    assert embedding_dimension(embeddings) == 16
    request = stub.state.requests[0]
    assert request["path"] == "/v1/embeddings"
    assert request["body"]["model"] == "stub-embed"
    assert request["body"]["input"] == ["alpha beta", "gamma"]  # text, not tiktoken ids


def test_transient_errors_are_retried(stub: OpenAIStub) -> None:
    embeddings = openai_compatible_embeddings("stub-embed", base_url=stub.base_url, api_key="k", max_retries=2)
    stub.fail_next(Fault(500), Fault(429, retry_after=0))
    started = time.perf_counter()
    assert embeddings.embed_query("tides") == pytest.approx(stub_vector("tides", 16))
    assert len(stub.state.requests) == 3
    assert time.perf_counter() - started < 10


def test_persistent_errors_raise(stub: OpenAIStub) -> None:
    embeddings = openai_compatible_embeddings("stub-embed", base_url=stub.base_url, api_key="k", max_retries=1)
    stub.fail_next(Fault(500), Fault(500))
    with pytest.raises(Exception, match="500"):
        embeddings.embed_query("tides")
    assert len(stub.state.requests) == 2


def test_ingest_and_search_through_the_endpoint(openai_env: OpenAIStub, corpus_dir: Path) -> None:
    settings = Settings()
    embeddings = build_embeddings(settings)
    assert isinstance(embeddings, CachedEmbeddings)
    with build_store(settings) as store:
        report = build_ingestor(settings, store, embeddings).ingest_paths([corpus_dir], "kb")
        assert report.added == 8
        assert store.get_source("kb").embedding_model == "stub-embed"
        assert store.get_source("kb").dimension == 16
        hits = build_retriever(settings, store, embeddings).search("emperor penguins breed", k=1, mode="dense")
        assert hits[0].title == "Penguins"
    calls = len(openai_env.state.requests)
    with build_store(settings) as store:  # re-ingest: every vector comes from the cache
        build_ingestor(settings, store, build_embeddings(settings)).ingest_paths([corpus_dir], "kb")
    assert len(openai_env.state.requests) == calls


def test_cli_reports_a_dead_endpoint_in_one_line(
    openai_env: OpenAIStub, corpus_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    openai_env.fail_next(*[Fault(503)] * 10)
    code = main(["ingest", str(corpus_dir / "notes.txt"), "--source", "kb", "-q"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error:")
    assert "503" in err
