"""The conformance matrix: the real ``ChatOpenAI`` client over HTTP against the loopback stub
behaving like OpenAI, vLLM, Ollama and llama-cpp-python (``agents.testing.SERVER_QUIRKS``).

For each server: the output cap holds, structured output and tool choice take the path that
server supports, what it refused is not asked again, and the path is in the run's trace.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from agents import ReactAgent
from agents.models import build_chat_model
from agents.settings import Settings
from agents.testing import SERVER_QUIRKS, ChatReply, OpenAIStub, Quirks
from graphs.budget import Budget
from graphs.llm import ModelClient

SERVERS = sorted(SERVER_QUIRKS)
TOOL_SERVERS = [s for s in SERVERS if s != "llama-server"]  # llama-server without --jinja takes no tools
CAP = 16


class _Plan(BaseModel):
    standalone: str
    queries: list[str]


@tool
def search_space(query: str) -> str:
    """Search the notes on space flight."""
    return f"Apollo 11 landed on 20 July 1969 ({query})"


@tool
def convert(value: float) -> str:
    """Convert miles to kilometres."""
    return str(value * 1.609)


def _client(stub: OpenAIStub, cap: int | None = CAP) -> ModelClient:
    model = ChatOpenAI(model="m", base_url=stub.base_url, api_key="k", max_retries=0, max_tokens=cap, timeout=10)  # type: ignore[call-arg]
    return ModelClient(model)


def _chats(stub: OpenAIStub) -> list[dict[str, Any]]:
    return [r["body"] for r in stub.state.requests if r["path"].endswith("/chat/completions")]


def bodies_assistant(stub: OpenAIStub) -> list[dict[str, Any]]:
    """The assistant turns of the last request."""
    return [m for m in _chats(stub)[-1]["messages"] if m["role"] == "assistant"]


LONG = ChatReply(" ".join(f"word{i}" for i in range(200)), usage=(10, 200))

EXPECTED = {
    # server: (cap parameters sent once settled, structured path, required tool choice path)
    "openai": ("max_completion_tokens", "json_schema", "required"),
    "vllm": ("max_completion_tokens+max_tokens", "json_schema", "required"),
    "ollama": ("max_completion_tokens+max_tokens", "json_schema", "required"),
    "llama-cpp-python": ("max_completion_tokens+max_tokens", "json_object", "named:search_space"),
    "llama-server": ("max_completion_tokens+max_tokens", "json_schema", ""),
}


@pytest.mark.parametrize("server", SERVERS)
def test_the_output_cap_holds_on_every_server(server: str) -> None:
    with OpenAIStub(quirks=server) as stub:
        client, budget = _client(stub), Budget()
        stub.reply(LONG, LONG)
        first = client.invoke([HumanMessage("Tell a long story")], budget)
        second = client.invoke([HumanMessage("Another one")], budget)
        for reply in (first, second):
            assert reply.usage_metadata is not None
            assert reply.usage_metadata["output_tokens"] <= CAP
            assert len(str(reply.content).split()) <= CAP
        assert budget.model_paths["cap"] == EXPECTED[server][0]
        bodies = _chats(stub)
        # Both cap names go out until the server refuses one; then only the other, remembered.
        assert bodies[0]["max_tokens"] == bodies[0]["max_completion_tokens"] == CAP
        last = bodies[-1]
        assert last.get("max_completion_tokens") == CAP
        assert ("max_tokens" in last) is (server != "openai")
        assert len(bodies) == (3 if server == "openai" else 2)  # one refused request, once


@pytest.mark.parametrize("server", SERVERS)
def test_structured_output_takes_the_path_the_server_supports(server: str) -> None:
    plan = '{"standalone": "When did Apollo 11 land?", "queries": ["Apollo 11 landing date"]}'
    with OpenAIStub(quirks=server) as stub:
        client, budget = _client(stub), Budget()
        stub.reply(plan, plan)
        for _ in range(2):
            parsed = client.structured([HumanMessage("plan a search")], _Plan, budget)
            assert parsed == _Plan(standalone="When did Apollo 11 land?", queries=["Apollo 11 landing date"])
        path = EXPECTED[server][1]
        assert budget.model_paths["structured"] == path
        formats = [b.get("response_format", {}).get("type") for b in _chats(stub)]
        refused = ["json_schema"] if server in ("llama-cpp-python", "openai") else []  # openai: max_tokens refused
        assert formats == [*refused, path, path]  # a refused request is sent once, not again
        if server == "llama-cpp-python":
            assert budget.fallbacks[0]["feature"] == "structured"
            assert budget.fallbacks[0]["chosen"] == "json_object"
            assert "500" in budget.fallbacks[0]["reason"]
            assert _chats(stub)[1]["response_format"]["schema"]["title"] == "_Plan"  # grammar from the schema


@pytest.mark.parametrize("server", TOOL_SERVERS)
def test_required_tool_choice_falls_back_to_naming_the_first_tool(server: str) -> None:
    call = ChatReply(tool_calls=[("search_space", '{"query": "Apollo 11"}')])
    with OpenAIStub(quirks=server) as stub:
        client, budget = _client(stub), Budget()
        stub.reply(call, call)
        for _ in range(2):
            reply = client.invoke(
                [HumanMessage("When?")], budget, tools=[search_space, convert], tool_choice="required"
            )
            assert [c["name"] for c in reply.tool_calls] == ["search_space"]
            assert reply.tool_calls[0]["args"] == {"query": "Apollo 11"}
        assert budget.model_paths["tool_choice"] == EXPECTED[server][2]
        choices = [b.get("tool_choice") for b in _chats(stub)]
        if server == "llama-cpp-python":
            named = {"type": "function", "function": {"name": "search_space"}}
            assert choices == ["required", named, named]
            assert client.refused == {"tool_choice=required"}
        else:  # openai: once more for the refused max_tokens
            assert choices == ["required"] * (3 if server == "openai" else 2)


def test_a_server_that_ignores_tool_choice_is_named_in_the_trace() -> None:
    with OpenAIStub(quirks="ollama") as stub:
        client, budget = _client(stub), Budget()
        stub.reply("I think it was 1969.")
        reply = client.invoke([HumanMessage("When?")], budget, tools=[search_space], tool_choice="required")
        assert not reply.tool_calls
        assert budget.model_paths["tool_choice"] == "required (ignored by the server)"
        assert budget.fallbacks == [
            {
                "feature": "tool_choice",
                "refused": "required",
                "chosen": "required (ignored by the server)",
                "reason": "the reply called no tool",
            }
        ]


def test_structured_output_falls_to_a_tool_call_then_to_the_text() -> None:
    plan = '{"standalone": "q", "queries": []}'
    no_formats = Quirks("strict", json_schema="refused", json_object="refused")
    with OpenAIStub(quirks=no_formats) as stub:
        client, budget = _client(stub), Budget()
        stub.reply(plan)
        assert client.structured([HumanMessage("plan")], _Plan, budget) == _Plan(standalone="q", queries=[])
        assert budget.model_paths["structured"] == "tools"
        last = _chats(stub)[-1]
        assert last["tool_choice"] == {"type": "function", "function": {"name": "Plan"}}
        assert "response_format" not in last
    nothing = Quirks("bare", json_schema="refused", json_object="refused", tool_choice_named="refused")
    with OpenAIStub(quirks=nothing) as stub:
        client, budget = _client(stub), Budget()
        stub.reply(plan)
        assert client.structured([HumanMessage("plan")], _Plan, budget) == _Plan(standalone="q", queries=[])
        assert budget.model_paths["structured"] == "text"
        assert [f["refused"] for f in budget.fallbacks] == ["json_schema"]
        assert "tools refused" in budget.fallbacks[0]["reason"]
        assert len(_chats(stub)) == 4  # three refusals and the call that worked


def test_a_server_that_refuses_max_completion_tokens_gets_max_tokens_only() -> None:
    legacy = Quirks("legacy", honours=("max_tokens",), refuses=("max_completion_tokens",))
    with OpenAIStub(quirks=legacy) as stub:
        client, budget = _client(stub), Budget()
        stub.reply(LONG)
        reply = client.invoke([HumanMessage("story")], budget)
        assert reply.usage_metadata is not None
        assert reply.usage_metadata["output_tokens"] == CAP
        assert budget.model_paths["cap"] == "max_tokens"
        assert "max_completion_tokens" not in _chats(stub)[-1]


def test_a_server_that_ignores_every_cap_is_reported() -> None:
    deaf = Quirks("deaf", honours=())
    with OpenAIStub(quirks=deaf) as stub:
        client, budget = _client(stub), Budget()
        stub.reply(LONG)
        client.invoke([HumanMessage("story")], budget)
        assert budget.model_paths["cap"] == "ignored by the server"
        assert budget.fallbacks[0]["reason"] == f"a reply of 200 tokens over the cap of {CAP}"


def test_a_server_error_that_is_not_a_refusal_is_still_retried() -> None:
    from agents.testing import Fault

    with OpenAIStub(quirks="vllm") as stub:
        client, budget = _client(stub), Budget()
        client.retry = type(client.retry)(max_attempts=3, initial_wait=0.01, jitter=0.0)
        stub.fail_next(Fault(503))
        stub.reply("fine")
        assert client.invoke([HumanMessage("hi")], budget).content == "fine"
        assert budget.usage.retries == 1
        assert client.refused == set()


def test_a_server_that_takes_no_tools_ends_the_react_run_with_its_reason() -> None:
    """llama-server without --jinja: every way of asking for a tool is refused, so the run ends
    with ``error`` and the server's own words, after one request per way (no retry storm)."""
    with OpenAIStub(quirks="llama-server") as stub:
        model = ChatOpenAI(model="m", base_url=stub.base_url, api_key="k", max_retries=0, max_tokens=64)  # type: ignore[call-arg]
        result = ReactAgent(model, tools=[search_space], first_tool_choice="required").invoke("When?")
        assert result.exit_reason == "error"
        assert result.error is not None
        assert "tools param requires --jinja flag" in result.error
        choices = [b.get("tool_choice", "auto") for b in _chats(stub)]
        assert choices == ["required", {"type": "function", "function": {"name": "search_space"}}, "auto"]


@pytest.mark.parametrize("server", TOOL_SERVERS)
def test_a_react_run_on_every_server_calls_its_tool_and_answers(server: str) -> None:
    with OpenAIStub(quirks=server) as stub:
        stub.reply(ChatReply(tool_calls=[("search_space", '{"query": "Apollo 11 landing"}')]), "On 20 July 1969.")
        model = ChatOpenAI(model="m", base_url=stub.base_url, api_key="k", max_retries=0, max_tokens=64)  # type: ignore[call-arg]
        agent = ReactAgent(model, tools=[search_space], first_tool_choice="required")
        result = agent.invoke("When did Apollo 11 land?")
        assert result.exit_reason == "answered"
        assert result.answer == "On 20 July 1969."
        assert [(c["tool"], c["status"]) for c in result.tool_calls] == [("search_space", "success")]
        assert result.usage["model_paths"]["tool_choice"] == EXPECTED[server][2]
        fallbacks = {s["feature"] for s in result.steps if s.get("event") == "model_fallback"}
        expected = {"openai": {"cap"}, "llama-cpp-python": {"tool_choice", "messages"}}.get(server, set())
        assert fallbacks == expected
        if server == "llama-cpp-python":  # the tool-call turn went back with a blank text, not null
            assert bodies_assistant(stub)[-1]["content"] == " "
        bodies = _chats(stub)
        assert "tool_choice" not in bodies[-1]  # later turns leave the choice to the model


def test_the_react_default_is_required_with_a_retriever_and_auto_without() -> None:
    from agents.testing import scripted

    assert ReactAgent(scripted("x"), tools=[convert]).first_tool_choice == "auto"
    with OpenAIStub() as stub:
        stub.reply("no tools needed")
        model = ChatOpenAI(model="m", base_url=stub.base_url, api_key="k", max_retries=0)
        result = ReactAgent(model, tools=[convert]).invoke("hello")
        assert result.exit_reason == "answered"
        assert "tool_choice" not in _chats(stub)[0]


def test_settings_cap_every_reply(monkeypatch: pytest.MonkeyPatch) -> None:
    with OpenAIStub(quirks="llama-cpp-python") as stub:
        monkeypatch.setenv("ARAG_MAX_OUTPUT_TOKENS", "12")
        settings = Settings(model={"name": "m", "base_url": stub.base_url})
        model = build_chat_model(settings)
        assert model is not None
        stub.reply(LONG)
        reply = ModelClient(model).invoke([HumanMessage("story")], Budget())
        assert reply.usage_metadata is not None
        assert reply.usage_metadata["output_tokens"] == 12
        assert _chats(stub)[0]["max_tokens"] == _chats(stub)[0]["max_completion_tokens"] == 12


def test_other_chat_model_classes_get_required_in_their_own_spelling() -> None:
    """LangChain's non-OpenAI chat models spell "required" as "any"; a class that refuses a tool
    choice outright gets the tools alone, so the run goes on."""
    from agents.testing import ScriptedChatModel

    seen: list[Any] = []

    class Picky(ScriptedChatModel):
        def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
            seen.append(kwargs.get("tool_choice"))
            if kwargs.get("tool_choice") == "any":
                raise NotImplementedError("no tool_choice here")
            return self

    model = Picky(responses=["fine"])
    reply = ModelClient(model).invoke([HumanMessage("hi")], Budget(), tools=[convert], tool_choice="required")
    assert reply.content == "fine"
    assert seen == ["any", None]
