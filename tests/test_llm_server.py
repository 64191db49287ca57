"""The three agents end to end against a real inference server: llama-cpp-python's, with Gemma 3
270M (``make llm-install``; :class:`agents.testing.LlamaServer`).

A BASE model, so these tests check shape, never quality: answers arrive, every reply stays
within its cap, tool calls parse and run, the server's refusals take the fallback paths (this
server answers ``json_schema`` and ``tool_choice: "required"`` with HTTP 500), and every run ends
with an exit reason. Without the server the tests skip, saying why; under CI they fail.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from agents import RagAgent, ReactAgent, RlmAgent
from agents.testing import FakeEmbeddings, ReplyLog
from graphs.broker import RlmLimits
from graphs.budget import Limits
from tests.serving import ingest_corpus
from tools.retrieval import Retriever
from tools.store import QdrantStore

CAP = 48
EXITS = {"answered", "abstained", "budget", "max_iterations", "deadline", "error"}


@pytest.fixture(scope="module")
def llm() -> Iterator[Any]:
    from agents.testing import LlamaServer, missing_llama

    if (reason := missing_llama()) is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI runs the real inference server's tests: {reason}")
        pytest.skip(reason)
    with LlamaServer() as server:
        yield server


def _model(llm: Any, replies: ReplyLog) -> Any:
    return llm.chat_model(max_tokens=CAP, callbacks=[replies])


@pytest.fixture
def retriever() -> Iterator[Retriever]:
    store = QdrantStore(":memory:")
    ingest_corpus(store, FakeEmbeddings())
    yield Retriever(store=store, embeddings=FakeEmbeddings(), k=3)
    store.close()


def _capped(replies: ReplyLog) -> None:
    assert replies.replies, "no model reply was seen"
    for tokens, finish in replies.replies:
        assert 0 <= tokens <= CAP, f"a reply of {tokens} tokens, over the cap of {CAP}"
        assert finish in ("stop", "length", "tool_calls"), finish


def test_the_rag_agent_runs_on_the_real_server(llm: Any, retriever: Retriever) -> None:
    replies = ReplyLog()
    agent = RagAgent(retriever, chat_model=_model(llm, replies), limits=Limits(max_model_calls=8, deadline_s=180))
    started = time.monotonic()
    result = agent.invoke("What does the waggle dance tell other bees?")
    seconds = time.monotonic() - started
    assert result.exit_reason in EXITS - {"error"}, (result.exit_reason, result.error)
    assert result.answer.strip()
    assert result.usage["model_calls"] >= 2
    # The real server refuses json_schema (HTTP 500): structured output falls to json_object.
    assert result.usage["model_paths"]["structured"] == "json_object"
    assert any(s.get("event") == "model_fallback" and s["feature"] == "structured" for s in result.steps)
    _capped(replies)
    assert seconds < 180


def test_the_react_agent_calls_a_tool_on_the_real_server(llm: Any, retriever: Retriever) -> None:
    replies = ReplyLog()
    agent = ReactAgent(
        _model(llm, replies), retriever=retriever, read_documents=False, max_turns=3, limits=Limits(deadline_s=180)
    )
    result = agent.invoke("When did the Golden Gate Bridge open?")
    assert result.exit_reason in {"answered", "max_iterations", "budget"}, (result.exit_reason, result.error)
    # "required" is an HTTP 500 here: the first turn names the first search tool instead, and the
    # grammar-constrained call parses and runs.
    assert result.usage["model_paths"]["tool_choice"] in {"named:search_bees", "auto"}
    first = result.tool_calls[0]
    assert first["tool"] == "search_bees"
    assert isinstance(first["args"].get("query"), str)  # the call parsed
    # It ran, or its arguments failed the tool's schema (the base model fills "k" with anything)
    # and the error went back to the model, which then had another turn: never a dead run.
    assert first["status"] in {"success", "error"}
    assert result.usage["model_calls"] >= 2
    _capped(replies)


def test_the_recursive_agent_runs_on_the_real_server(llm: Any) -> None:
    replies = ReplyLog()
    agent = RlmAgent(_model(llm, replies), limits=RlmLimits(max_iterations=3, deadline_s=180, max_sub_calls=8))
    context = "\n\n".join(
        f"Note {i}: the tide table for harbour {i} lists high water at {i % 12 + 1} o'clock." for i in range(60)
    )
    context += "\n\nThe magic number is 4721.\n"
    result = agent.invoke("What is the magic number?", context=context)
    assert result.exit_reason in EXITS - {"error"}, (result.exit_reason, result.error)
    assert isinstance(result.answer, str)
    _capped(replies)
