"""A loopback OpenAI-compatible server for tests: the real ``openai`` client talks HTTP to it.

Serves ``POST /v1/embeddings`` with deterministic bag-of-words vectors and ``POST
/v1/chat/completions`` with scripted replies (text or tool calls, JSON or SSE streaming, optionally
slow or with malformed tool-call arguments). It can be told to answer the next requests with faults
(a status code, an optional ``Retry-After``, an optional raw body such as malformed JSON) to exercise
client retries and error handling, and to behave like a given server (:class:`Quirks`,
:data:`SERVER_QUIRKS`: which output-cap parameter it honours or refuses, which ``response_format``
and ``tool_choice`` values it refuses or ignores). It binds 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal

import numpy as np

__all__ = ["SERVER_QUIRKS", "ChatReply", "Fault", "OpenAIStub", "Quirks", "StubState", "stub_vector"]

Support = Literal["ok", "refused", "ignored"]


@dataclass(frozen=True)
class Quirks:
    """How an OpenAI-compatible server treats the request features clients depend on.

    ``refused`` answers the request with :attr:`refusal_status`; ``ignored`` serves it as if the
    feature had not been asked for. The default is a server that does everything OpenAI's API
    documents.
    """

    name: str = "openai-api"
    honours: tuple[str, ...] = ("max_completion_tokens", "max_tokens")
    """Output-cap parameters the server applies (the smallest one sent wins)."""
    refuses: tuple[str, ...] = ()
    """Request parameters answered with a 400 naming them (OpenAI's reasoning models: ``max_tokens``)."""
    json_schema: Support = "ok"
    """``response_format: {"type": "json_schema"}``."""
    json_object: Support = "ok"
    """``response_format: {"type": "json_object"}``."""
    tool_choice_required: Support = "ok"
    tool_choice_named: Support = "ok"
    tools: Support = "ok"
    """A request with ``tools`` at all (llama.cpp's llama-server without ``--jinja`` refuses it)."""
    null_content: Support = "ok"
    """An assistant tool-call turn sent back with ``content: null`` (what langchain-openai sends)."""
    calls_tools_unasked: bool = True
    """Whether the model calls tools without a ``tool_choice``; when not, a scripted tool call is
    served as text (a base model behind llama-cpp-python's function-calling format never calls one)."""
    refusal_status: int = 400
    """Status of a refused feature (llama-cpp-python: 500, an exception in the handler)."""


SERVER_QUIRKS: dict[str, Quirks] = {
    # OpenAI itself, reasoning models (o-series, gpt-5): max_tokens is refused for max_completion_tokens.
    "openai": Quirks("openai", honours=("max_completion_tokens",), refuses=("max_tokens",)),
    # vLLM's OpenAI server: both cap names, guided decoding for json_schema, required and named choice.
    "vllm": Quirks("vllm"),
    # Ollama's /v1: max_tokens only, json_schema through its format option, tool_choice ignored.
    "ollama": Quirks("ollama", honours=("max_tokens",), tool_choice_required="ignored", tool_choice_named="ignored"),
    # llama-cpp-python 0.3.x's server, chatml-function-calling (what issue 20 measured): max_tokens
    # only, json_schema and tool_choice "required" are HTTP 500s, json_object with a schema and a
    # named tool choice are grammar-constrained, an assistant turn's content must be a string, and
    # the model never calls a tool unasked.
    "llama-cpp-python": Quirks(
        "llama-cpp-python",
        honours=("max_tokens",),
        json_schema="refused",
        tool_choice_required="refused",
        null_content="refused",
        calls_tools_unasked=False,
        refusal_status=500,
    ),
    # llama.cpp's own llama-server started without --jinja: max_tokens (and n_predict) only,
    # json_schema through its grammar, and any request with tools is a 500 naming the flag.
    "llama-server": Quirks("llama-server", honours=("max_tokens",), tools="refused", refusal_status=500),
}
"""The servers the conformance matrix (tests/test_model_compat.py) emulates."""


@dataclass
class Fault:
    """A response the stub sends instead of the real one, for one request.

    Example:
        >>> from agents.testing import Fault
        >>> rate_limited = Fault(429, retry_after=0.5)  # the client should wait, then retry
        >>> server_error = Fault(500)  # a transient fault: retried
        >>> malformed = Fault(200, body='{"choices": [')  # a 200 whose body is not valid JSON
    """

    status: int
    """The HTTP status code (e.g. 429, 500, 503, 400)."""
    retry_after: float | None = None
    """Seconds sent in a ``Retry-After`` header (``None``: no header)."""
    body: str | None = None
    """Raw response body, sent as is (``None``: an OpenAI-style JSON error)."""


@dataclass
class ChatReply:
    """One scripted chat completion.

    Example:
        >>> from agents.testing import ChatReply
        >>> ChatReply("It landed in 1969.", usage=(40, 5)).usage
        (40, 5)
        >>> search = ChatReply(tool_calls=[("search_space", '{"query": "Apollo 11"}')])
        >>> broken = ChatReply(tool_calls=[("search_space", '{"query": ')])  # malformed arguments
        >>> slow = ChatReply("too late", delay=1.5)  # trips a client timeout below 1.5 s
    """

    content: str = ""
    """The reply's text (streamed word by word when the client streams)."""
    tool_calls: list[tuple[str, str]] = field(default_factory=list)
    """(tool name, arguments as raw text: may be malformed JSON on purpose)."""
    delay: float = 0.0
    """Seconds to wait before answering (to trip client timeouts)."""
    usage: tuple[int, int] = (11, 7)
    """(prompt tokens, completion tokens) reported."""
    finish_reason: str = "stop"
    """``stop``, or ``length`` when the server's output cap cut the reply."""


@dataclass
class StubState:
    """What the stub serves and what it received; shared with the server's threads."""

    dimension: int = 16
    """Size of the embedding vectors it returns."""
    faults: deque[Fault] = field(default_factory=deque)
    """Faults to answer the next requests with (any route), first in first out."""
    replies: deque[ChatReply] = field(default_factory=deque)
    """Chat completions to answer with; when empty, ``"stub answer"``."""
    requests: list[dict[str, Any]] = field(default_factory=list)
    """Every request received: ``{"path": ..., "body": <the parsed JSON body>}``."""
    quirks: Quirks = field(default_factory=Quirks)
    """The server it behaves like (:data:`SERVER_QUIRKS`)."""


def stub_vector(text: str, dimension: int) -> list[float]:
    """The vector the stub returns for ``text`` (words hashed into ``dimension`` buckets).

    Example:
        >>> from agents.testing import stub_vector
        >>> len(stub_vector("alpha beta", 16))
        16
        >>> stub_vector("alpha beta", 16) == stub_vector("Beta ALPHA", 16)
        True
    """
    vector = np.zeros(dimension)
    for word in re.findall(r"\w+", text.lower()):
        digest = hashlib.md5(word.encode(), usedforsecurity=False).digest()
        vector[digest[0] % dimension] += 1.0
    norm = np.linalg.norm(vector)
    return (vector / norm if norm else np.full(dimension, dimension**-0.5)).tolist()


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def do_POST(self) -> None:
        state = self.server.state
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        state.requests.append({"path": self.path, "body": body})
        if state.faults:
            self._send_fault(state.faults.popleft())
            return
        if self.path.rstrip("/").endswith("/embeddings"):
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            data = [
                {"object": "embedding", "index": i, "embedding": stub_vector(str(text), state.dimension)}
                for i, text in enumerate(inputs)
            ]
            usage = {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}
            self._send(200, {"object": "list", "data": data, "model": body.get("model"), "usage": usage})
            return
        if self.path.rstrip("/").endswith("/chat/completions"):
            if (refusal := _refusal(state.quirks, body)) is not None:
                self._send(
                    state.quirks.refusal_status, {"error": {"message": refusal, "type": "invalid_request_error"}}
                )
                return
            reply = state.replies.popleft() if state.replies else ChatReply(content="stub answer")
            reply = _shaped(reply, state.quirks, body)
            if reply.delay:
                time.sleep(reply.delay)
            if body.get("stream"):
                self._stream_chat(reply, body)
            else:
                self._send(200, _completion(reply, body))
            return
        self._send(404, {"error": {"message": f"no route {self.path}", "type": "stub"}})

    def _send_fault(self, fault: Fault) -> None:
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        if fault.body is not None:
            self._send_raw(fault.status, fault.body.encode(), headers)
        else:
            self._send(fault.status, {"error": {"message": f"injected {fault.status}", "type": "stub"}}, headers)

    def _stream_chat(self, reply: ChatReply, body: dict[str, Any]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        base = {"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": 0, "model": body.get("model")}

        def event(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> None:
            chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()

        event({"role": "assistant", "content": ""})
        words = reply.content.split(" ")
        for i, word in enumerate(words):
            if word or i:
                event({"content": word if i == 0 else " " + word})
        for index, (name, arguments) in enumerate(reply.tool_calls):
            half = len(arguments) // 2
            call = {"index": index, "id": f"call_{index}", "type": "function"}
            event({"tool_calls": [{**call, "function": {"name": name, "arguments": arguments[:half]}}]})
            event({"tool_calls": [{"index": index, "function": {"arguments": arguments[half:]}}]})
        event({}, "tool_calls" if reply.tool_calls else reply.finish_reason)
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {
                "prompt_tokens": reply.usage[0],
                "completion_tokens": reply.usage[1],
                "total_tokens": sum(reply.usage),
            }
            chunk: dict[str, Any] = {**base, "choices": [], "usage": usage}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self._send_raw(status, json.dumps(payload).encode(), headers)

    def _send_raw(self, status: int, raw: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
            self.wfile.write(raw)


def _completion(reply: ChatReply, body: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content or None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": arguments}}
            for i, (name, arguments) in enumerate(reply.tool_calls)
        ]
    prompt, completion = reply.usage
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model"),
        "choices": [
            {"index": 0, "message": message, "finish_reason": "tool_calls" if reply.tool_calls else reply.finish_reason}
        ],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }


def _tool_choice(body: dict[str, Any]) -> str:
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        return "named"
    return choice if choice in ("required", "none") else "auto"


def _refusal(quirks: Quirks, body: dict[str, Any]) -> str | None:
    """The error message of a request this server refuses, or ``None``."""
    for param in quirks.refuses:
        if param in body:
            other = "max_completion_tokens" if param == "max_tokens" else "max_tokens"
            return f"Unsupported parameter: '{param}' is not supported with this model. Use '{other}' instead."
    if quirks.null_content == "refused":
        for i, message in enumerate(body.get("messages") or []):
            if message.get("role") == "assistant" and message.get("content") is None:
                return f"body.messages.{i}.content: Input should be a valid string (input: None)"
    if body.get("tools") and quirks.tools == "refused":
        return "tools param requires --jinja flag"
    kind = (body.get("response_format") or {}).get("type")
    if kind == "json_schema" and quirks.json_schema == "refused":
        return "response_format json_schema is not supported"
    if kind == "json_object" and quirks.json_object == "refused":
        return "response_format json_object is not supported"
    choice = _tool_choice(body)
    if body.get("tools") and choice == "required" and quirks.tool_choice_required == "refused":
        return "tool_choice 'required' is not supported"
    if body.get("tools") and choice == "named" and quirks.tool_choice_named == "refused":
        return "a named tool_choice is not supported"
    return None


def _shaped(reply: ChatReply, quirks: Quirks, body: dict[str, Any]) -> ChatReply:
    """The scripted reply as this server would serve the request: a honoured named tool choice
    makes it a call of that tool (the scripted call's arguments, else its text), a model that calls
    no tool unasked answers in text, and the smallest honoured output cap cuts it."""
    choice = _tool_choice(body) if body.get("tools") else "none"
    content, calls = reply.content, list(reply.tool_calls)
    if choice == "named" and quirks.tool_choice_named == "ok":
        name = body["tool_choice"]["function"]["name"]
        calls = [(name, calls[0][1] if calls else (content or "{}"))]
        content = ""
    elif choice == "required" and quirks.tool_choice_required == "ok":
        pass
    elif calls and (choice == "none" or not quirks.calls_tools_unasked):
        content, calls = content or "I would call " + ", ".join(name for name, _ in calls), []
    caps = [int(body[p]) for p in quirks.honours if isinstance(body.get(p), int)]
    prompt, completion = reply.usage
    finish = reply.finish_reason
    if caps and completion > min(caps) and not calls:
        cap = min(caps)
        content, completion, finish = " ".join(content.split(" ")[:cap]), cap, "length"
    return ChatReply(content, calls, reply.delay, (prompt, completion), finish)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: StubState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


class OpenAIStub:
    """An OpenAI-compatible server on a free loopback port, for the duration of a ``with`` block.

    Point any OpenAI client at :attr:`base_url` (LangChain's ``ChatOpenAI``, ``OpenAIEmbeddings``,
    the ``openai`` package, or ``ARAG_OPENAI_BASE_URL``) to test the real client code over HTTP:
    streaming, tool calls, usage accounting, timeouts and retries. Script chat completions with
    :meth:`reply` and faults with :meth:`fail_next`; read what the client sent in
    ``state.requests``. Embeddings are :func:`stub_vector` of each input.

    Args:
        dimension: Size of the embedding vectors it returns.
        quirks: Behave like this server (a :class:`Quirks`, or a name of :data:`SERVER_QUIRKS`:
            ``openai``, ``vllm``, ``ollama``, ``llama-cpp-python``); default: everything supported.

    Example:
        >>> from langchain_openai import ChatOpenAI
        >>> from agents.testing import ChatReply, Fault, OpenAIStub
        >>> with OpenAIStub() as stub:
        ...     model = ChatOpenAI(model="stub", base_url=stub.base_url, api_key="k", max_retries=2)
        ...     stub.fail_next(Fault(429, retry_after=0))  # rate limited once, then retried
        ...     stub.reply(ChatReply("hello there", usage=(40, 5)))
        ...     print(model.invoke("hi").content, len(stub.state.requests))
        hello there 2
    """

    def __init__(self, dimension: int = 16, quirks: Quirks | str | None = None) -> None:
        self.state = StubState(dimension=dimension)
        if quirks is not None:
            self.state.quirks = SERVER_QUIRKS[quirks] if isinstance(quirks, str) else quirks
        self._server = _Server(self.state)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        """The API root to give clients, e.g. ``http://127.0.0.1:40123/v1``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def reply(self, *replies: ChatReply | str) -> None:
        """Answer the next chat completions with these replies (a string is a text reply), in order."""
        self.state.replies.extend(r if isinstance(r, ChatReply) else ChatReply(content=r) for r in replies)

    def fail_next(self, *faults: Fault) -> None:
        """Answer the next requests (chat or embeddings) with these faults, in order."""
        self.state.faults.extend(faults)

    def __enter__(self) -> OpenAIStub:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
