"""The real ``ChatOpenAI`` client over HTTP against the loopback stub: retries (429 with
Retry-After, 500, timeouts), permanent errors, usage, SSE streaming with tool calls, malformed
tool-call JSON, and whole agent runs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_openai import ChatOpenAI

from agents.rag_agent import RagAgent
from agents.react_agent import ReactAgent
from agents.testing import ChatReply, FakeEmbeddings, Fault, OpenAIStub
from graphs.budget import Budget, Limits
from graphs.llm import ModelClient, ModelError, RetryPolicy
from tools.ingest import Ingestor
from tools.ingest.loaders import Document
from tools.retrieval import Retriever
from tools.store import QdrantStore

FAST_RETRY = RetryPolicy(max_attempts=3, initial_wait=0.01, max_wait=2.0, jitter=0.0)


@pytest.fixture
def stub() -> Iterator[OpenAIStub]:
    with OpenAIStub() as server:
        yield server


def chat(stub: OpenAIStub, **kwargs: Any) -> ChatOpenAI:
    options: dict[str, Any] = {"timeout": 5.0, "stream_usage": True, **kwargs}
    return ChatOpenAI(model="stub-model", base_url=stub.base_url, api_key="k", max_retries=0, **options)  # type: ignore[arg-type]


def chat_requests(stub: OpenAIStub) -> list[dict[str, Any]]:
    return [r for r in stub.state.requests if r["path"].endswith("/chat/completions")]


def test_plain_call_counts_usage_from_the_response(stub: OpenAIStub) -> None:
    stub.reply(ChatReply("hello there", usage=(40, 5)))
    budget = Budget()
    reply = ModelClient(chat(stub), FAST_RETRY).invoke([HumanMessage("hi")], budget)
    assert reply.text == "hello there"
    assert (budget.usage.input_tokens, budget.usage.output_tokens) == (40, 5)
    assert budget.usage.estimated is False
    assert budget.usage.model_calls == 1


def test_429_honours_retry_after(stub: OpenAIStub) -> None:
    stub.fail_next(Fault(429, retry_after=0.4))
    stub.reply("after the wait")
    budget = Budget()
    started = time.monotonic()
    reply = ModelClient(chat(stub), FAST_RETRY).invoke([HumanMessage("hi")], budget)
    assert reply.text == "after the wait"
    assert time.monotonic() - started >= 0.4  # backoff alone would have waited 0.01 s
    assert budget.usage.retries == 1
    assert budget.usage.model_calls == 1  # a retried call counts once
    assert len(chat_requests(stub)) == 2


def test_500s_are_retried_then_reported(stub: OpenAIStub) -> None:
    stub.fail_next(Fault(500), Fault(503))
    stub.reply("third time lucky")
    assert ModelClient(chat(stub), FAST_RETRY).invoke([HumanMessage("hi")], Budget()).text == "third time lucky"

    stub.fail_next(Fault(500), Fault(500), Fault(500))
    with pytest.raises(ModelError, match=r"after 3 attempt\(s\): HTTP 500") as caught:
        ModelClient(chat(stub), FAST_RETRY).invoke([HumanMessage("hi")], Budget())
    assert caught.value.attempts == 3


def test_permanent_errors_are_not_retried(stub: OpenAIStub) -> None:
    stub.fail_next(Fault(400))
    with pytest.raises(ModelError, match="HTTP 400") as caught:
        ModelClient(chat(stub), FAST_RETRY).invoke([HumanMessage("hi")], Budget())
    assert caught.value.attempts == 1
    assert len(chat_requests(stub)) == 1


def test_a_slow_response_times_out_and_is_retried(stub: OpenAIStub) -> None:
    stub.reply(ChatReply("too late", delay=1.5), ChatReply("in time"))
    budget = Budget()
    reply = ModelClient(chat(stub, timeout=0.4), FAST_RETRY).invoke([HumanMessage("hi")], budget)
    assert reply.text == "in time"
    assert budget.usage.retries == 1

    stub.reply(*(ChatReply("slow", delay=1.0) for _ in range(2)))
    with pytest.raises(ModelError, match="TimeoutError: Request timed out"):
        ModelClient(chat(stub, timeout=0.3), RetryPolicy(max_attempts=2, initial_wait=0.01, jitter=0)).invoke(
            [HumanMessage("hi")], Budget()
        )


def test_retries_stop_at_the_deadline(stub: OpenAIStub) -> None:
    stub.fail_next(Fault(429, retry_after=30))
    budget = Budget(Limits(deadline_s=0.5))
    started = time.monotonic()
    with pytest.raises(Exception, match="deadline"):
        ModelClient(chat(stub), RetryPolicy(max_attempts=3, max_wait=60)).invoke([HumanMessage("hi")], budget)
    assert time.monotonic() - started < 5  # did not sleep the 30 s the server asked for


def test_sse_streaming_assembles_text_and_tool_calls(stub: OpenAIStub) -> None:
    stub.reply(ChatReply("let me look", tool_calls=[("search_space", '{"query": "Apollo 11", "k": 3}')]))
    model = chat(stub, streaming=True)
    chunks = list(model.bind_tools([_dummy_tool()]).stream([HumanMessage("hi")]))
    assert len(chunks) > 3  # it really streamed
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged = merged + chunk  # type: ignore[assignment]
    assert merged.text == "let me look"
    assert merged.tool_calls[0]["name"] == "search_space"  # type: ignore[attr-defined]
    assert merged.tool_calls[0]["args"] == {"query": "Apollo 11", "k": 3}  # type: ignore[attr-defined]
    assert chat_requests(stub)[-1]["body"]["stream"] is True


def _dummy_tool() -> Any:
    from langchain_core.tools import tool

    @tool
    def search_space(query: str, k: int = 5) -> str:
        """Search the space source."""
        return query

    return search_space


@pytest.fixture
def retriever() -> Iterator[Retriever]:
    store = QdrantStore(":memory:")
    embeddings = FakeEmbeddings()
    docs = [
        Document("apollo", "Apollo 11 landed on the Moon on 20 July 1969.", "Apollo 11", "/c/apollo.txt"),
        Document("saturn", "The Saturn V rocket launched Apollo 11.", "Saturn V", "/c/saturn.txt"),
    ]
    Ingestor(store, embeddings).ingest_documents(docs, "space", description="Space flight")
    yield Retriever(store=store, embeddings=embeddings, k=3)
    store.close()


def test_react_over_sse_recovers_from_malformed_tool_json(stub: OpenAIStub, retriever: Retriever) -> None:
    stub.reply(
        ChatReply("", tool_calls=[("search_space", '{"query": "Apollo 11",, k=}')]),  # broken JSON
        ChatReply("", tool_calls=[("search_space", '{"query": "Apollo 11 landing"}')]),
        ChatReply("Apollo 11 landed on 20 July 1969 [1]."),
    )
    agent = ReactAgent(chat(stub, streaming=True), retriever=retriever, retry=FAST_RETRY)
    result = agent.invoke("When did Apollo 11 land?")
    assert result.exit_reason == "answered"
    assert result.answer == "Apollo 11 landed on 20 July 1969 [1]."
    assert [c["status"] for c in result.tool_calls] == ["invalid_arguments", "success"]
    second = chat_requests(stub)[1]["body"]["messages"]
    tool_message = next(m for m in second if m["role"] == "tool")
    assert "not valid JSON" in tool_message["content"]
    third = chat_requests(stub)[2]["body"]["messages"]
    assert any(m["role"] == "tool" and "20 July 1969" in m["content"] for m in third)
    assert result.usage["model_calls"] == 3
    assert result.usage["input_tokens"] == 33  # 11 per streamed call, from the usage chunk


def test_rag_agent_over_http_streams_answer_tokens(stub: OpenAIStub, retriever: Retriever) -> None:
    stub.reply(
        '{"standalone": "When did Apollo 11 land?", "queries": ["Apollo 11 landing date"]}',
        '{"relevant": [1], "missing": []}',
        "Apollo 11 landed on 20 July 1969 [1].",
        '{"supported": true, "addresses_question": true}',
    )
    stub.fail_next(Fault(429, retry_after=0.05))  # the first call is rate limited once
    agent = RagAgent(retriever, chat_model=chat(stub, streaming=True), retry=FAST_RETRY)
    events = list(agent.stream("When did Apollo 11 land?"))
    tokens = "".join(e.text for e in events if e.kind == "token")
    result = events[-1].result
    assert result is not None
    assert result.exit_reason == "answered", result.steps
    assert tokens == "Apollo 11 landed on 20 July 1969 [1]."
    assert result.answer == tokens
    answer_prompt = chat_requests(stub)[-2]["body"]["messages"][-1]["content"]  # the answer call
    assert f"[1] (space: {result.citations[0].title})" in answer_prompt
    assert result.usage["retries"] == 1
    assert result.usage["model_calls"] == 4  # one source: no routing call


def test_rag_agent_reports_a_dead_model_with_reason(stub: OpenAIStub, retriever: Retriever) -> None:
    stub.fail_next(*(Fault(503) for _ in range(3)))
    agent = RagAgent(retriever, chat_model=chat(stub), retry=FAST_RETRY)
    result = agent.invoke("When did Apollo 11 land?")
    assert result.exit_reason == "error"
    assert "HTTP 503" in (result.error or "")
    assert "could not finish" in result.answer


def test_tool_messages_keep_call_ids(stub: OpenAIStub, retriever: Retriever) -> None:
    stub.reply(ChatReply("", tool_calls=[("search_space", '{"query": "Saturn"}'), ("nope", "{}")]), "done")
    agent = ReactAgent(chat(stub), retriever=retriever, retry=FAST_RETRY)
    result = agent.invoke("What launched Apollo 11?")
    assert [c["status"] for c in result.tool_calls] == ["success", "error"]
    messages = chat_requests(stub)[1]["body"]["messages"]
    ids = [m["tool_call_id"] for m in messages if m["role"] == "tool"]
    assert ids == ["call_0", "call_1"]
    assert isinstance(ToolMessage("x", tool_call_id="a"), ToolMessage)


def test_cli_uses_the_configured_model_end_to_end(
    stub: OpenAIStub, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """ARAG_CHAT_MODEL + ARAG_OPENAI_BASE_URL: ingest (stub embeddings) and ask (stub chat) over HTTP."""
    import json

    from agents.cli import main

    for key, value in {
        "ARAG_CHAT_MODEL": "stub-chat",
        "ARAG_OPENAI_BASE_URL": stub.base_url,
        "ARAG_EMBEDDING_PROVIDER": "openai",
        "ARAG_EMBEDDING_MODEL": "stub-embed",
    }.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "notes.txt").write_text("Apollo 11 landed on the Moon on 20 July 1969.\n")
    assert main(["ingest", str(tmp_path / "notes.txt"), "--source", "notes", "-q"]) == 0
    stub.reply(
        '{"standalone": "When did Apollo 11 land?", "queries": []}',
        '{"relevant": [1], "missing": []}',
        "On 20 July 1969 [1].",
        '{"supported": true, "addresses_question": true}',
    )
    capsys.readouterr()
    assert main(["ask", "When did Apollo 11 land?", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["strategies"] == "llm"
    assert result["answer"] == "On 20 July 1969 [1]."
    assert result["citations"][0]["source"] == "notes"
    assert result["usage"]["model_calls"] == 4
    models = {r["body"].get("model") for r in chat_requests(stub)}
    assert models == {"stub-chat"}
