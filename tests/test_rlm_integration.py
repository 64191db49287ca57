"""The recursive agent end to end: the real ``ChatOpenAI`` client over HTTP to the loopback stub,
``arag ask --long`` on real files, and settings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langchain_openai import ChatOpenAI

from agents.cli import main
from agents.react_agent import ReactAgent
from agents.rlm_agent import RlmAgent
from agents.settings import Settings
from agents.testing import ChatReply, FakeEmbeddings, Fault, OpenAIStub, scripted
from graphs.broker import RlmLimits
from graphs.llm import RetryPolicy
from tests.test_rlm import NEEDLE, QUESTION, haystack
from tools.ingest import Chunker, Ingestor
from tools.ingest._pipeline import chunk_offsets
from tools.ingest.loaders import Document
from tools.retrieval import Retriever, join_chunks
from tools.store import QdrantStore


@pytest.fixture
def stub() -> Iterator[OpenAIStub]:
    with OpenAIStub() as server:
        yield server


def test_model_root_and_sub_calls_over_http(stub: OpenAIStub) -> None:
    model = ChatOpenAI(model="stub", base_url=stub.base_url, api_key="k", max_retries=0, timeout=5)  # type: ignore[arg-type]
    stub.reply(
        ChatReply(tool_calls=[("split", json.dumps({"size": 4000})), ("map", json.dumps({"instruction": QUESTION}))]),
        "NONE",
        "NONE",
        "7251904",
        ChatReply(tool_calls=[("aggregate", json.dumps({"buffer": "results", "op": "argmax"}))]),
        "The special magic number for walrus is 7251904.",
    )
    stub.fail_next(Fault(503))  # the first request fails once and is retried
    agent = RlmAgent(
        model,
        limits=RlmLimits(max_concurrency=1, sub_context_chars=4_000),
        retry=RetryPolicy(max_attempts=2, initial_wait=0.01, max_wait=0.05, jitter=0.0),
    )
    result = agent.invoke(QUESTION, context=haystack(9_000, 0.9))
    assert result.exit_reason == "answered"
    assert result.answer == "The special magic number for walrus is 7251904."
    assert result.usage["model_calls"] == 6
    assert result.usage["retries"] == 1
    assert result.usage["total_tokens"] == 6 * 18  # the stub reports 11 + 7 per call
    chats = [r["body"] for r in stub.state.requests if r["path"].endswith("/chat/completions")]
    assert [t["function"]["name"] for t in chats[0]["tools"]][:3] == ["info", "peek", "grep"]
    assert NEEDLE not in json.dumps(chats[0]["messages"])  # the root never sees the context
    assert any(NEEDLE in json.dumps(c["messages"]) for c in chats[2:5])  # a sub-call read it


@pytest.mark.model
def test_cli_ask_long(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "essay.txt").write_text(haystack(120_000, 0.7))
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 broken")
    code = main(["ask", "--long", str(tmp_path), QUESTION, "--trace"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "7251904" in captured.out
    assert "extractive" in captured.out
    assert "sub-calls" in captured.out
    assert "d0 run" in captured.out
    assert "broken.pdf" in captured.err
    code = main(["ask", "--long", str(tmp_path / "essay.txt"), QUESTION, "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["exit_reason"] == "answered"
    assert "7251904" in data["answer"]
    assert data["chars"] > 120_000
    assert data["usage"]["sub_calls"] >= 3


def test_cli_ask_long_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["ask", "--long", str(tmp_path / "nope.txt"), QUESTION])
    assert code == 1
    assert "nope.txt" in capsys.readouterr().err


def test_settings_reach_the_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARAG_RLM_MAX_DEPTH", "1")
    monkeypatch.setenv("ARAG_RLM_SUB_CONTEXT_CHARS", "1234")
    monkeypatch.setenv("ARAG_RLM_MAX_CONCURRENCY", "4")
    agent = RlmAgent.from_settings(Settings())
    assert (agent.limits.max_depth, agent.limits.sub_context_chars, agent.limits.max_concurrency) == (1, 1234, 4)
    assert agent.kind == "heuristic"
    assert agent.sandbox is None


# -- the RAG hand-over: read_document --------------------------------------------------------


def test_a_stored_document_is_rebuilt_exactly(memory_store: QdrantStore, fake_embeddings: FakeEmbeddings) -> None:
    text = haystack(30_000, 0.6)  # repetitive text: overlaps cannot be told apart by content alone
    Ingestor(memory_store, fake_embeddings).ingest_documents([Document("d", text, "Essay", "/e.txt")], "kb")
    stored = Retriever(store=memory_store, embeddings=fake_embeddings).document("d")
    assert stored.chunks > 30
    assert stored.source == "kb"
    assert stored.title == "Essay"
    assert stored.text == text.strip()


def test_join_chunks_drops_the_splitter_overlap() -> None:
    """Chunks stored without offsets are joined by finding the overlap."""
    text = " ".join(f"Sentence {i} says something about topic {i * 7 % 13}." for i in range(600))
    chunks = Chunker(chunk_size=1000, chunk_overlap=200).split(Document("d", text, "Essay", "/e.txt"), "kb")
    assert len(chunks) > 20
    rebuilt = join_chunks([c.payload["text"] for c in chunks])
    assert " ".join(rebuilt.split()) == " ".join(text.split())
    assert join_chunks(["first part", "second part"]) == "first part\n\nsecond part"
    assert join_chunks([]) == ""


def test_react_hands_a_whole_document_to_the_recursive_agent(
    memory_store: QdrantStore, fake_embeddings: FakeEmbeddings
) -> None:
    long_doc = Document("essay-1", haystack(200_000, 0.8), "Walrus essay", "/essays/walrus.txt")
    Ingestor(memory_store, fake_embeddings).ingest_documents([long_doc, *SHORT], "kb", description="essays")
    retriever = Retriever(store=memory_store, embeddings=fake_embeddings)
    model = scripted(
        AIMessage("", tool_calls=[_call("search_kb", {"query": "walrus essay"}, "s")]),
        AIMessage("", tool_calls=[_call("read_document", {"document": "essay-1", "question": QUESTION}, "r")]),
        AIMessage("", tool_calls=[_call("read_document", {"document": "nope", "question": QUESTION}, "x")]),
        "7251904 [1]",
    )
    agent = ReactAgent(model, retriever=retriever, read_documents=RlmAgent())
    assert [t.name for t in agent.tools] == ["search_kb", "read_document"]
    result = agent.invoke(QUESTION)
    assert result.exit_reason == "answered"
    assert [c["status"] for c in result.tool_calls] == ["success", "success", "error"]
    tool_messages = [m for m in model.prompts[-1] if isinstance(m, ToolMessage)]
    assert "doc=" in str(tool_messages[0].content)
    read = str(tool_messages[1].content)
    assert "7251904" in read
    assert "200," in read
    assert "exit answered" in read
    assert "no document 'nope'" in str(tool_messages[2].content)  # a bad id goes back to the model


def test_react_without_the_hand_over(memory_store: QdrantStore, fake_embeddings: FakeEmbeddings) -> None:
    Ingestor(memory_store, fake_embeddings).ingest_documents(SHORT, "kb")
    retriever = Retriever(store=memory_store, embeddings=fake_embeddings)
    agent = ReactAgent(scripted("x"), retriever=retriever, read_documents=False)
    assert [t.name for t in agent.tools] == ["search_kb"]
    with pytest.raises(LookupError, match="doc id from the search results"):
        retriever.document("missing")


def _call(name: str, args: dict[str, object], call_id: str) -> dict[str, object]:
    return {"name": name, "args": args, "id": call_id, "type": "tool_call"}


SHORT = [
    Document("note-1", "Walruses live in the Arctic and haul out on ice.", "Walrus note", "/notes/1.txt"),
    Document("note-2", "Krill is what blue whales eat.", "Whale note", "/notes/2.txt"),
]


def test_chunk_offsets_give_up_cleanly() -> None:
    text = haystack(100_000, 0.5)
    pieces = [c.text for c in Chunker().split(Document("d", text, "", "/d"), "kb")]
    starts = chunk_offsets(text, pieces)
    assert all(text[s : s + len(p)] == p for s, p in zip(starts, pieces, strict=True))
    assert starts == sorted(starts)
    assert starts[0] == 0
    assert starts[-1] + len(pieces[-1]) == len(text.rstrip())
    assert set(chunk_offsets(text, pieces, max_work=0)) == {-1}  # too repetitive for the budget
    assert chunk_offsets(text, ["not in the text"]) == [-1]
    assert chunk_offsets(text, []) == []
