"""agents/build.py: the one place that turns settings into agents."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.embeddings import Embeddings

import agents.build as build
from agents.build import build_agents, rag_limits, retry_policy, rlm_limits
from agents.rag_agent import RagAgent
from agents.react_agent import ReactAgent
from agents.rlm_agent import RlmAgent
from agents.settings import Settings
from agents.testing import FakeEmbeddings, scripted
from graphs.broker import RlmLimits
from graphs.budget import Limits
from tests.serving import ingest_corpus
from tools.store import EdgeStore, SourceNotFoundError


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    """An embedded store holding the test corpus, and a fake embedder in place of the real model."""
    embeddings = FakeEmbeddings()
    monkeypatch.setattr(build, "build_embeddings", lambda settings: embeddings)
    settings = Settings(
        store={"data_dir": tmp_path / "data"},
        limits={"max_iterations": 3},
        model={"max_attempts": 5},
        rlm={"max_depth": 1},
    )
    with EdgeStore(settings.store.location) as store:
        ingest_corpus(store, embeddings)
    return settings


def test_without_a_model_rag_and_rlm_share_the_parts_and_react_says_why_not(settings: Settings) -> None:
    with build_agents(settings) as agents:
        assert agents.react is None
        assert "ARAG_CHAT_MODEL" in agents.unavailable["react"]
        assert agents.rag.retriever is agents.retriever
        assert agents.rag.limits == rag_limits(settings)
        assert agents.rag.limits.max_iterations == 3
        assert agents.rlm.limits == rlm_limits(settings)
        assert agents.rag.checkpointer is agents.checkpointer is not None
        assert agents.rag.invoke("How tall is the Eiffel Tower?").exit_reason == "answered"
    # closed: the embedded store's lock is free for the next process
    with EdgeStore(settings.store.location) as store:
        assert {s.name for s in store.list_sources()} == {"landmarks", "bees"}


def test_one_model_serves_every_agent_with_the_settings_retry_policy(settings: Settings) -> None:
    model = scripted("unused")
    with build_agents(settings, chat_model=model, threads=False) as agents:
        assert isinstance(agents.react, ReactAgent)
        for client in (agents.rag.client, agents.react.client, agents.rlm.client):
            assert client is not None
            assert client.model is model
            assert client.retry == retry_policy(settings)
        assert client.retry.max_attempts == 5
        assert agents.react.limits == rag_limits(settings)
        assert {t.name for t in agents.react.tools} == {"search_landmarks", "search_bees", "read_document"}
        assert agents.checkpointer is None


def test_sources_are_checked_at_once(settings: Settings) -> None:
    with pytest.raises(SourceNotFoundError, match=r"known sources: bees, landmarks"):
        build_agents(settings, sources=["nope"])
    with build_agents(settings, sources=["bees"]) as agents:
        assert agents.retriever.sources == ["bees"]


def test_the_agents_from_settings_build_through_it(settings: Settings) -> None:
    with RagAgent.from_settings(settings, threads=False) as rag:
        assert rag.limits == rag_limits(settings)
    with pytest.raises(ValueError, match="tool-calling chat model"):
        ReactAgent.from_settings(settings)
    with ReactAgent.from_settings(settings, chat_model=scripted("x")) as react:
        assert react.client.retry == retry_policy(settings)
    rlm = RlmAgent.from_settings(settings)
    assert rlm.limits == rlm_limits(settings)
    assert rlm.client is None  # no model: the offline plan


def test_a_failed_build_releases_what_it_opened(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(settings: Settings) -> Embeddings:
        raise RuntimeError("embedding endpoint refused")

    monkeypatch.setattr(build, "build_embeddings", broken)
    with pytest.raises(RuntimeError, match="refused"):
        build_agents(settings)
    with EdgeStore(settings.store.location) as store:  # not left locked
        assert store.list_sources()


def test_the_limits_are_their_groups_settings() -> None:
    settings = Settings(
        limits={"max_iterations": 5, "max_answer_attempts": 4, "max_model_calls": 7, "max_tokens": 99, "deadline": 9.5},
        rlm={
            "max_iterations": 6,
            "max_depth": 0,
            "max_sub_calls": 8,
            "max_tokens": 77,
            "deadline": 3.5,
            "max_concurrency": 2,
            "sub_context_chars": 500,
        },
    )
    assert rag_limits(settings) == Limits(
        max_iterations=5, max_answer_attempts=4, max_model_calls=7, max_tokens=99, deadline_s=9.5
    )
    assert rlm_limits(settings) == RlmLimits(
        max_iterations=6,
        max_depth=0,
        max_sub_calls=8,
        max_tokens=77,
        deadline_s=3.5,
        max_concurrency=2,
        sub_context_chars=500,
    )
