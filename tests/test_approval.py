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


# -- the terminal -------------------------------------------------------------------------------


def test_arag_chat_asks_before_a_tool_runs_and_edit_changes_the_call(
    capsys: pytest.CaptureFixture[str], corpus_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`arag chat --agent react` over the real ChatOpenAI client and the loopback stub: the search
    tool needs approval; the user edits its query, then rejects the second call with a reason."""
    import json

    from agents.cli import main
    from agents.testing import ChatReply, OpenAIStub

    assert main(["ingest", str(corpus_dir), "--source", "kb", "-q"]) == 0
    with OpenAIStub() as stub:
        monkeypatch.setenv("ARAG_CHAT_MODEL", "stub")
        monkeypatch.setenv("ARAG_OPENAI_BASE_URL", stub.base_url)
        monkeypatch.setenv("ARAG_TOOLS_APPROVE", "search_kb")
        stub.reply(
            ChatReply(tool_calls=[("search_kb", '{"query": "tower"}')]),
            ChatReply(tool_calls=[("search_kb", '{"query": "again"}')]),
            "The Eiffel Tower is 330 metres tall [1].",
        )
        question, edit = "How tall is the Eiffel Tower?", '{"query": "Eiffel Tower height"}'
        lines = iter([question, "maybe", "e", "{not json", edit, "n", "enough searching", "/exit"])
        monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
        code = main(["chat", "--agent", "react"])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        assert "approval needed: search_kb" in captured.err
        assert "answer y, n or e" in captured.err
        assert "not JSON" in captured.err
        assert "330 metres" in captured.out
        sent = [r["body"]["messages"] for r in stub.state.requests if r["path"].endswith("/chat/completions")]
        tool_results = [m["content"] for m in sent[-1] if m["role"] == "tool"]
        assert "330 metres" in tool_results[0]  # the edited query ran and found the tower
        assert "rejected" in tool_results[1]
        assert "enough searching" in tool_results[1]
        edited = json.loads(sent[1][2]["tool_calls"][0]["function"]["arguments"])
        assert edited == {"query": "tower"}  # the model's own call is kept in the conversation


def test_arag_chat_rejects_when_nobody_answers(
    capsys: pytest.CaptureFixture[str], corpus_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agents.cli import main
    from agents.testing import ChatReply, OpenAIStub

    assert main(["ingest", str(corpus_dir), "--source", "kb", "-q"]) == 0
    with OpenAIStub() as stub:
        monkeypatch.setenv("ARAG_CHAT_MODEL", "stub")
        monkeypatch.setenv("ARAG_OPENAI_BASE_URL", stub.base_url)
        monkeypatch.setenv("ARAG_TOOLS_APPROVE", "*")
        stub.reply(ChatReply(tool_calls=[("search_kb", '{"query": "tower"}')]), "I could not search.")
        lines = iter(["How tall is the Eiffel Tower?"])

        def read(prompt: str = "") -> str:
            try:
                return next(lines)
            except StopIteration:
                raise EOFError from None

        monkeypatch.setattr("builtins.input", read)
        assert main(["chat", "--agent", "react"]) == 0
        captured = capsys.readouterr()
        assert "I could not search." in captured.out
        tool = next(m for m in stub.state.requests[-1]["body"]["messages"] if m["role"] == "tool")
        assert "nobody answered" in tool["content"]


# -- the HTTP server ----------------------------------------------------------------------------


def _chat(url: str, text: str, thread: str) -> dict[str, Any]:
    import httpx

    body = {"model": "react", "messages": [{"role": "user", "content": text}], "thread_id": thread}
    response = httpx.post(url + "/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _tool_contents(stub: Any) -> list[str]:
    last = [r for r in stub.state.requests if r["path"].endswith("/chat/completions")][-1]
    return [m["content"] for m in last["body"]["messages"] if m["role"] == "tool"]


def test_the_server_pauses_for_approval_and_resumes_after_a_restart(tmp_path: Path) -> None:
    """`arag serve` (a real process, threads in SQLite, the real ChatOpenAI on the loopback stub):
    the run pauses; a chat message while it waits runs nothing; the server is stopped and started
    again; the approval endpoint edits the call, the run resumes and answers (streamed)."""
    import json

    import httpx

    from agents.testing import ChatReply, OpenAIStub
    from evals.bench_serve import ServerProcess, ingest

    data = tmp_path / "data"
    data.mkdir()
    ingest(data)
    with OpenAIStub() as stub:
        env = {
            "ARAG_CHAT_MODEL": "stub",
            "ARAG_OPENAI_BASE_URL": stub.base_url,
            "ARAG_OPENAI_API_KEY": "k",
            "ARAG_TOOLS_APPROVE": "search_examples",
            "ARAG_EMBEDDING_CACHE": "false",
        }
        stub.reply(ChatReply(tool_calls=[("search_examples", '{"query": "moon"}')]))
        with ServerProcess(data, env).running() as url:
            paused = _chat(url, "When did Apollo 11 land?", "t1")
            assert paused["arag"]["exit_reason"] == "awaiting_approval"
            [waiting] = paused["arag"]["pending"]
            assert (waiting["tool"], waiting["args"]) == ("search_examples", {"query": "moon"})
            assert "/approve" in paused["choices"][0]["message"]["content"]
            asked = len(stub.state.requests)
            again = _chat(url, "Are you there?", "t1")  # not a command: the calls again, nothing run
            assert again["arag"]["exit_reason"] == "awaiting_approval"
            assert again["arag"]["pending"] == paused["arag"]["pending"]
            assert len(stub.state.requests) == asked
            bad = _chat(url, "/edit {not json", "t1")
            assert "JSON object" in bad["choices"][0]["message"]["content"]
        stub.reply("Apollo 11 landed on 20 July 1969 [1].")
        with ServerProcess(data, env).running() as url:  # a new process: the pause is in the thread store
            nothing = httpx.post(f"{url}/v1/threads/none/approval", json={"decision": {"action": "approve"}})
            assert nothing.status_code == 409
            assert nothing.json()["error"]["code"] == "no_pending_approval"
            for body in ({}, {"decision": {"action": "launch"}}, {"decision": {"action": "edit"}}):
                refused = httpx.post(f"{url}/v1/threads/t1/approval", json=body)
                assert refused.status_code == 400, refused.text
            rag = {"model": "rag", "decision": {"action": "approve"}}
            wrong = httpx.post(f"{url}/v1/threads/t1/approval", json=rag)
            assert wrong.status_code == 400
            decision = {"action": "edit", "args": {"query": "Apollo 11 landing"}}
            with httpx.stream(
                "POST", f"{url}/v1/threads/t1/approval", json={"decision": decision, "stream": True}, timeout=60
            ) as streamed:
                assert streamed.status_code == 200
                events = [json.loads(line[6:]) for line in streamed.iter_lines() if line.startswith("data: {")]
            text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e.get("choices"))
            assert "20 July 1969" in text
            assert "1969" in _tool_contents(stub)[0]  # the edited query ran and found the landing
            last = [e["arag"] for e in events if "exit_reason" in (e.get("arag") or {})][-1]
            assert last["exit_reason"] == "answered"
            # The next pause is settled in the chat itself.
            stub.reply(ChatReply(tool_calls=[("search_examples", '{"query": "bees"}')]), "Then I will not search.")
            assert _chat(url, "And the bees?", "t1")["arag"]["exit_reason"] == "awaiting_approval"
            done = _chat(url, "/reject not needed", "t1")
            assert done["arag"]["exit_reason"] == "answered"
            assert "not needed" in _tool_contents(stub)[-1]
