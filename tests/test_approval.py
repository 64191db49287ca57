"""Tool approval in the library: a ReAct run that reaches a tool needing approval pauses with a
LangGraph interrupt; approve, edit and reject resume it, in this process or after a restart
(the pause lives in the thread store)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool

from agents import ReactAgent
from agents._thread_store import open_thread_store
from agents.settings import Settings
from agents.testing import scripted

SENT: list[tuple[str, str]] = []
LOOKED_UP: list[str] = []


@tool
def send_mail(to: str, body: str) -> str:
    """Send an email."""
    SENT.append((to, body))
    return f"sent to {to}"


@tool
def lookup(name: str) -> str:
    """Look up a person's address."""
    LOOKED_UP.append(name)
    return f"{name.lower()}@example.org"


@pytest.fixture(autouse=True)
def _clean() -> None:
    SENT.clear()
    LOOKED_UP.clear()


def _call(name: str, args: dict[str, Any], call_id: str) -> dict[str, Any]:
    return {"name": name, "args": args, "id": call_id, "type": "tool_call"}


def _mail(*replies: Any, approve: tuple[str, ...] = ("send_mail",), **kwargs: Any) -> ReactAgent:
    turn = AIMessage("", tool_calls=[_call("send_mail", {"to": "ada@example.org", "body": "hello"}, "c1")])
    return ReactAgent(scripted(turn, *replies), tools=[send_mail, lookup], approve=approve, **kwargs)


def test_a_call_that_needs_approval_pauses_the_run_and_approve_runs_it() -> None:
    agent = _mail("Mailed Ada.")
    paused = agent.invoke("Mail Ada hello", thread_id="t1")
    assert paused.exit_reason == "awaiting_approval"
    assert paused.answer == ""
    assert SENT == []
    [waiting] = paused.pending
    assert (waiting["tool"], waiting["args"], waiting["call_id"]) == (
        "send_mail",
        {"to": "ada@example.org", "body": "hello"},
        "c1",
    )
    assert paused.steps[-1]["event"] == "approval_needed"
    assert agent.pending("t1") == paused.pending
    done = agent.resume("t1", {"action": "approve"})
    assert done.exit_reason == "answered"
    assert done.answer == "Mailed Ada."
    assert done.question == "Mail Ada hello"
    assert SENT == [("ada@example.org", "hello")]
    assert done.tool_calls == [
        {
            "tool": "send_mail",
            "args": {"to": "ada@example.org", "body": "hello"},
            "status": "success",
            "ms": done.tool_calls[0]["ms"],
            "approval": "approved",
        }
    ]
    assert agent.pending("t1") == []


def test_edit_runs_the_call_with_the_new_arguments() -> None:
    agent = _mail("Mailed Bob instead.")
    agent.invoke("Mail Ada hello", thread_id="t1")
    done = agent.resume("t1", {"action": "edit", "args": {"to": "bob@example.org", "body": "hello"}})
    assert done.exit_reason == "answered"
    assert SENT == [("bob@example.org", "hello")]
    assert done.tool_calls[0]["approval"] == "edited"
    assert done.tool_calls[0]["args"] == {"to": "bob@example.org", "body": "hello"}


def test_reject_tells_the_model_why_and_runs_nothing() -> None:
    model_answer = "I did not send it."
    agent = _mail(model_answer)
    agent.invoke("Mail Ada hello", thread_id="t1")
    done = agent.resume("t1", {"action": "reject", "reason": "Ada is on holiday"})
    assert done.exit_reason == "answered"
    assert done.answer == model_answer
    assert SENT == []
    assert done.tool_calls[0]["status"] == "rejected"
    rejected = [m for m in done.messages if isinstance(m, ToolMessage)][-1]
    assert "rejected" in str(rejected.content)
    assert "Ada is on holiday" in str(rejected.content)
    assert rejected.status == "error"


def test_only_the_marked_tool_waits_and_the_others_run_once() -> None:
    turn = AIMessage(
        "",
        tool_calls=[
            _call("lookup", {"name": "Ada"}, "c1"),
            _call("send_mail", {"to": "ada@example.org", "body": "hi"}, "c2"),
        ],
    )
    agent = ReactAgent(scripted(turn, "Done."), tools=[send_mail, lookup], approve=["send_mail"])
    paused = agent.invoke("Find Ada and mail her", thread_id="t1")
    assert [p["tool"] for p in paused.pending] == ["send_mail"]
    assert LOOKED_UP == ["Ada"]
    done = agent.resume("t1", "approve")
    assert done.exit_reason == "answered"
    assert LOOKED_UP == ["Ada"]  # its result was kept with the checkpoint, not run again
    assert SENT == [("ada@example.org", "hi")]


def test_several_waiting_calls_take_a_decision_each_by_id() -> None:
    turn = AIMessage(
        "",
        tool_calls=[
            _call("send_mail", {"to": "ada@example.org", "body": "1"}, "c1"),
            _call("send_mail", {"to": "bob@example.org", "body": "2"}, "c2"),
        ],
    )
    agent = ReactAgent(scripted(turn, "One sent."), tools=[send_mail], approve=["*"])
    paused = agent.invoke("Mail both", thread_id="t1")
    by_call = {p["call_id"]: p["id"] for p in paused.pending}
    assert set(by_call) == {"c1", "c2"}
    done = agent.resume("t1", {by_call["c1"]: {"action": "approve"}, by_call["c2"]: {"action": "reject"}})
    assert done.exit_reason == "answered"
    assert SENT == [("ada@example.org", "1")]
    assert sorted(c["approval"] for c in done.tool_calls) == ["approved", "rejected"]


def test_bad_resumes_are_refused_with_the_way_out() -> None:
    agent = _mail("never")
    with pytest.raises(ValueError, match="no tool call waiting for approval"):
        agent.resume("nothing-here", "approve")
    agent.invoke("Mail Ada hello", thread_id="t1")
    with pytest.raises(ValueError, match="no waiting call has the id"):
        agent.resume("t1", {"not-an-id": "approve"})
    with pytest.raises(ValueError, match="edit needs the new arguments"):
        agent.resume("t1", {"action": "edit"})
    with pytest.raises(ValueError, match="not a valid approval decision"):
        agent.resume("t1", "maybe")
    with pytest.raises(ValueError, match=r"waiting for approval .*send_mail.*resume it"):
        agent.invoke("Something else", thread_id="t1")
    assert SENT == []
    assert len(agent.pending("t1")) == 1  # still waiting, untouched


def test_a_conversation_sent_whole_pauses_in_a_thread_of_its_own() -> None:
    agent = _mail("Mailed.")
    paused = agent.invoke("Mail Ada hello", history=[])
    assert paused.exit_reason == "awaiting_approval"
    assert paused.thread_id
    assert agent.resume(paused.thread_id, "approve").answer == "Mailed."


def test_a_malformed_resume_value_rejects_the_call_inside_the_graph() -> None:
    """The graph's own guard, for resumes that do not come through ReactAgent (the LangGraph
    server): a value that is not a decision never runs the tool."""
    from langgraph.types import Command

    agent = _mail("Not sent.")
    paused = agent.invoke("Mail Ada hello", thread_id="t1")
    assert paused.exit_reason == "awaiting_approval"
    list(
        agent._run(agent.graph, Command(resume={"action": "launch"}), {"configurable": {"thread_id": "t1"}}, "t1", "q")
    )
    assert SENT == []
    state = agent.graph.get_state({"configurable": {"thread_id": "t1"}}).values
    rejected = [m for m in state["messages"] if isinstance(m, ToolMessage)][-1]
    assert "the approval was not valid" in str(rejected.content)


def test_a_paused_run_resumes_after_a_restart(tmp_path: Path) -> None:
    settings = Settings(store={"threads_path": tmp_path / "threads.sqlite"})
    first = open_thread_store(settings)
    try:
        paused = _mail(checkpointer=first.checkpointer).invoke("Mail Ada hello", thread_id="t1")
        assert paused.exit_reason == "awaiting_approval"
    finally:
        first.close()
    second = open_thread_store(settings)  # a new process would open the same file
    try:
        # The first turn is in the thread: the new agent's model only answers after the tool.
        agent = ReactAgent(
            scripted("Mailed after the restart."),
            tools=[send_mail],
            approve=["send_mail"],
            checkpointer=second.checkpointer,
        )
        assert [p["tool"] for p in agent.pending("t1")] == ["send_mail"]
        done = agent.resume("t1", "approve")
    finally:
        second.close()
    assert done.exit_reason == "answered"
    assert done.answer == "Mailed after the restart."
    assert SENT == [("ada@example.org", "hello")]


def test_settings_name_the_tools_that_need_approval(monkeypatch: pytest.MonkeyPatch) -> None:
    from agents.build import build_react_agent

    monkeypatch.setenv("ARAG_TOOLS_APPROVE", "send_mail, lookup")
    agent = build_react_agent(Settings(), scripted("x"), None, tools=[send_mail, lookup])
    assert agent.approve == {"send_mail", "lookup"}
