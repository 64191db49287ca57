"""Thread namespaces: the RAG and ReAct agents keep their threads in one SQLite store, each in a
namespace of its own (:mod:`agents._threads`), so one thread id used with both is two threads,
the id is stored and answered as the client sent it, and RAG threads stay where they were."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest
from langchain_core.messages import BaseMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver

from agents._threads import NamespacedSaver
from agents.rag_agent import RagAgent
from agents.react_agent import ReactAgent
from agents.serve import ServerAgents, create_app
from agents.settings import Settings
from agents.testing import FakeEmbeddings, function_model
from tests.serving import ingest_corpus, running
from tools.retrieval import Retriever
from tools.store import QdrantStore

EIFFEL = "How tall is the Eiffel Tower?"


def _questions(messages: list[BaseMessage]) -> list[str]:
    return [m.text for m in messages if isinstance(m, HumanMessage)]


@pytest.fixture
def threads_db(tmp_path: Path) -> Path:
    return tmp_path / "threads.sqlite"


def _agents(db: Path, seen: list[list[str]]) -> ServerAgents:
    """``rag`` and ``react`` over one SQLite thread store, as ``arag serve`` builds them; the
    ReAct model records the user questions of each prompt in ``seen``."""
    store, embeddings = QdrantStore(":memory:"), FakeEmbeddings()
    ingest_corpus(store, embeddings)
    connection = sqlite3.connect(db, check_same_thread=False)
    saver = SqliteSaver(connection)
    retriever = Retriever(store=store, embeddings=embeddings, k=5)

    def reply(messages: list[BaseMessage]) -> str:
        seen.append(_questions(messages))
        return f"answer {len(seen)}"

    react = ReactAgent(function_model(reply), retriever=retriever, checkpointer=saver, read_documents=False)
    return ServerAgents(rag=RagAgent(retriever, checkpointer=saver), react=react, owned=[connection, store])


def _ask(url: str, model: str, question: str, thread: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": question}], "thread_id": thread}
    response = httpx.post(url + "/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return response


def test_one_thread_id_is_a_thread_per_agent_in_one_sqlite_store(threads_db: Path) -> None:
    seen: list[list[str]] = []
    agents = _agents(threads_db, seen)
    with running(create_app(Settings(), agents=agents)) as url:
        assert _ask(url, "rag", EIFFEL, "t1").json()["arag"]["thread_id"] == "t1"
        assert _ask(url, "react", "First react question?", "t1").json()["arag"]["thread_id"] == "t1"
        _ask(url, "react", "Second react question?", "t1")
        _ask(url, "rag", "When was it completed?", "t1")
        rag_thread = httpx.get(url + "/v1/threads/t1").json()["messages"]
    agents.close()
    # The ReAct thread holds its own questions only, the RAG thread its own.
    assert seen[-1] == ["First react question?", "Second react question?"]
    assert [m["content"] for m in rag_thread if m["role"] == "user"] == [EIFFEL, "When was it completed?"]
    with sqlite3.connect(threads_db) as db:
        rows = set(db.execute("SELECT DISTINCT thread_id, checkpoint_ns FROM checkpoints"))
    assert rows == {("t1", ""), ("t1", "react")}  # the client's id, unprefixed; rag in the root namespace


def test_rag_threads_stored_before_namespaces_read_as_before(threads_db: Path) -> None:
    """A RAG thread written straight to the root namespace (as before) is the server's thread."""
    store, embeddings = QdrantStore(":memory:"), FakeEmbeddings()
    ingest_corpus(store, embeddings)
    with sqlite3.connect(threads_db, check_same_thread=False) as connection:
        old = RagAgent(Retriever(store=store, embeddings=embeddings, k=5), checkpointer=SqliteSaver(connection))
        old.invoke(EIFFEL, thread_id="old")
    connection.close()
    agents = _agents(threads_db, [])
    with running(create_app(Settings(), agents=agents)) as url:
        messages = httpx.get(url + "/v1/threads/old").json()["messages"]
        follow_up = _ask(url, "rag", "When was it completed?", "old").json()
    agents.close()
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert "1889" in follow_up["choices"][0]["message"]["content"]


def test_a_namespaced_saver_lists_and_reads_only_its_namespace() -> None:
    saver = InMemorySaver()
    seen: list[list[str]] = []

    def reply(messages: list[BaseMessage]) -> str:
        seen.append(_questions(messages))
        return "ok"

    store, embeddings = QdrantStore(":memory:"), FakeEmbeddings()
    ingest_corpus(store, embeddings)
    retriever = Retriever(store=store, embeddings=embeddings, k=5)
    rag = RagAgent(retriever, checkpointer=saver)
    react = ReactAgent(function_model(reply), retriever=retriever, checkpointer=saver, read_documents=False)
    rag.invoke(EIFFEL, thread_id="t")
    react.invoke("Q1?", thread_id="t")
    react.invoke("Q2?", thread_id="t")
    view = NamespacedSaver(saver, "react")
    thread = {"configurable": {"thread_id": "t"}}
    listed = list(view.list(thread))
    assert listed
    assert {c.config["configurable"]["checkpoint_ns"] for c in listed} == {""}  # as the graph sees it
    assert len(list(view.list(thread, limit=2))) == 2
    assert len(list(view.list(None))) == len(listed)  # every thread: still only ours
    latest = view.get_tuple(thread)
    assert latest is not None
    assert _questions(latest.checkpoint["channel_values"]["messages"]) == ["Q1?", "Q2?"]
    assert _questions(rag.thread_messages("t")) == [EIFFEL]
    assert seen[-1] == ["Q1?", "Q2?"]
    root = {c.config["configurable"]["checkpoint_ns"] for c in saver.list(None)}
    assert root == {"", "react"}
    with pytest.raises(ValueError, match="non-empty name"):
        NamespacedSaver(saver, "")
    store.close()
