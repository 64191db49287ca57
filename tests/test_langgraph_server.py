"""The LangGraph server graphs (``agents.serve.langgraph_app``): in-process, and served by a real
``langgraph dev`` from the project's ``langgraph.json`` to a ``langgraph_sdk`` client."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph_sdk import get_sync_client

from agents.cli import main
from agents.rag_agent import RagAgent
from agents.serve import langgraph_app
from agents.testing import FakeEmbeddings, OpenAIStub
from tools.ingest import Ingestor
from tools.retrieval import Retriever
from tools.store import QdrantStore

REPO = Path(__file__).resolve().parent.parent
QUESTION = {"role": "user", "content": "How tall is the Eiffel Tower?"}
PASSAGE = "Filler about nothing in particular. " * 150 + "The special magic number for Paris is 4721."

# -- in-process ------------------------------------------------------------------------------


@pytest.fixture
def rag_agent(corpus_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RagAgent]:
    """The process-wide agent of the ``rag`` graph, replaced by one over the corpus in memory."""
    store = QdrantStore(":memory:")
    embeddings = FakeEmbeddings()
    Ingestor(store, embeddings).ingest_paths([corpus_dir], "kb", description="General facts")
    agent = RagAgent(Retriever(store=store, embeddings=embeddings, k=5))
    monkeypatch.setattr(langgraph_app, "_rag_agent", langgraph_app._Lazy(lambda: agent))
    yield agent
    store.close()


def test_graphs_leave_the_checkpointer_to_the_server() -> None:
    assert langgraph_app.rag.checkpointer is None
    assert langgraph_app.rlm.checkpointer is None
    assert set(langgraph_app.rag.get_graph().nodes) == {"__start__", "answer", "__end__"}


def test_the_agent_is_built_once_when_runs_start_together() -> None:
    built: list[int] = []
    barrier = threading.Barrier(8)

    def build() -> int:
        time.sleep(0.05)  # wide enough for every thread to arrive before the first build ends
        built.append(1)
        return len(built)

    lazy = langgraph_app._Lazy(build)
    seen: list[int] = []

    def use() -> None:
        barrier.wait()
        seen.append(lazy.get())

    threads = [threading.Thread(target=use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert built == [1]
    assert seen == [1] * 8


def test_a_failed_build_is_retried_on_the_next_run() -> None:
    attempts: list[int] = []

    def build() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            msg = "no store yet"
            raise RuntimeError(msg)
        return "agent"

    lazy = langgraph_app._Lazy(build)
    with pytest.raises(RuntimeError, match="no store yet"):
        lazy.get()
    assert lazy.get() == "agent"
    assert lazy.get() == "agent"
    assert len(attempts) == 2


def test_rag_answers_the_last_message_with_citations_and_streams_steps(rag_agent: RagAgent) -> None:
    saver = InMemorySaver()
    graph = langgraph_app.rag.copy(update={"checkpointer": saver})
    config: Any = {"configurable": {"thread_id": "t1"}}
    custom: list[dict[str, Any]] = []
    for mode, chunk in graph.stream({"messages": [QUESTION]}, config, stream_mode=["custom", "values"]):
        if mode == "custom":
            custom.append(chunk)
    events = {e["event"] for e in custom}
    assert {"step_start", "step_end", "retrieved"} <= events
    assert all(e["status"] for e in custom)
    assert any(e["status"].startswith("retrieve: ") for e in custom)

    messages = graph.get_state(config).values["messages"]
    assert [type(m) for m in messages] == [HumanMessage, AIMessage]
    reply = messages[-1]
    assert "330" in reply.text
    assert "**Sources**" in reply.text
    citations = reply.additional_kwargs["citations"]
    assert citations
    assert "330" in citations[0]["text"]
    assert {"number", "chunk_id", "source", "doc_id", "snippet"} <= set(citations[0])
    assert reply.additional_kwargs["exit_reason"] == "answered"
    assert "seconds" in reply.additional_kwargs["usage"]

    # The follow-up is read against the conversation the thread keeps.
    follow_up = {"role": "user", "content": "When was it completed?"}
    graph.invoke({"messages": [follow_up]}, config)
    messages = graph.get_state(config).values["messages"]
    assert len(messages) == 4
    assert "1889" in messages[-1].text
    # The agent's own graph ran apart from the server's run: no checkpoints of its state in the thread.
    assert {c.config["configurable"]["checkpoint_ns"] for c in saver.list(None)} == {""}


def test_rag_needs_a_user_message_last(rag_agent: RagAgent) -> None:
    with pytest.raises(ValueError, match="last message must have role 'user'"):
        langgraph_app.rag.invoke({"messages": [QUESTION, {"role": "assistant", "content": "330 m."}]})


def test_rlm_reads_the_text_sent_before_the_question() -> None:
    messages = [
        {"role": "user", "content": PASSAGE},
        {"role": "user", "content": "What is the magic number for Paris?"},
    ]
    state = langgraph_app.rlm.invoke({"messages": messages})
    reply = state["messages"][-1]
    assert "4721" in reply.text
    assert reply.additional_kwargs["exit_reason"] == "answered"
    assert reply.additional_kwargs["usage"]["sub_calls"] >= 1


def test_injected_images_and_html_are_made_inert_in_answers() -> None:
    text = "The magic number for Paris is 4721 ![x](https://evil.example/?q=4721) <img src=https://evil.example>."
    messages = [{"role": "user", "content": text}, {"role": "user", "content": "What is the magic number for Paris?"}]
    reply = langgraph_app.rlm.invoke({"messages": messages})["messages"][-1]
    assert "4721" in reply.text
    assert "![x](" not in reply.text
    assert "<img" not in reply.text


def test_rlm_without_text_to_read_says_how_to_send_it() -> None:
    with pytest.raises(ValueError, match="nothing to read"):
        langgraph_app.rlm.invoke({"messages": [{"role": "user", "content": "What is the magic number?"}]})


# -- a real `langgraph dev` ------------------------------------------------------------------

_server_installed = all(importlib.util.find_spec(m) is not None for m in ("langgraph_cli", "langgraph_api"))

# Set for the server process: everything it would otherwise try to reach on the internet.
OFFLINE_ENV = {
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",  # the CLI posts usage analytics on every command
    "LANGGRAPH_NO_VERSION_CHECK": "true",  # the server asks PyPI for newer langgraph-api releases
    "LANGSMITH_TRACING": "false",  # no traces to LangSmith, and no Studio URL look-up there
}
# Dropped from the server's environment: a developer's keys would turn tracing or the licence
# (metadata) loop back on, and an OTLP endpoint would start exporting telemetry.
_ONLINE_PREFIXES = ("LANGSMITH_", "LANGCHAIN_", "LANGGRAPH_", "OTEL_")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"langgraph dev exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        with (
            contextlib.suppress(urllib.error.URLError, ConnectionError),
            urllib.request.urlopen(f"{url}/ok", timeout=1) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.2)
    pytest.fail(f"langgraph dev was not ready after {timeout:.0f} s:\n{log.read_text()[-4000:]}")


@pytest.fixture
def embeddings_stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenAIStub]:
    """Embeddings from a loopback OpenAI-compatible stub, for this process and the server's: no
    model to load on either side. No chat model is set, so the agent answers extractively."""
    with OpenAIStub(dimension=64) as stub:
        monkeypatch.setenv("ARAG_EMBEDDING_PROVIDER", "openai")
        monkeypatch.setenv("ARAG_EMBEDDING_MODEL", "stub-embed")
        monkeypatch.setenv("ARAG_OPENAI_BASE_URL", stub.base_url)
        monkeypatch.setenv("ARAG_OPENAI_API_KEY", "sk-test")
        yield stub


@pytest.fixture
def server(embeddings_stub: OpenAIStub, corpus_dir: Path, tmp_path: Path) -> Iterator[str]:
    """``langgraph dev`` on the project's langgraph.json, over the corpus ingested into ARAG_DATA_DIR."""
    assert main(["ingest", str(corpus_dir), "--source", "kb", "-d", "General facts", "-q"]) == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith(_ONLINE_PREFIXES)}
    env.update(OFFLINE_ENV)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    port = _free_port()
    log = tmp_path / "langgraph-dev.log"
    command = [sys.executable, "-m", "langgraph_cli", "dev", "--config", str(REPO / "langgraph.json")]
    command += ["--port", str(port), "--no-browser", "--no-reload"]
    # The working folder is tmp_path: the server keeps its state there (.langgraph_api), and
    # Settings reads no developer's .env.
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until_ready(url, process, log, timeout=45)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.mark.skipif(not _server_installed, reason="needs the LangGraph server: pip install 'langgraph-cli[inmem]'")
def test_langgraph_dev_serves_the_graphs(server: str) -> None:
    client = get_sync_client(url=server)
    assert {a["graph_id"] for a in client.assistants.search()} >= {"rag", "rlm"}

    thread = client.threads.create()
    state = client.runs.wait(thread["thread_id"], "rag", input={"messages": [QUESTION]})
    assert isinstance(state, dict)
    reply = state["messages"][-1]
    assert reply["type"] == "ai"
    assert "330" in reply["content"]
    citations = reply["additional_kwargs"]["citations"]
    assert citations
    assert "330" in citations[0]["text"]
    assert reply["additional_kwargs"]["exit_reason"] == "answered"

    # A follow-up on the same thread, streamed: step events as they happen, then the answer.
    follow_up = {"role": "user", "content": "When was it completed?"}
    parts = list(
        client.runs.stream(
            thread["thread_id"], "rag", input={"messages": [follow_up]}, stream_mode=["custom", "updates"]
        )
    )
    custom = [p.data for p in parts if p.event == "custom"]
    assert {"step_start", "step_end", "retrieved"} <= {e["event"] for e in custom}
    assert all(e["status"] for e in custom)
    updates = [p.data for p in parts if p.event == "updates"]
    assert "1889" in updates[-1]["answer"]["messages"][-1]["content"]
    stored = client.threads.get_state(thread["thread_id"])["values"]
    assert isinstance(stored, dict)
    assert len(stored["messages"]) == 4

    text = [{"role": "user", "content": PASSAGE}, {"role": "user", "content": "What is the magic number for Paris?"}]
    state = client.runs.wait(client.threads.create()["thread_id"], "rlm", input={"messages": text})
    assert isinstance(state, dict)
    assert "4721" in state["messages"][-1]["content"]


@pytest.fixture
def approval_env(embeddings_stub: OpenAIStub, monkeypatch: pytest.MonkeyPatch) -> OpenAIStub:
    """The stub is the chat model too, and the search tool needs approval (set before the server starts)."""
    monkeypatch.setenv("ARAG_CHAT_MODEL", "stub")
    monkeypatch.setenv("ARAG_TOOLS_APPROVE", "search_kb")
    return embeddings_stub


@pytest.mark.skipif(not _server_installed, reason="needs the LangGraph server: pip install 'langgraph-cli[inmem]'")
def test_langgraph_dev_pauses_react_for_approval_and_resumes_with_a_command(
    approval_env: OpenAIStub, server: str
) -> None:
    from agents.testing import ChatReply

    stub = approval_env
    stub.reply(ChatReply(tool_calls=[("search_kb", '{"query": "tower"}')]), "It is 330 metres tall [1].")
    client = get_sync_client(url=server)
    thread = client.threads.create()["thread_id"]
    client.runs.wait(thread, "react", input={"messages": [QUESTION]})
    state = client.threads.get_state(thread)
    interrupts = [i for task in state["tasks"] for i in task["interrupts"]]
    assert len(interrupts) == 1
    [waiting] = interrupts[0]["value"]["pending"]
    assert (waiting["tool"], waiting["args"]) == ("search_kb", {"query": "tower"})
    assert state["next"] == ["approve"]
    edited = {"action": "edit", "args": {"query": "Eiffel Tower height"}}
    final = client.runs.wait(thread, "react", command={"resume": edited})
    assert isinstance(final, dict)
    reply = final["messages"][-1]
    assert "330 metres" in reply["content"]
    assert reply["additional_kwargs"]["exit_reason"] == "answered"
    [call] = reply["additional_kwargs"]["tool_calls"]
    assert (call["args"], call["approval"], call["status"]) == ({"query": "Eiffel Tower height"}, "edited", "success")
    assert client.threads.get_state(thread)["next"] == []
