"""The ReAct tool-calling graph with a scripted model: parallel tool calls, tool errors, step limit,
budget, threads, the graph's contract, and bad set-ups."""

from __future__ import annotations

import threading
import time

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver

from agents.react_agent import ReactAgent
from agents.settings import Settings
from agents.testing import scripted
from graphs.budget import Limits
from graphs.llm import ModelClient
from graphs.react import ReactContext, build_react_graph, initial_state


@tool
def slow_double(x: int) -> int:
    """Double a number, slowly."""
    time.sleep(0.3)
    return 2 * x


@tool
def broken(x: int) -> int:
    """Always fails."""
    msg = "the database is down"
    raise RuntimeError(msg)


def call(name: str, args: dict[str, object], call_id: str) -> dict[str, object]:
    return {"name": name, "args": args, "id": call_id, "type": "tool_call"}


def test_parallel_tool_calls_run_concurrently_and_errors_go_back_to_the_model() -> None:
    model = scripted(
        AIMessage(
            "",
            tool_calls=[
                call("slow_double", {"x": 2}, "a"),
                call("slow_double", {"x": 5}, "b"),
                call("broken", {"x": 1}, "c"),
            ],
        ),
        "4 and 10; the other tool failed.",
    )
    agent = ReactAgent(model, tools=[slow_double, broken])
    started = time.perf_counter()
    result = agent.invoke("double 2 and 5")
    elapsed = time.perf_counter() - started
    assert result.exit_reason == "answered"
    assert result.answer == "4 and 10; the other tool failed."
    assert elapsed < 0.55  # two 0.3 s tools side by side, not one after the other
    assert [c["status"] for c in result.tool_calls] == ["success", "success", "error"]
    tool_messages = [m for m in model.prompts[1] if isinstance(m, ToolMessage)]
    assert [m.content for m in tool_messages[:2]] == ["4", "10"]
    assert "the database is down" in str(tool_messages[2].content)
    assert tool_messages[2].status == "error"


def test_step_limit_ends_with_max_iterations() -> None:
    looping = [AIMessage("", tool_calls=[call("slow_double", {"x": i}, f"c{i}")]) for i in range(3)]
    result = ReactAgent(scripted(*looping), tools=[slow_double], max_turns=3).invoke("loop forever")
    assert result.exit_reason == "max_iterations"
    assert "3 model turns" in (result.error or "")
    assert len(result.tool_calls) == 2  # the third turn's call is not run


def test_budget_ends_the_run() -> None:
    looping = [AIMessage("", tool_calls=[call("slow_double", {"x": i}, f"c{i}")]) for i in range(5)]
    agent = ReactAgent(scripted(*looping), tools=[slow_double], limits=Limits(max_model_calls=2))
    result = agent.invoke("loop")
    assert result.exit_reason == "budget"
    assert "2 model calls" in (result.error or "")


def test_model_failure_is_an_error_exit() -> None:
    result = ReactAgent(scripted(ValueError("bad request")), tools=[slow_double]).invoke("x")
    assert result.exit_reason == "error"
    assert "bad request" in (result.error or "")


def test_bad_setups_fail_early_with_a_fix() -> None:
    with pytest.raises(ValueError, match="no tools"):
        ReactAgent(scripted())
    with pytest.raises(ValueError, match="tool names must be unique"):
        ReactAgent(scripted("x"), tools=[slow_double, slow_double])
    with pytest.raises(ValueError, match="ARAG_CHAT_MODEL"):
        ReactAgent.from_settings(Settings())


def test_a_lone_tool_call_runs_in_the_callers_thread_and_streams_its_events() -> None:
    seen: list[int] = []

    @tool
    def where(x: int) -> int:
        """Report the thread."""
        seen.append(threading.get_ident())
        return x

    model = scripted(AIMessage("", tool_calls=[call("where", {"x": 1}, "a")]), "done")
    events = list(ReactAgent(model, tools=[where]).stream("where?"))
    # No worker thread per step: that hand-off cost more than the rest of a step.
    assert seen == [threading.get_ident()]
    assert [(e.kind, e.data.get("event")) for e in events[:-1]] == [
        ("step", "step_start"),
        ("tool", "tool"),
        ("step", "step_start"),
    ]
    assert [e.data["turn"] for e in events if e.kind == "step"] == [1, 2]
    assert events[1].data["tool"] == "where"
    assert events[1].data["args"] == {"x": 1}
    assert events[1].data["status"] == "success"
    assert isinstance(events[1].data["ms"], float)


def test_unknown_tools_go_back_to_the_model() -> None:
    model = scripted(AIMessage("", tool_calls=[call("nope", {}, "a")]), "sorry")
    result = ReactAgent(model, tools=[slow_double]).invoke("x")
    assert result.exit_reason == "answered"
    assert result.tool_calls[0]["status"] == "error"
    reply = model.prompts[1][-1]
    assert isinstance(reply, ToolMessage)
    assert "no tool named 'nope'" in str(reply.content)
    assert "slow_double" in str(reply.content)


def test_max_parallel_tools_caps_the_calls_running_at_once() -> None:
    running, peak, lock = [0], [0], threading.Lock()

    @tool
    def busy(x: int) -> int:
        """Take a while."""
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.1)
        with lock:
            running[0] -= 1
        return x

    model = scripted(AIMessage("", tool_calls=[call("busy", {"x": i}, f"c{i}") for i in range(5)]), "done")
    context = ReactContext(client=ModelClient(model), tools=[busy], max_parallel_tools=2)
    out = build_react_graph().invoke(initial_state("go"), context=context)
    assert out["exit_reason"] == "answered"
    assert peak[0] == 2
    # Messages and records keep the order of the model's calls, whichever finished first.
    assert [m.tool_call_id for m in out["messages"] if isinstance(m, ToolMessage)] == [f"c{i}" for i in range(5)]
    assert [r["args"]["x"] for r in out["tool_calls"]] == list(range(5))
    with pytest.raises(ValueError, match="max_parallel_tools"):
        ReactContext(client=ModelClient(model), tools=[busy], max_parallel_tools=0)


def test_each_question_of_a_thread_starts_afresh() -> None:
    model = scripted(
        AIMessage("", tool_calls=[call("slow_double", {"x": 1}, "a")]),
        "2",
        AIMessage("", tool_calls=[call("slow_double", {"x": 3}, "b")]),
        "6",
    )
    agent = ReactAgent(model, tools=[slow_double], checkpointer=InMemorySaver(), max_turns=2)
    first = agent.invoke("double 1", thread_id="t")
    second = agent.invoke("double 3", thread_id="t")
    assert (first.answer, second.answer) == ("2", "6")
    # Turns and tool calls are the question's own (Overwrite), the conversation is the thread's.
    assert second.exit_reason == "answered"  # 2 turns again, within max_turns=2
    assert [c["args"] for c in second.tool_calls] == [{"x": 3}]
    assert [m.content for m in second.messages if isinstance(m, HumanMessage)] == ["double 1", "double 3"]


def test_the_graph_declares_what_it_takes_and_gives() -> None:
    graph = build_react_graph()
    taken = graph.get_input_jsonschema()
    assert sorted(taken["properties"]) == ["error", "exit_reason", "messages", "tool_calls", "turns"]
    assert taken["required"] == ["messages"]
    assert sorted(graph.get_output_jsonschema()["properties"]) == ["error", "exit_reason", "messages", "tool_calls"]
    start = initial_state("q", [AIMessage("earlier")])
    assert [type(m).__name__ for m in start["messages"]] == ["AIMessage", "HumanMessage"]
    assert (start["turns"], start["exit_reason"], start["error"]) == (0, "", None)
    edges = {(e.source, e.target, e.conditional) for e in graph.get_graph().edges}
    assert edges == {
        ("__start__", "agent", False),
        ("agent", "tool", True),
        ("agent", "finish", True),
        ("tool", "agent", False),
        ("finish", "__end__", False),
    }


def test_a_store_that_does_not_answer_leaves_search_out_of_the_run_and_says_so() -> None:
    """A Qdrant server not up yet: the agent is built, a run has the other tools and a step saying
    why it cannot search, and the search tools come once the store answers."""
    import socket

    from agents.testing import FakeEmbeddings
    from tests.serving import ingest_corpus
    from tools.retrieval import Retriever
    from tools.store import QdrantStore

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    down = QdrantStore(f"http://127.0.0.1:{closed}", timeout=2)
    retriever = Retriever(store=down, embeddings=FakeEmbeddings())
    agent = ReactAgent(scripted("Answered without searching.", "Now with search."), retriever=retriever, tools=[broken])
    assert [t.name for t in agent.tools] == ["broken"]
    events = list(agent.stream("What is new?"))
    assert events[0].data["event"] == "tools_unavailable"
    assert "the store did not answer" in events[0].data["reason"]
    assert events[-1].result is not None
    assert events[-1].result.answer == "Answered without searching."
    up = QdrantStore(":memory:")
    ingest_corpus(up, FakeEmbeddings())
    retriever.store = up
    assert [t.name for t in agent.tools] == ["search_bees", "search_landmarks", "broken", "read_document"]
    assert agent.store_error is None
    assert all(e.data.get("event") != "tools_unavailable" for e in agent.stream("And now?") if e.kind == "step")
    up.close()
    down.close()
