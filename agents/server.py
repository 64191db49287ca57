"""``arag serve``: the agents behind an OpenAI-compatible HTTP API, plus a web chat page.

```bash
arag serve                                   # http://127.0.0.1:8000, settings from ARAG_* / .env
curl localhost:8000/v1/chat/completions -H 'content-type: application/json' \\
     -d '{"model": "rag", "messages": [{"role": "user", "content": "How tall is the Eiffel Tower?"}]}'
```

Routes:
- ``GET /v1/models``: the agents as models: ``rag`` (agentic RAG; works without a chat model),
  ``react`` (tool-calling agent; needs ``ARAG_CHAT_MODEL``), ``rlm`` (recursive agent over a long
  text sent in the conversation).
- ``POST /v1/chat/completions``: with and without ``stream``. The message list is the
  conversation (stateless, as Open WebUI sends it); a ``thread_id`` field keeps the conversation
  on the server instead (SQLite checkpointer) and then only the last user message is read.
  Answers carry numbered references in the text (``"references": false`` leaves them out) and a
  structured ``citations`` list beside the message. While streaming, step progress arrives as
  ``reasoning_content`` deltas (clients that do not know the field ignore it) and as ``arag``
  objects on the chunks; the verified answer follows as ``content``, then ``data: [DONE]``.
- ``GET /v1/threads/{id}``: the messages of a stored ``rag`` thread.
- ``GET /health``, and ``GET /``: the web chat page.

Protections, each refusal an OpenAI-style ``{"error": {"message", "type", "param", "code"}}``
object, one log line (logger ``arag.server``) and one count in ``/health``'s ``refused``:

- a bearer key (``ARAG_API_KEY``; 401 without it). ``serve`` refuses a non-loopback host without
  a key unless ``server_no_auth`` (``arag serve --no-auth``) says so; a blank key is an error.
- bodies (:mod:`agents._bodies`): at most ``ARAG_SERVER_MAX_BODY`` bytes (413), sent within
  ``ARAG_SERVER_BODY_TIMEOUT`` s (408); strict UTF-8 JSON nested at most 64 levels, no integer
  over 100 digits, no ``NaN``, no lone surrogate (400). A client that hangs up mid-upload is one
  ``client_disconnected`` log line.
- connections (:mod:`agents._connections`, uvicorn underneath): request headers within
  ``ARAG_SERVER_HEADER_TIMEOUT`` s (408, or closed when nothing came), idle keep-alive closed
  after ``ARAG_SERVER_KEEP_ALIVE`` s, at most ``ARAG_SERVER_LIMIT_CONCURRENCY`` connections
  (lowered to the open-files limit minus 64; 503 past it).
- runs: at most ``ARAG_SERVER_MAX_RUNS`` at once with ``ARAG_SERVER_MAX_QUEUE`` waiting (429
  with ``Retry-After`` past that), a deadline per request (``ARAG_SERVER_DEADLINE``; 504, or an
  error event while streaming).
- failures: a run or the server failing is a 500 (or, mid-stream, an error event followed by
  ``data: [DONE]``) that carries an error id, never the exception's text; the log line with that
  id has the exception (its traceback at log level debug).
- answers: with ``ARAG_SERVER_SAFE_MARKDOWN`` (on by default) Markdown images and raw HTML in
  answers, references and step lines are neutralised (:func:`agents.chat.neutralise_markdown`),
  so a document carrying an injected image cannot make a Markdown front end fetch a URL. The
  structured ``citations`` carry passages as stored: render them as text.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from langchain_core.messages import BaseMessage, HumanMessage
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agents._bodies import BodyError, dumps, parse_body
from agents._connections import check_exposure, connection_limit, guarded_protocol, log_config, open_files_limit
from agents.build import build_agents
from agents.chat import (
    background_task_reply,
    citation_payload,
    neutralise_markdown,
    split_conversation,
    with_references,
)
from agents.events import AgentEvent, AgentResult, describe
from agents.rag_agent import RagAgent
from agents.react_agent import ReactAgent
from agents.rlm_agent import RlmAgent
from agents.settings import Settings

__all__ = ["ApiError", "ServerAgents", "check_exposure", "create_app", "serve", "uvicorn_config"]

logger = logging.getLogger("arag.server")

WEB_PAGE = Path(__file__).with_name("web") / "index.html"

# The page loads nothing from elsewhere; the policy keeps injected markup from running or calling out.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

MODEL_DESCRIPTIONS = {
    "rag": "Agentic RAG over the ingested sources: expands the question, retrieves, grades, answers with citations.",
    "react": "Tool-calling agent with a search tool per source (needs ARAG_CHAT_MODEL).",
    "rlm": "Recursive agent over a long text pasted in the conversation (earlier user messages are the text).",
}


class ApiError(Exception):
    """An error the client gets as an OpenAI-style error object."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return SafeJSONResponse(self.body(), status_code=self.status, headers=self.headers)


class SafeJSONResponse(JSONResponse):
    """A JSON response that cannot fail to encode (lone surrogates become U+FFFD)."""

    def render(self, content: Any) -> bytes:
        return dumps(content).encode("utf-8")


def _internal(what: str, exc: BaseException) -> str:
    """Log an unexpected failure as one line (the traceback at debug level); its error id."""
    error_id = uuid.uuid4().hex[:12]
    logger.error(
        "%s failed (error id %s): %s: %s",
        what,
        error_id,
        type(exc).__name__,
        " ".join(str(exc).split())[:500],
        exc_info=exc if logger.isEnabledFor(logging.DEBUG) else None,
    )
    return error_id


class ChatRequest(BaseModel):
    """The body of ``POST /v1/chat/completions`` (fields a client may send and we do not use are
    accepted and ignored: temperature, max_tokens, ...)."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[dict[str, Any]] = Field(min_length=1)
    stream: bool = False
    thread_id: str | None = Field(default=None, min_length=1, max_length=200)
    """Keep the conversation on the server under this id (``rag`` and ``react``)."""
    references: bool = True
    """Append the numbered references to the answer text."""


@dataclass
class ServerAgents:
    """The agents the server runs, by model name; ``None`` where one is not available, with
    the reason in ``unavailable``."""

    rag: RagAgent | None = None
    react: ReactAgent | None = None
    rlm: RlmAgent | None = None
    unavailable: dict[str, str] = field(default_factory=dict)
    owned: list[Any] = field(default_factory=list)

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerAgents:
        """One store, retriever, chat model and thread database shared by all agents
        (:func:`agents.build.build_agents`)."""
        built = build_agents(settings, threads=True)
        agents = cls(rag=built.rag, react=built.react, rlm=built.rlm, owned=built.owned)
        if built.react is None:
            agents.unavailable["react"] = (
                "model 'react' needs a tool-calling chat model: set ARAG_CHAT_MODEL (and ARAG_OPENAI_BASE_URL for "
                "a local server), then restart `arag serve`; model 'rag' works without one"
            )
        return agents

    def get(self, name: str) -> RagAgent | ReactAgent | RlmAgent:
        agent = {"rag": self.rag, "react": self.react, "rlm": self.rlm}.get(name)
        if agent is not None:
            return agent
        if name in self.unavailable:
            raise ApiError(400, self.unavailable[name], code="model_not_available", param="model")
        raise ApiError(
            404,
            f"the model {name!r} does not exist; use one of {self.names()} (GET /v1/models lists them)",
            code="model_not_found",
            param="model",
        )

    def names(self) -> list[str]:
        return [n for n in ("rag", "react", "rlm") if getattr(self, n) is not None]

    def close(self) -> None:
        for resource in self.owned:
            resource.close()
        self.owned = []


class Admission:
    """At most ``max_runs`` runs at once and ``max_queue`` waiting; past that, 429.

    Used from the event loop only, except :meth:`release`, which a finishing worker thread
    schedules onto the loop.
    """

    def __init__(self, max_runs: int, max_queue: int) -> None:
        self.max_runs = max_runs
        self.max_queue = max_queue
        self._slots = asyncio.Semaphore(max_runs)
        self.admitted = 0
        self.running = 0
        self._seconds: list[float] = []

    def admit(self) -> None:
        if self.admitted >= self.max_runs + self.max_queue:
            wait = self.retry_after()
            raise ApiError(
                429,
                f"the server is busy ({self.running} runs, {self.admitted - self.running} waiting); retry in {wait} s",
                type="rate_limit_error",
                code="rate_limit_exceeded",
                headers={"Retry-After": str(wait)},
            )
        self.admitted += 1

    async def acquire(self, timeout: float) -> None:
        """Wait for a slot; on failure the caller gives the admission up with :meth:`leave`."""
        await asyncio.wait_for(self._slots.acquire(), timeout)
        self.running += 1

    def release(self, seconds: float) -> None:
        self.running -= 1
        self.admitted -= 1
        self._slots.release()
        self._seconds = [*self._seconds[-49:], seconds]

    def leave(self) -> None:
        """Give up an admission that never got a slot."""
        self.admitted -= 1

    def retry_after(self) -> int:
        typical = sorted(self._seconds)[len(self._seconds) // 2] if self._seconds else 1.0
        return max(1, math.ceil(typical * (self.admitted - self.running + 1) / self.max_runs))


_END = object()
_QUEUED_AFTER = 0.05
"""Seconds a streaming request waits for a slot before the client is told it is queued."""


class _Server:
    """The routes' shared state: agents, settings, admission and the worker threads."""

    def __init__(self, settings: Settings, agents: ServerAgents) -> None:
        self.settings = settings
        self.agents = agents
        self.key = settings.api_key.get_secret_value() if settings.api_key else None
        self.admission = Admission(settings.server_max_runs, settings.server_max_queue)
        self.pool = ThreadPoolExecutor(max_workers=settings.server_max_runs, thread_name_prefix="arag-run")
        self.started = time.time()
        self.refused: Counter[str] = Counter()
        """Refused requests and connections by reason (``/health`` shows them)."""

    def refuse(self, reason: str, message: str, *, level: int = logging.INFO) -> None:
        """Count and log one refused request or connection."""
        self.refused[reason] += 1
        logger.log(level, "refused (%s): %s", reason, message)

    # -- request checks ------------------------------------------------------------------------

    def authorize(self, request: Request) -> None:
        if self.key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), self.key.encode()):
            raise ApiError(
                401,
                "missing or wrong API key: send the header 'Authorization: Bearer <ARAG_API_KEY>'",
                code="invalid_api_key",
            )

    async def read_json(self, request: Request) -> Any:
        """The body as JSON: size, time and content checked (see :mod:`agents._bodies`)."""
        limit = self.settings.server_max_body
        close = {"Connection": "close"}  # the rest of a refused body is not read
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise ApiError(
                413,
                f"the request body is {declared} bytes; the limit is {limit} (ARAG_SERVER_MAX_BODY)",
                code="body_too_large",
                headers=close,
            )
        body = bytearray()
        timeout = self.settings.server_body_timeout
        try:
            async with asyncio.timeout(timeout):
                async for part in request.stream():
                    body += part
                    if len(body) > limit:
                        raise ApiError(
                            413,
                            f"the request body is over {limit} bytes (ARAG_SERVER_MAX_BODY)",
                            code="body_too_large",
                            headers=close,
                        )
        except TimeoutError:
            raise ApiError(
                408,
                f"the request body did not arrive within {timeout:g} s ({len(body)} bytes came; "
                "ARAG_SERVER_BODY_TIMEOUT)",
                code="body_timeout",
                headers=close,
            ) from None
        except ClientDisconnect:
            # Nobody is left to answer; the ApiError only ends the request (and logs one line).
            raise ApiError(
                400, f"the client hung up during the upload, after {len(body)} bytes", code="client_disconnected"
            ) from None
        try:
            return parse_body(bytes(body))
        except BodyError as exc:
            raise ApiError(400, exc.message, code="invalid_body", param=exc.param) from None

    def parse(self, data: Any) -> ChatRequest:
        if not isinstance(data, dict):
            raise ApiError(400, "the body must be a JSON object with 'model' and 'messages'")
        try:
            return ChatRequest.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ApiError(400, f"{where}: {first['msg']}", param=where or None) from None

    # -- runs ----------------------------------------------------------------------------------

    def plan(
        self, body: ChatRequest, question: str, history: list[BaseMessage]
    ) -> Callable[[], Iterator[dict[str, Any]]]:
        """Check the request against its agent and return the run, not yet started."""
        agent = self.agents.get(body.model)
        if isinstance(agent, RlmAgent):
            if body.thread_id is not None:
                raise ApiError(
                    400, "model 'rlm' keeps no threads; send the text and question as messages", param="thread_id"
                )
            context, question = _long_context(question, history)
            return lambda: _run_items(agent.stream(question, context=context))
        if body.thread_id is not None and agent.checkpointer is None:
            raise ApiError(400, f"model {body.model!r} keeps no threads here; leave out thread_id", param="thread_id")
        thread, past = (body.thread_id, None) if body.thread_id is not None else (None, history)
        if isinstance(agent, ReactAgent):
            # Both agents keep threads in one store; a ReAct thread has a state of another shape.
            react_thread = f"react:{thread}" if thread is not None else None
            return lambda: _run_items(agent.stream(question, thread_id=react_thread, history=past))
        return lambda: _run_items(agent.stream(question, thread_id=thread, history=past))

    async def events(
        self, run: Callable[[], Iterator[dict[str, Any]]], deadline: float
    ) -> AsyncIterator[dict[str, Any]]:
        """Run in a worker thread (a slot must be held) and pass its events on until the end or
        the deadline; leaving early (deadline, client gone) stops the run at its next event."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancel = threading.Event()
        started = time.perf_counter()

        def put(item: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def work() -> None:
            stream = run()
            try:
                for event in stream:
                    if cancel.is_set():
                        break
                    put(event)
            except Exception as exc:  # the client gets an error object with this id, the log the exception
                put({"type": "failed", "error_id": _internal("agent run", exc)})
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()
                put(_END)

        future = loop.run_in_executor(self.pool, work)
        future.add_done_callback(lambda _: self.admission.release(time.perf_counter() - started))
        try:
            while True:
                remaining = deadline - time.monotonic()
                try:
                    item = await asyncio.wait_for(queue.get(), max(remaining, 0.001))
                except TimeoutError:
                    raise ApiError(
                        504,
                        f"the run did not finish within {self.settings.server_deadline:g} s (ARAG_SERVER_DEADLINE)",
                        type="server_error",
                        code="timeout",
                    ) from None
                if item is _END:
                    return
                yield item
        finally:
            cancel.set()

    async def start(self, deadline: float) -> None:
        """Wait for a run slot (admission already given); give the admission up if none comes."""
        try:
            await self.admission.acquire(max(deadline - time.monotonic(), 0.001))
        except TimeoutError:
            self.admission.leave()
            raise ApiError(
                504, "no run slot became free before the deadline", type="server_error", code="timeout"
            ) from None
        except BaseException:
            self.admission.leave()
            raise


# -- the agents' runs as the server's run items ------------------------------------------------
# {"type": "status", "text", "data"}, {"type": "draft", "text"}, {"type": "final", ...}, {"type": "failed"}


def _run_items(events: Iterator[AgentEvent]) -> Iterator[dict[str, Any]]:
    """Any agent's events (one vocabulary, :mod:`agents.events`) as the items the wire is made from."""
    for event in events:
        if event.kind in ("step", "tool"):
            yield {"type": "status", "text": describe(event), "data": event.data}
        elif event.kind == "token":  # a whole draft (kind "draft") adds nothing to its streamed tokens
            yield {"type": "draft", "text": event.text}
        elif event.kind == "result" and event.result is not None:
            yield _final(event.result)


def _final(result: AgentResult) -> dict[str, Any]:
    answer, error = result.answer or result.partial_answer, result.error
    if not answer and error:
        answer = f"The run failed before an answer was written: {error}"
    return {
        "type": "final",
        "answer": answer,
        "citations": result.citations,
        "exit_reason": result.exit_reason,
        "usage": dict(result.usage),
        "thread_id": result.thread_id.removeprefix("react:"),
        "error": error,
    }


def _long_context(question: str, history: list[BaseMessage]) -> tuple[str, str]:
    """The text a ``rlm`` question is about: the earlier user messages (a system prompt is an
    instruction, not the text), or, with a single message, everything before its last paragraph."""
    texts = [str(m.content) for m in history if isinstance(m, HumanMessage) and str(m.content).strip()]
    if texts:
        return "\n\n".join(texts), question
    head, _, last = question.strip().rpartition("\n\n")
    if head.strip() and last.strip():
        return head, last.strip()
    raise ApiError(
        400,
        "model 'rlm' answers over a long text: send the text in an earlier message (or before the question, "
        "separated by a blank line), then the question last",
        param="messages",
    )


# -- OpenAI shapes ---------------------------------------------------------------------------


def _usage(usage: Mapping[str, Any]) -> dict[str, int]:
    prompt, completion = int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _content(final: Mapping[str, Any], references: bool, *, safe: bool) -> str:
    answer = str(final["answer"])
    text = with_references(answer, final["citations"]) if references else answer
    return neutralise_markdown(text) if safe else text


def _failure(error_id: str, what: str = "the request") -> ApiError:
    return ApiError(
        500,
        f"{what} failed on the server (error id {error_id}; the server log has the details)",
        type="server_error",
        code="internal_error",
    )


def _run_failed(event: Mapping[str, Any]) -> ApiError:
    error = _failure(str(event["error_id"]), "the agent run")
    error.code = "run_failed"
    return error


def _extras(final: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "exit_reason": final["exit_reason"],
        "thread_id": final["thread_id"] or None,
        "error": final["error"],
        "usage": final["usage"],
    }


def _chunk(rid: str, model: str, created: int, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
    payload = {
        "id": rid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }
    return f"data: {dumps(payload)}\n\n"


def _completion(rid: str, model: str, created: int, content: str, **extra: Any) -> dict[str, Any]:
    citations = extra.pop("citations", [])
    return {
        "id": rid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "citations": citations},
                "finish_reason": "stop",
            }
        ],
        "citations": citations,
        **extra,
    }


# -- the app ---------------------------------------------------------------------------------


def create_app(settings: Settings | None = None, *, agents: ServerAgents | None = None) -> Starlette:
    """The ASGI app (run it with any ASGI server; ``arag serve`` uses uvicorn).

    Args:
        settings: Defaults to ``Settings()``: limits, key, and the agents when ``agents`` is not given.
        agents: The agents to serve (tests inject them); closed with the app when built here.
    """
    settings = settings or Settings()
    built = agents is None
    server = _Server(settings, agents if agents is not None else ServerAgents.from_settings(settings))

    async def models(request: Request) -> Response:
        server.authorize(request)
        data = [
            {
                "id": name,
                "object": "model",
                "created": int(server.started),
                "owned_by": "arag",
                "description": MODEL_DESCRIPTIONS[name],
                "available": getattr(server.agents, name) is not None,
                **(
                    {"unavailable_reason": server.agents.unavailable[name]} if name in server.agents.unavailable else {}
                ),
            }
            for name in ("rag", "react", "rlm")
        ]
        return SafeJSONResponse({"object": "list", "data": data})

    async def health(request: Request) -> Response:
        a = server.admission
        return SafeJSONResponse(
            {
                "status": "ok",
                "models": server.agents.names(),
                "running": a.running,
                "waiting": a.admitted - a.running,
                "max_runs": a.max_runs,
                "max_queue": a.max_queue,
                "refused": dict(server.refused),
            }
        )

    async def thread(request: Request) -> Response:
        server.authorize(request)
        rag = server.agents.rag
        if rag is None or rag.checkpointer is None:
            raise ApiError(404, "this server keeps no threads", code="not_found")
        messages = await asyncio.to_thread(rag.thread_messages, request.path_params["thread_id"])
        if not messages:
            raise ApiError(404, f"no thread {request.path_params['thread_id']!r}", code="not_found")
        roles = {"human": "user", "ai": "assistant", "system": "system"}
        safe = settings.server_safe_markdown

        def shown(text: str, role: str) -> str:
            return neutralise_markdown(text) if safe and role == "assistant" else text

        return SafeJSONResponse(
            {
                "id": request.path_params["thread_id"],
                "messages": [
                    {"role": (role := roles.get(m.type, m.type)), "content": shown(m.text, role)} for m in messages
                ],
            }
        )

    async def page(request: Request) -> Response:
        if not WEB_PAGE.is_file():
            raise ApiError(404, "the web page is not installed (agents/web/index.html)", code="not_found")
        return FileResponse(WEB_PAGE, media_type="text/html", headers=PAGE_HEADERS)

    async def completions(request: Request) -> Response:
        server.authorize(request)
        body = server.parse(await server.read_json(request))
        deadline = time.monotonic() + settings.server_deadline
        rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        try:
            question, history = split_conversation(body.messages)
        except ValueError as exc:
            raise ApiError(400, str(exc), param="messages") from None
        if (chore := background_task_reply(question)) is not None:
            server.agents.get(body.model)  # an unknown model is still an error
            return _answer_now(rid, body, created, chore)
        run = server.plan(body, question, history)
        server.admission.admit()
        if body.stream:
            return StreamingResponse(
                _stream(server, run, body, rid, created, deadline),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        await server.start(deadline)
        final: dict[str, Any] | None = None
        async for event in server.events(run, deadline):
            if event["type"] == "final":
                final = event
            elif event["type"] == "failed":
                raise _run_failed(event)
        if final is None:
            raise ApiError(500, "the agent run ended without an answer", type="server_error", code="run_failed")
        payload = _completion(
            rid,
            body.model,
            created,
            _content(final, body.references, safe=settings.server_safe_markdown),
            citations=[citation_payload(c) for c in final["citations"]],
            usage=_usage(final["usage"]),
            arag=_extras(final),
        )
        return SafeJSONResponse(payload)

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        if exc.status < 500:
            server.refuse(exc.code or exc.type, f"{_who(request)}: {exc.status} {exc.message}")
        elif exc.code != "run_failed":  # a failed run is logged with its exception already
            logger.warning("%s: %s %s", _who(request), exc.status, exc.message)
        return exc.response()

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return await api_error(request, _http_api_error(request, exc))

    def shutdown() -> None:
        server.pool.shutdown(wait=False, cancel_futures=True)
        if built:
            server.agents.close()

    routes = [
        Route("/", page, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/chat/completions", completions, methods=["POST"]),
        Route("/v1/threads/{thread_id}", thread, methods=["GET"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            shutdown()

    app = Starlette(
        routes=routes,
        middleware=[Middleware(_Contained)],
        exception_handlers={ApiError: api_error, HTTPException: http_error},
        lifespan=lifespan,
    )
    app.state.server = server
    return app


def _who(request: Request) -> str:
    client = request.client
    where = f"{client.host}:{client.port}" if client else "a client"
    return f"{where} {request.method} {request.url.path}"


def _http_api_error(request: Request, exc: HTTPException) -> ApiError:
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
    return ApiError(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}", code=code)


class _Contained:
    """Whatever escapes a route becomes a 500 error object and one log line with an error id:
    no exception reaches Starlette's error middleware, which would re-raise it to uvicorn (and
    uvicorn would log an ASGI traceback)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            error_id = _internal(f"{scope.get('method')} {scope.get('path')}", exc)
            if not started:  # else the response is cut short: nothing more can be sent
                await _failure(error_id).response()(scope, receive, send)


def _answer_now(rid: str, body: ChatRequest, created: int, text: str) -> Response:
    if not body.stream:
        return SafeJSONResponse(
            _completion(rid, body.model, created, text, usage=_usage({}), arag={"background": True})
        )

    async def chunks() -> AsyncIterator[str]:
        yield _chunk(rid, body.model, created, {"role": "assistant", "content": text})
        yield _chunk(rid, body.model, created, {}, "stop", arag={"background": True})
        yield "data: [DONE]\n\n"

    return StreamingResponse(chunks(), media_type="text/event-stream")


async def _stream(
    server: _Server,
    run: Callable[[], Iterator[dict[str, Any]]],
    body: ChatRequest,
    rid: str,
    created: int,
    deadline: float,
) -> AsyncIterator[str]:
    model = body.model
    safe = server.settings.server_safe_markdown

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        return _chunk(rid, model, created, delta, finish, **extra)

    yield chunk({"role": "assistant", "content": ""}, arag={"status": "accepted", "thread_id": body.thread_id})
    try:
        # Wait for a slot in a task, so the client hears at once that it waits when no slot is free.
        slot = asyncio.ensure_future(server.start(deadline))
        try:
            if not (await asyncio.wait({slot}, timeout=_QUEUED_AFTER))[0]:
                waiting = server.admission.admitted - server.admission.running
                status = f"waiting for a free run slot ({waiting} waiting)\n"
                yield chunk({"reasoning_content": status}, arag={"status": "queued"})
            await slot
        except BaseException:
            if not slot.done():
                slot.cancel()  # start() gives the admission up
            elif not slot.cancelled() and slot.exception() is None:
                server.admission.release(0.0)  # a slot taken for a client that has gone
            raise
        async for event in server.events(run, deadline):
            kind = event["type"]
            if kind == "status":
                text = neutralise_markdown(event["text"]) if safe else event["text"]
                yield chunk({"reasoning_content": text + "\n"}, arag={"step": _jsonable(event["data"])})
            elif kind == "draft":
                yield chunk({}, arag={"draft": event["text"]})
            elif kind == "failed":
                raise _run_failed(event)
            else:
                citations = [citation_payload(c) for c in event["citations"]]
                yield chunk({"content": _content(event, body.references, safe=safe)})
                yield chunk({}, "stop", citations=citations, usage=_usage(event["usage"]), arag=_extras(event))
    except ApiError as exc:
        yield f"data: {dumps(exc.body())}\n\n"
    except Exception as exc:  # whatever breaks midway, the client hears it and the stream ends properly
        error_id = _internal("streamed chat", exc)
        yield f"data: {dumps(_failure(error_id).body())}\n\n"
    yield "data: [DONE]\n\n"


def _jsonable(data: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(data, default=str))  # type: ignore[no-any-return]


def uvicorn_config(
    app: Starlette, settings: Settings, *, log_level: Literal["debug", "info", "warning"] = "info"
) -> Any:
    """The ``uvicorn.Config`` that ``arag serve`` runs ``app`` (from :func:`create_app`) with.

    uvicorn's own limits: ``limit_concurrency`` (:func:`agents._connections.connection_limit`:
    ``ARAG_SERVER_LIMIT_CONCURRENCY`` lowered to the open-files limit minus 64) and
    ``timeout_keep_alive`` (``ARAG_SERVER_KEEP_ALIVE``); the HTTP protocol is uvicorn's own with
    the header deadline (``ARAG_SERVER_HEADER_TIMEOUT``), a 64 KiB header cap and the connection
    cap added (:func:`agents._connections.guarded_protocol`). WebSockets are off.
    """
    import uvicorn
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    server: _Server = app.state.server
    limit = connection_limit(settings)
    protocol = guarded_protocol(
        AutoHTTPProtocol,
        header_timeout=settings.server_header_timeout,
        max_connections=limit,
        refuse=server.refuse,
    )
    config = uvicorn.Config(
        app,
        host=settings.server_host,
        port=settings.server_port,
        http=protocol,
        ws="none",
        lifespan="on",
        log_level=log_level,
        log_config=log_config(log_level),
        limit_concurrency=limit,
        timeout_keep_alive=settings.server_keep_alive,
        timeout_graceful_shutdown=10,
    )
    logger.info(
        "limits: %d connections (open-files limit %s), headers within %g s, bodies of %d bytes within %g s, "
        "keep-alive %d s, %d runs + %d waiting, %g s per request",
        limit,
        open_files_limit(),
        settings.server_header_timeout,
        settings.server_max_body,
        settings.server_body_timeout,
        settings.server_keep_alive,
        settings.server_max_runs,
        settings.server_max_queue,
        settings.server_deadline,
    )
    return config


def serve(settings: Settings | None = None, *, log_level: Literal["debug", "info", "warning"] = "info") -> None:
    """Build the agents and serve them with uvicorn until interrupted.

    Raises:
        ValueError: A non-loopback host without an API key and without ``server_no_auth``
            (see :func:`check_exposure`).
    """
    import uvicorn

    settings = settings or Settings()
    check_exposure(settings)
    agents = ServerAgents.from_settings(settings)
    if agents.rag is not None:
        agents.rag.retriever.embeddings.embed_query("warm up")  # load the model before the first request
    app = create_app(settings, agents=agents)
    config = uvicorn_config(app, settings, log_level=log_level)
    try:
        uvicorn.Server(config).run()
    finally:
        agents.close()
