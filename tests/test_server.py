"""``arag serve`` over real HTTP: the official ``openai`` client (sync and streaming), threads and
whole conversations, the ``rlm`` and ``react`` models, Open WebUI background requests, and every
protection (key, body size, busy server, deadline) answering with OpenAI-style error objects."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from langchain_openai import ChatOpenAI

from agents.react_agent import ReactAgent
from agents.serve import create_app
from agents.settings import Settings
from agents.testing import ChatReply, FakeEmbeddings, OpenAIStub
from graphs.llm import RetryPolicy
from graphs.react import search_tool_name
from tests.serving import offline_agents, running
from tools.store import QdrantStore

EIFFEL = "How tall is the Eiffel Tower?"


class SlowEmbeddings(FakeEmbeddings):
    """Takes ``delay`` seconds per query, to keep runs busy; counts its queries."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__()
        self.delay = delay
        self.queries = 0

    def embed_query(self, text: str) -> list[float]:
        self.queries += 1
        time.sleep(self.delay)
        return super().embed_query(text)


def _serve(settings: Settings | None = None, *, delay: float = 0.0) -> Iterator[tuple[str, SlowEmbeddings]]:
    embeddings = SlowEmbeddings()
    agents = offline_agents(QdrantStore(":memory:"), embeddings)
    embeddings.delay, embeddings.queries = delay, 0
    with running(create_app(settings or Settings(), agents=agents)) as url:
        yield url, embeddings


@pytest.fixture
def server() -> Iterator[str]:
    for url, _ in _serve():
        yield url


@pytest.fixture
def client(server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server + "/v1", api_key="unused", max_retries=0)


def _user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


# -- the official client ------------------------------------------------------------------------


def test_models_are_the_agents_that_can_answer(server: str, client: openai.OpenAI) -> None:
    models = {m.id: m.model_extra or {} for m in client.models.list()}
    assert set(models) == {"rag", "rlm"}  # react needs a chat model: not offered, so not chosen
    assert models["rag"]["available"] is True
    health = httpx.get(server + "/health").json()
    assert health["models"] == ["rag", "rlm"]
    assert "ARAG_CHAT_MODEL" in health["unavailable"]["react"]


def test_openai_client_gets_an_answer_with_citations(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="rag", messages=_user(EIFFEL))
    content = reply.choices[0].message.content or ""
    assert "330 metres" in content
    assert "[1]" in content
    assert "**Sources**\n- [1] Eiffel Tower (landmarks/eiffel)" in content
    extra = reply.model_extra or {}
    (citation,) = extra["citations"]
    assert citation["number"] == 1
    assert (citation["source"], citation["doc_id"]) == ("landmarks", "eiffel")
    assert "330 metres" in citation["text"]
    assert (reply.choices[0].message.model_extra or {})["citations"] == extra["citations"]
    assert extra["arag"]["exit_reason"] == "answered"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is None  # the offline agent calls no model: no zeros that read as counts
    assert "retrieve: " in (reply.choices[0].message.model_extra or {})["reasoning_content"]


def test_openai_client_streams_progress_then_the_answer(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="rag", messages=_user(EIFFEL), stream=True))
    deltas = [c.choices[0].delta for c in chunks]
    assert deltas[0].role == "assistant"
    statuses = [(d.model_extra or {}).get("reasoning_content") for d in deltas]
    first_content = next(i for i, d in enumerate(deltas) if d.content)
    steps = [s for s in statuses[:first_content] if s]
    assert any(s.startswith("retrieve: ") for s in steps)
    assert any(s.startswith("validate: ") for s in steps)
    answer = "".join(d.content or "" for d in deltas)
    assert "330 metres" in answer
    assert "**Sources**" in answer
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    extra = last.model_extra or {}
    assert [c["doc_id"] for c in extra["citations"]] == ["eiffel"]
    assert extra["arag"]["exit_reason"] == "answered"
    steps_data = [(c.model_extra or {}).get("arag", {}).get("step") for c in chunks]
    assert any(s and s.get("event") == "step_end" and s.get("node") == "grade" for s in steps_data)


def test_stream_ends_with_done_and_references_can_be_left_out(server: str) -> None:
    body = {"model": "rag", "messages": _user(EIFFEL), "stream": True, "references": False}
    with httpx.stream("POST", server + "/v1/chat/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    events = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    answer = "".join(e["choices"][0]["delta"].get("content") or "" for e in events)
    assert "330 metres" in answer
    assert "Sources" not in answer


# -- conversations -------------------------------------------------------------------------------


def test_conversation_sent_whole_resolves_a_follow_up(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(model="rag", messages=_user(EIFFEL))
    messages = [*_user(EIFFEL), {"role": "assistant", "content": first.choices[0].message.content}]
    follow_up = client.chat.completions.create(
        model="rag", messages=[*messages, {"role": "user", "content": "When was it completed?"}]
    )
    assert "1889" in (follow_up.choices[0].message.content or "")
    assert (follow_up.model_extra or {})["arag"]["thread_id"] is None  # nothing kept on the server


def test_thread_id_keeps_the_conversation_on_the_server(server: str, client: openai.OpenAI) -> None:
    client.chat.completions.create(model="rag", messages=_user(EIFFEL), extra_body={"thread_id": "t-1"})
    follow_up = client.chat.completions.create(
        model="rag", messages=_user("When was it completed?"), extra_body={"thread_id": "t-1"}
    )
    assert "1889" in (follow_up.choices[0].message.content or "")
    assert (follow_up.model_extra or {})["arag"]["thread_id"] == "t-1"
    thread = httpx.get(server + "/v1/threads/t-1").json()
    assert [m["role"] for m in thread["messages"]] == ["user", "assistant", "user", "assistant"]
    assert thread["messages"][2]["content"] == "When was it completed?"
    missing = httpx.get(server + "/v1/threads/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def test_rlm_model_reads_the_text_of_earlier_messages(client: openai.OpenAI) -> None:
    text = "Filler about nothing in particular. " * 300 + "The vault code is 4711. " + "More filler here. " * 300
    reply = client.chat.completions.create(
        model="rlm", messages=[{"role": "user", "content": text}, *_user("What is the vault code?")]
    )
    assert "4711" in (reply.choices[0].message.content or "")
    assert (reply.model_extra or {})["arag"]["exit_reason"] == "answered"


def test_react_model_over_a_real_chat_model_cites_its_searches() -> None:
    """The ReAct agent on ChatOpenAI over HTTP to the loopback stub: search, then answer."""
    embeddings = FakeEmbeddings()
    with OpenAIStub() as stub:
        agents = offline_agents(QdrantStore(":memory:"), embeddings)
        model = ChatOpenAI(model="stub-model", base_url=stub.base_url, api_key="k", max_retries=0)  # type: ignore[arg-type]
        assert agents.rag is not None
        agents.react = ReactAgent(
            model,
            retriever=agents.rag.retriever,
            retry=RetryPolicy(max_attempts=2, initial_wait=0.01),
            checkpointer=agents.rag.checkpointer,  # one thread store for both, as arag serve builds them
        )
        agents.unavailable = {}
        stub.reply(
            ChatReply(tool_calls=[(search_tool_name("landmarks"), '{"query": "Eiffel Tower height"}')]),
            ChatReply("The Eiffel Tower is 330 metres tall [1]."),
        )
        with running(create_app(Settings(), agents=agents)) as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            chunks = list(client.chat.completions.create(model="react", messages=_user(EIFFEL), stream=True))
            # One thread id used with both agents: each keeps its own thread.
            client.chat.completions.create(model="rag", messages=_user(EIFFEL), extra_body={"thread_id": "t9"})
            stub.reply(ChatReply("It is 330 metres tall."))
            threaded = client.chat.completions.create(
                model="react", messages=_user(EIFFEL), extra_body={"thread_id": "t9"}
            )
            assert (threaded.model_extra or {})["arag"]["thread_id"] == "t9"
            assert threaded.choices[0].message.content == "It is 330 metres tall."
            rag_thread = httpx.get(url + "/v1/threads/t9").json()["messages"]
            assert [m["role"] for m in rag_thread] == ["user", "assistant"]
    statuses = [(c.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for c in chunks]
    assert any(s.startswith(search_tool_name("landmarks") + "(") and "success" in s for s in statuses)
    answer = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert answer.startswith("The Eiffel Tower is 330 metres tall [1].")
    citations = (chunks[-1].model_extra or {})["citations"]
    assert [(c["number"], c["source"], c["doc_id"]) for c in citations] == [(1, "landmarks", "eiffel")]


# -- Open WebUI's background requests -------------------------------------------------------------

TITLE = (
    "### Task:\nGenerate a concise, 3-5 word title with an emoji summarizing the chat history.\n"
    '### Output:\nJSON format: { "title": "your concise title here" }\n'
    "### Chat History:\n<chat_history>\nUSER: How tall is the Eiffel Tower?\nASSISTANT: 330 m [1]\n</chat_history>"
)
TAGS = (
    "### Task:\nGenerate 1-3 broad tags categorizing the main themes of the chat history.\n"
    '### Output:\nJSON format: { "tags": ["tag1", "tag2", "tag3"] }\n<chat_history>\nUSER: hi\n</chat_history>'
)
FOLLOW_UPS = (
    "### Task:\nSuggest 3-5 relevant follow-up questions or prompts that the user might naturally ask next.\n"
    '### Output:\nJSON format: { "follow_ups": ["Question 1?"] }\n<chat_history>\nUSER: hi\n</chat_history>'
)


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        (TITLE, {"title": "Eiffel Tower"}),
        (TAGS, {"tags": ["General"]}),
        (FOLLOW_UPS, {"follow_ups": []}),
    ],
)
def test_background_requests_are_answered_without_retrieval(prompt: str, expected: dict[str, Any]) -> None:
    for url, embeddings in _serve():
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        reply = client.chat.completions.create(model="rag", messages=_user(prompt))
        assert json.loads(reply.choices[0].message.content or "") == expected
        streamed = client.chat.completions.create(model="rag", messages=_user(prompt), stream=True)
        assert json.loads("".join(c.choices[0].delta.content or "" for c in streamed)) == expected
        assert embeddings.queries == 0


# -- bad requests ---------------------------------------------------------------------------------

HEADERS = {"content-type": "application/json"}


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (b'{"messages": [{"role": "user", "content": "hi"}]}', 400, "model"),
        (b'{"model": "nope", "messages": [{"role": "user", "content": "hi"}]}', 404, "does not exist"),
        (b'{"model": "rag", "messages": []}', 400, "at least 1"),
        (b'{"model": "rag", "messages": [{"role": "assistant", "content": "hi"}]}', 400, "last message"),
        (b'{"model": "rag", "messages": [{"role": "wizard", "content": "hi"}]}', 400, "role"),
        (b'{"model": "rag", "messages": [{"role": "user", "content": "   "}]}', 400, "empty"),
        (b'{"model": "rag", "messages": [{"role": "user", "content": 7}]}', 400, "string or a list"),
        (b'{"model": "rag", "stream": "yes please", "messages": [{"role": "user", "content": "hi"}]}', 400, "stream"),
        (b'{"model": "react", "messages": [{"role": "user", "content": "hi"}]}', 400, "ARAG_CHAT_MODEL"),
        (b'{"model": "rlm", "messages": [{"role": "user", "content": "what?"}]}', 400, "long text"),
        (
            b'{"model": "rlm", "thread_id": "x", "messages": [{"role": "user", "content": "a\\n\\nb"}]}',
            400,
            "no threads",
        ),
    ],
)
def test_bad_requests_get_openai_error_objects(server: str, body: bytes, status: int, needle: str) -> None:
    response = httpx.post(server + "/v1/chat/completions", content=body, headers=HEADERS)
    assert response.status_code == status
    error = response.json()["error"]
    assert needle in error["message"]
    assert set(error) == {"message", "type", "param", "code"}


def test_huge_bodies_are_refused_before_they_are_read() -> None:
    for url, _ in _serve(Settings(server={"max_body": 10_000})):
        declared = httpx.post(url + "/v1/chat/completions", content=b"x" * 20_000, headers=HEADERS)
        assert declared.status_code == 413
        assert "ARAG_SERVER_MAX_BODY" in declared.json()["error"]["message"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while read
            for _ in range(20):
                yield b"x" * 1_000

        streamed = httpx.post(url + "/v1/chat/completions", content=chunks(), headers=HEADERS)
        assert streamed.status_code == 413


def test_unknown_routes_and_methods_get_error_objects(server: str) -> None:
    assert httpx.get(server + "/v1/nowhere").json()["error"]["code"] == "not_found"
    wrong = httpx.get(server + "/v1/chat/completions")
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "method_not_allowed"


def test_api_key_is_required_when_set() -> None:
    for url, _ in _serve(Settings(server={"api_key": "s3cret"})):
        for key in ("wrong", None):
            headers = {"authorization": f"Bearer {key}"} if key else {}
            response = httpx.post(url + "/v1/chat/completions", json={"model": "rag"}, headers=headers)
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0).models.list()
        good = openai.OpenAI(base_url=url + "/v1", api_key="s3cret", max_retries=0)
        assert "330" in (
            good.chat.completions.create(model="rag", messages=_user(EIFFEL)).choices[0].message.content or ""
        )
        assert httpx.get(url + "/health").status_code == 200  # health and the page stay open


def test_openai_client_raises_typed_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.chat.completions.create(model="gpt-99", messages=_user("hi"))
    with pytest.raises(openai.BadRequestError, match="last message"):
        client.chat.completions.create(model="rag", messages=[{"role": "assistant", "content": "hi"}])


# -- busy server, deadline ------------------------------------------------------------------------


def _post_all(url: str, n: int, *, stream: bool = False) -> list[httpx.Response]:
    results: list[httpx.Response] = []
    lock = threading.Lock()

    def one() -> None:
        body = {"model": "rag", "messages": _user(EIFFEL), "stream": stream}
        response = httpx.post(url + "/v1/chat/completions", json=body, timeout=30)
        with lock:
            results.append(response)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_past_runs_and_queue_clients_get_429_with_retry_after() -> None:
    for url, _ in _serve(Settings(server={"max_runs": 1, "max_queue": 1}), delay=0.4):
        responses = _post_all(url, 5)
        codes = sorted(r.status_code for r in responses)
        assert codes == [200, 200, 429, 429, 429]
        for refused in (r for r in responses if r.status_code == 429):
            assert int(refused.headers["retry-after"]) >= 1
            assert refused.json()["error"]["code"] == "rate_limit_exceeded"
        health = httpx.get(url + "/health").json()
        assert (health["running"], health["waiting"]) == (0, 0)  # every slot given back
        assert httpx.post(url + "/v1/chat/completions", json={"model": "rag", "messages": _user(EIFFEL)}).is_success


def test_a_streaming_client_waiting_for_a_slot_is_told_so() -> None:
    for url, _ in _serve(Settings(server={"max_runs": 1, "max_queue": 2}), delay=0.3):
        responses = _post_all(url, 2, stream=True)
        assert all(r.status_code == 200 for r in responses)
        texts = [r.text for r in responses]
        assert sum("waiting for a free run slot" in t for t in texts) == 1
        assert all("330 metres" in t and t.rstrip().endswith("data: [DONE]") for t in texts)


def test_the_deadline_stops_a_run_with_504_or_an_error_event() -> None:
    for url, embeddings in _serve(Settings(server={"deadline": 0.3}), delay=1.0):
        response = httpx.post(url + "/v1/chat/completions", json={"model": "rag", "messages": _user(EIFFEL)})
        assert response.status_code == 504
        assert "ARAG_SERVER_DEADLINE" in response.json()["error"]["message"]
        body = {"model": "rag", "messages": _user(EIFFEL), "stream": True}
        with httpx.stream("POST", url + "/v1/chat/completions", json=body) as streamed:
            lines = [line for line in streamed.iter_lines() if line]
        assert json.loads(lines[-2].removeprefix("data: "))["error"]["code"] == "timeout"
        assert lines[-1] == "data: [DONE]"
        deadline = time.monotonic() + 10
        while httpx.get(url + "/health").json()["running"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert httpx.get(url + "/health").json()["running"] == 0  # the stopped runs gave their slots back
        asked = embeddings.queries
        time.sleep(1.2)
        assert embeddings.queries == asked  # and do not go on searching


# -- the real thing: `arag serve` with the local model ---------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.model
def test_arag_serve_answers_the_openai_client(corpus_dir: Path, tmp_path: Path) -> None:
    """`arag ingest` then `arag serve` as a user runs them: real model, embedded store, threads on disk."""
    env = {**os.environ, "ARAG_DATA_DIR": str(tmp_path / "served"), "ARAG_API_KEY": "k"}
    cli = [sys.executable, "-m", "agents.cli"]
    subprocess.run([*cli, "ingest", str(corpus_dir), "--source", "docs"], env=env, check=True, capture_output=True)
    port = _free_port()
    process = subprocess.Popen(
        [*cli, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(url + "/health").is_success:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline, "arag serve did not come up in 90 s"
            time.sleep(0.2)
        client = openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0)
        reply = client.chat.completions.create(model="rag", messages=_user(EIFFEL), extra_body={"thread_id": "u1"})
        assert "330" in (reply.choices[0].message.content or "")
        assert (reply.model_extra or {})["citations"][0]["source"] == "docs"
        streamed = "".join(
            c.choices[0].delta.content or ""
            for c in client.chat.completions.create(model="rag", messages=_user(EIFFEL), stream=True)
        )
        assert "330" in streamed
        assert httpx.get(url + "/", headers={"authorization": "Bearer k"}).status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert (tmp_path / "served" / "threads.sqlite").is_file()
