"""The ReAct tool-calling graph with a scripted model: parallel tool calls, tool errors, step limit,
budget, and bad set-ups."""

from __future__ import annotations

import time

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool

from agents.react_agent import ReactAgent
from agents.settings import Settings
from agents.testing import scripted
from graphs.budget import Limits


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
