"""One event vocabulary and one result shape for all three agents (agents/events.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langchain_core.messages import AIMessage, ToolMessage

from agents.events import AgentEvent, AgentResult, Citation, describe
from agents.rag_agent import RagAgent, RagResult
from agents.react_agent import ReactAgent, ReactResult, answer_citations
from agents.rlm_agent import RlmAgent, RlmResult
from agents.testing import FakeEmbeddings, scripted
from graphs.react import search_tool_name
from tests.serving import ingest_corpus
from tools.retrieval import Retriever
from tools.store import QdrantStore

KINDS = {"step", "tool", "token", "draft", "result"}


@pytest.fixture
def retriever() -> Iterator[Retriever]:
    store = QdrantStore(":memory:")
    embeddings = FakeEmbeddings()
    ingest_corpus(store, embeddings)
    yield Retriever(store=store, embeddings=embeddings, k=5)
    store.close()


def _check(events: list[AgentEvent]) -> AgentResult:
    """What every agent's stream promises: known kinds, a described step or tool, one result last."""
    assert {e.kind for e in events} <= KINDS
    assert [e.kind for e in events].count("result") == 1
    assert events[-1].kind == "result"
    for event in events[:-1]:
        if event.kind in ("step", "tool"):
            assert describe(event)
    result = events[-1].result
    assert isinstance(result, AgentResult)
    assert set(result.as_dict()) >= {"answer", "citations", "exit_reason", "usage", "steps", "thread_id", "error"}
    return result


def test_rag_offline_streams_steps_a_draft_then_its_result(retriever: Retriever) -> None:
    events = list(RagAgent(retriever).stream("How tall is the Eiffel Tower?"))
    result = _check(events)
    assert isinstance(result, RagResult)
    assert result.exit_reason == "answered"
    assert {e.kind for e in events} == {"step", "draft", "result"}  # no model: no tokens
    drafts = [e.text for e in events if e.kind == "draft"]
    assert drafts == [result.answer]  # the extractive answer, written, then validated
    assert isinstance(result.citations[0], Citation)
    starts = [describe(e) for e in events if e.data.get("event") == "step_start"]
    assert starts[0] == "analyze ..."


def test_rag_with_a_model_streams_each_draft_before_validation(retriever: Retriever) -> None:
    model = scripted(
        {"standalone": "How tall is the Eiffel Tower?", "queries": [], "sub_questions": [], "hypothetical_passage": ""},
        {"sources": ["landmarks"]},
        {"relevant": [1], "missing": []},
        "The Eiffel Tower is tall [1].",
        {"supported": False, "addresses_question": False, "problems": ["no height given"]},
        {"queries": ["Eiffel Tower height in metres"]},  # refine
        {"relevant": [1], "missing": []},
        "The Eiffel Tower is 330 metres tall [1].",
        {"supported": True, "addresses_question": True, "problems": []},
    )
    events = list(RagAgent(retriever, chat_model=model).stream("How tall is the Eiffel Tower?"))
    result = _check(events)
    assert result.exit_reason == "answered"
    drafts = [e.text for e in events if e.kind == "draft"]
    assert drafts == ["The Eiffel Tower is tall [1].", "The Eiffel Tower is 330 metres tall [1]."]
    assert result.answer == drafts[-1]  # the first draft was rejected by validate, the second kept


def test_react_streams_turns_and_tool_calls_and_cites_from_the_tool_artifact(retriever: Retriever) -> None:
    search = search_tool_name("landmarks")
    model = scripted(
        AIMessage("", tool_calls=[{"name": search, "args": {"query": "Eiffel Tower"}, "id": "a", "type": "tool_call"}]),
        AIMessage("", tool_calls=[{"name": search, "args": {"query": "bridge"}, "id": "b", "type": "tool_call"}]),
        "The Golden Gate Bridge opened in 1937 [1]; the tower is 330 m [2].",
    )
    agent = ReactAgent(model, retriever=retriever, read_documents=False)
    events = list(agent.stream("When did the bridge open?"))
    result = _check(events)
    assert isinstance(result, ReactResult)
    tools = [e for e in events if e.kind == "tool"]
    assert [e.data["tool"] for e in tools] == [search, search]
    assert describe(tools[0]).startswith(search + '({"query": "Eiffel Tower"}')
    assert [e.data.get("event") for e in events if e.kind == "step"] == ["step_start"] * 3
    assert result.steps == [e.data for e in events[:-1]]
    # [n] is passage n of the latest search: the bridge search ranked the bridge first.
    last_search = [m for m in result.messages if isinstance(m, ToolMessage)][-1]
    passages = last_search.artifact
    assert isinstance(passages, list)
    assert [c.chunk_id for c in result.citations] == [passages[0]["id"], passages[1]["id"]]
    assert result.citations[0].title == passages[0]["title"]
    assert [c.number for c in result.citations] == [1, 2]


def test_answer_citations_ignore_marks_without_a_passage() -> None:
    passage = {"id": "c1", "source": "s", "doc_id": "d", "title": "T", "path": "", "text": "x"}
    messages = [ToolMessage("[1] ...", tool_call_id="a", name="search_s", artifact=[passage])]
    cited = answer_citations("yes [1] and [7] and [1]", messages)
    assert [(c.number, c.chunk_id) for c in cited] == [(1, "c1")]
    assert answer_citations("no marks", messages) == []
    assert answer_citations("[1]", [ToolMessage("plain tool", tool_call_id="b", name="calc")]) == []


def test_rlm_streams_steps_and_context_tools_then_its_result() -> None:
    text = "filler. " * 2000 + "The special magic number for walrus is 7251904. " + "filler. " * 2000
    events = list(RlmAgent().stream("What is the special magic number for walrus?", context=text))
    result = _check(events)
    assert isinstance(result, RlmResult)
    assert "7251904" in result.answer
    assert any(e.kind == "tool" and e.data.get("event") == "rlm_tool" for e in events)
    assert result.citations == []


@pytest.mark.parametrize(
    ("event", "line"),
    [
        (AgentEvent("step", data={"event": "step_start", "node": "retrieve"}), "retrieve ..."),
        (
            AgentEvent("step", data={"event": "step_end", "node": "grade", "detail": "3 kept", "ms": 2.4}),
            "grade: 3 kept (2 ms)",
        ),
        (
            AgentEvent("step", data={"event": "retrieved", "source": "docs", "query": "q", "chunks": 4}),
            "retrieve: 4 chunks from docs for 'q'",
        ),
        (AgentEvent("tool", data={"tool": "calc", "args": {"x": 1}, "status": "success"}), 'calc({"x": 1}): success'),
        (
            AgentEvent("tool", data={"event": "rlm_tool", "tool": "grep", "status": "error", "ms": 1.2}),
            "grep: error (1 ms)",
        ),
        (
            AgentEvent("step", data={"event": "rlm_map", "depth": 0, "chunks": 12}),
            'rlm_map: {"depth": 0, "chunks": 12}',
        ),
    ],
    ids=["start", "end", "retrieved", "tool", "rlm-tool", "rlm-step"],
)
def test_describe_reads_every_agents_events(event: AgentEvent, line: str) -> None:
    assert describe(event) == line
