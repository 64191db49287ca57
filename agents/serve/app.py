"""``arag serve``: the agents behind an OpenAI-compatible HTTP API, plus a web chat page.

```bash
arag serve                                   # http://127.0.0.1:8000, settings from ARAG_* / .env
curl localhost:8000/v1/chat/completions -H 'content-type: application/json' \\
     -d '{"model": "rag", "messages": [{"role": "user", "content": "How tall is the Eiffel Tower?"}]}'
```

Routes (:class:`ChatServer`):
- ``GET /v1/models``: the agents that can answer now, as models: ``rag`` (agentic RAG; works
  without a chat model), ``react`` (tool-calling agent; needs ``ARAG_CHAT_MODEL``), ``rlm``
  (recursive agent over a long text sent in the conversation). ``GET /health`` names the
  others under ``unavailable``, each with the reason and how to fix it.
- ``POST /v1/chat/completions``: with and without ``stream``. The message list is the
  conversation (stateless, as Open WebUI sends it); a ``thread_id`` field keeps the conversation
  on the server instead (SQLite, or Postgres with ``ARAG_THREADS_URL``: :mod:`agents._thread_store`;
  ``rag`` and ``react`` each keep their own thread under one id) and then only the last user
  message is read. Answers carry numbered references
  in the text (``"references": false`` leaves them out) and a structured ``citations`` list
  beside the message; ``usage`` only when a model ran. While streaming, step progress arrives as
  ``reasoning_content`` deltas (clients that do not know the field ignore it) and as ``arag``
  objects on the chunks; then one chunk per citation carrying it as Open WebUI's source event
  (``event``), the verified answer as ``content``, then ``data: [DONE]``. Without streaming the
  steps are the message's ``reasoning_content`` and the sources a ``sources`` list beside
  ``choices`` (what Open WebUI reads from a whole response). Open WebUI is recognised
  (:mod:`agents.serve.open_webui`): its background requests (title, tags, follow-ups, ...) are
  answered at once without a run, the sources it attaches in its RAG template are evidence
  with their own numbers, and the text "Sources" list is left out for it by default
  (``ARAG_SERVER_OPEN_WEBUI_REFERENCES``). Each completion is one log line: model, stream,
  background kind or exit reason, citations, seconds.
- ``GET /v1/threads/{id}``: the messages of a stored ``rag`` thread.
- ``POST /v1/threads/{id}/approval``: approve, edit or reject the tool calls a ``react`` run of
  the thread waits on (``ARAG_TOOLS_APPROVE``; :mod:`agents.serve.approvals`), answered as a
  chat completion; ``/approve``, ``/reject`` and ``/edit`` as the thread's next message do the same.
- ``GET /health`` (runs, queue, refusals, the thread store's kind, the process id), and ``GET /``:
  the web chat page.

The shapes on the wire are :mod:`agents.serve.wire`; which agent runs, admission and the worker
are :mod:`agents.serve.runs`; uvicorn's set-up and connection limits :mod:`agents.serve._connections`.

Protections, each refusal an OpenAI-style ``{"error": {"message", "type", "param", "code"}}``
object, one log line (logger ``arag.server``) and one count in ``/health``'s ``refused``:

- a bearer key (``ARAG_API_KEY``; 401 without it). ``serve`` refuses a non-loopback host without
  a key unless ``settings.server.no_auth`` (``arag serve --no-auth``) says so; a blank key is an error.
- bodies (:mod:`agents.serve._bodies`): at most ``ARAG_SERVER_MAX_BODY`` bytes (413), sent within
  ``ARAG_SERVER_BODY_TIMEOUT`` s (408); strict UTF-8 JSON nested at most 64 levels, no integer
  over 100 digits, no ``NaN``, no lone surrogate (400). A client that hangs up mid-upload is one
  ``client_disconnected`` log line.
- connections (:mod:`agents.serve._connections`, uvicorn underneath): request headers within
  ``ARAG_SERVER_HEADER_TIMEOUT`` s (408, or closed when nothing came), idle keep-alive closed
  after ``ARAG_SERVER_KEEP_ALIVE`` s, at most ``ARAG_SERVER_LIMIT_CONCURRENCY`` connections
  (lowered to the open-files limit minus 64; 503 past it).
- runs: at most ``ARAG_SERVER_MAX_RUNS`` at once with ``ARAG_SERVER_MAX_QUEUE`` waiting (429
  with ``Retry-After`` past that), a deadline per request (``ARAG_SERVER_DEADLINE``; 504, or an
  error event while streaming).
- failures: a run or the server failing is a 500 (or, mid-stream, an error event followed by
  ``data: [DONE]``) that carries an error id, never the exception's text; the log line with that
  id has the exception (its traceback at log level debug). A thread store that does not answer
  (Postgres down or restarting) is a 503 ``thread_store_unavailable`` with ``Retry-After``: checked
  before a run that continues a thread, and the same error object mid-stream when it goes away
  during the run.
- answers: with ``ARAG_SERVER_SAFE_MARKDOWN`` (on by default) Markdown images and raw HTML in
  answers, references and step lines are neutralised (:func:`agents.serve.chat.neutralise_markdown`),
  so a document carrying an injected image cannot make a Markdown front end fetch a URL. The
  structured ``citations`` carry passages as stored: render them as text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
import uuid
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from langchain_core.messages import BaseMessage, SystemMessage
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agents._handoff import SERVER_FILE, advertise, withdraw
from agents._thread_store import ThreadStoreUnavailableError, is_unavailable, unavailable_message
from agents.react_agent import ReactAgent
from agents.serve import open_webui, wire
from agents.serve._bodies import BodyError, parse_body
from agents.serve._connections import check_exposure, uvicorn_config
from agents.serve.chat import neutralise_markdown, split_conversation
from agents.serve.metrics import CONTENT_TYPE_LATEST, ServerMetrics
from agents.serve.open_webui import AttachedSource
from agents.serve.runs import MODEL_NAMES, Run, Runs, ServerAgents, plan, resume_plan
from agents.serve.wire import ApiError, ChatRequest, SafeJSONResponse
from agents.settings import Settings
from tools import tracing
from tools.embeddings import warm_up

__all__ = ["ChatServer", "create_app", "serve"]

_T = TypeVar("_T")

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

_QUEUED_AFTER = 0.05
"""Seconds a streaming request waits for a slot before the client is told it is queued."""

_ROLES = {"human": "user", "ai": "assistant", "system": "system"}


class ChatServer:
    """The routes and what they share: settings, agents, runs (admission and workers), refusal counts."""

    def __init__(self, settings: Settings, agents: ServerAgents, *, owns_agents: bool = False) -> None:
        self.settings = settings
        self.agents = agents
        self.owns_agents = owns_agents
        self.key = settings.server.api_key.get_secret_value() if settings.server.api_key else None
        self.runs = Runs(settings.server.max_runs, settings.server.max_queue, settings.server.deadline)
        self.admission = self.runs.admission
        self.started = time.time()
        self.refused: Counter[str] = Counter()
        """Refused requests and connections by reason (``/health`` shows them)."""
        self.metrics = ServerMetrics(lambda: self.admission.running, lambda: self.admission.waiting, models=MODEL_NAMES)

    def refuse(self, reason: str, message: str, *, level: int = logging.INFO) -> None:
        """Count and log one refused request or connection."""
        self.refused[reason] += 1
        logger.log(level, "refused (%s): %s", reason, message)

    def close(self) -> None:
        self.runs.close()
        if self.owns_agents:
            self.agents.close()

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        """The app's lifespan: closed (workers, and agents built by :func:`create_app`) at shutdown."""
        try:
            yield
        finally:
            self.close()

    # -- request checks ------------------------------------------------------------------------

    def authorize(self, request: Request) -> None:
        if self.key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), self.key.encode()):
            raise ApiError(
                401,
                "missing or wrong API key: send the header 'Authorization: Bearer <ARAG_API_KEY>'",
                code="invalid_api_key",
            )

    async def read_json(self, request: Request) -> Any:
        """The body as JSON: size, time and content checked (see :mod:`agents.serve._bodies`)."""
        limit, timeout = self.settings.server.max_body, self.settings.server.body_timeout
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

    # -- routes --------------------------------------------------------------------------------

    async def models(self, request: Request) -> Response:
        """The agents that can answer now; the others are in ``/health`` with the reason."""
        self.authorize(request)
        data = [
            {
                "id": name,
                "object": "model",
                "created": int(self.started),
                "owned_by": "arag",
                "description": MODEL_DESCRIPTIONS[name],
                "available": True,
            }
            for name in self.agents.names()
        ]
        return SafeJSONResponse({"object": "list", "data": data})

    async def health(self, request: Request) -> Response:
        a = self.admission
        return SafeJSONResponse(
            {
                "status": "ok",
                "models": self.agents.names(),
                "unavailable": {n: self.agents.unavailable[n] for n in MODEL_NAMES if n in self.agents.unavailable},
                "running": a.running,
                "waiting": a.waiting,
                "max_runs": a.max_runs,
                "max_queue": a.max_queue,
                "refused": dict(self.refused),
                "threads": store.kind if (store := self.agents.thread_store) is not None else None,
                "pid": os.getpid(),
            }
        )

    async def thread(self, request: Request) -> Response:
        """The messages of a stored ``rag`` thread (assistant turns neutralised like answers)."""
        self.authorize(request)
        thread_id = request.path_params["thread_id"]
        rag = self.agents.rag
        if rag is None or rag.checkpointer is None:
            raise ApiError(404, "this server keeps no threads", code="not_found")
        messages = await self._from_thread_store(rag.thread_messages, thread_id)
        if not messages:
            raise ApiError(404, f"no thread {thread_id!r}", code="not_found")
        safe = self.settings.server.safe_markdown
        shown = []
        for m in messages:
            role = _ROLES.get(m.type, m.type)
            text = neutralise_markdown(m.text) if safe and role == "assistant" else m.text
            shown.append({"role": role, "content": text})
        return SafeJSONResponse({"id": thread_id, "messages": shown})

    async def _from_thread_store(self, read: Callable[[str], _T], thread_id: str) -> _T:
        """``read(thread_id)`` off the event loop; the thread store not answering is a 503."""
        try:
            return await asyncio.to_thread(read, thread_id)
        except Exception as exc:
            if is_unavailable(exc):
                raise wire.thread_store_unavailable(unavailable_message(self.agents.thread_store, exc)) from None
            raise

    async def _check_thread_store(self) -> None:
        """A 503 now, before a run starts, when the thread store does not answer."""
        store = self.agents.thread_store
        if store is None:
            return
        try:
            await asyncio.to_thread(store.check)
        except ThreadStoreUnavailableError as exc:
            raise wire.thread_store_unavailable(str(exc)) from None

    async def page(self, request: Request) -> Response:
        if not WEB_PAGE.is_file():
            raise ApiError(404, "the web page is not installed (agents/serve/web/index.html)", code="not_found")
        return FileResponse(WEB_PAGE, media_type="text/html", headers=PAGE_HEADERS)

    async def completions(self, request: Request) -> Response:
        return await self._counted(request, self._completions)

    async def _counted(self, request: Request, handler: Any) -> Response:
        """A chat request counted in ``arag_requests_total`` by model and the status it got (a
        stream is counted when it ends: 200, or ``error`` when it failed midway)."""
        try:
            response: Response = await handler(request)
        except ApiError as exc:
            self.metrics.request(getattr(request.state, "model", "unknown"), exc.status)
            raise
        if not isinstance(response, StreamingResponse):
            self.metrics.request(getattr(request.state, "model", "unknown"), response.status_code)
        return response

    async def metrics_page(self, request: Request) -> Response:
        """Prometheus metrics (:mod:`agents.serve.metrics`), behind the API key when one is set."""
        self.authorize(request)
        return Response(self.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def _completions(self, request: Request) -> Response:
        self.authorize(request)
        body = wire.parse_request(await self.read_json(request))
        request.state.model = body.model
        started = time.perf_counter()
        try:
            question, history = split_conversation(body.messages)
        except ValueError as exc:
            raise ApiError(400, str(exc), param="messages") from None
        owui = open_webui.from_open_webui(request.headers, body.messages)
        if (chore := open_webui.background_request(body.messages)) is not None:
            self.agents.get(body.model)  # an unknown model is still an error
            _log_completion(body, owui, f"background={chore.kind}", 0, started)
            return _answer_now(f"chatcmpl-{uuid.uuid4().hex}", body, int(time.time()), chore.reply())
        question, history, attached = _attached_sources(question, history)
        run = plan(self.agents, body, question, history, attached)
        return await self._respond(request, body, run, owui=owui, attached=attached, started=started)

    async def approval(self, request: Request) -> Response:
        return await self._counted(request, self._approval)

    async def _approval(self, request: Request) -> Response:
        """Resume a ``react`` thread whose run waits for approval (:mod:`agents.serve.approvals`);
        answers as ``/v1/chat/completions`` does."""
        self.authorize(request)
        thread_id = request.path_params["thread_id"]
        if len(thread_id) > 200:
            raise ApiError(400, "thread ids are at most 200 characters", param="thread_id")
        request_body = wire.parse_approval(await self.read_json(request))
        request.state.model = request_body.model
        run = resume_plan(self.agents, request_body.model, thread_id, request_body.chosen)
        agent = self.agents.get(request_body.model)
        assert isinstance(agent, ReactAgent)  # resume_plan checked it
        await self._check_thread_store()
        waiting = await self._from_thread_store(agent.pending, thread_id)
        if not waiting:
            message = f"thread {thread_id!r} has no tool call waiting for approval"
            raise ApiError(409, message, code="no_pending_approval")
        if request_body.decisions and (unknown := sorted(set(request_body.decisions) - {w["id"] for w in waiting})):
            raise ApiError(400, f"no waiting call has the id(s) {unknown}", param="decisions")
        body = wire.ChatRequest(
            model=request_body.model,
            messages=[{"role": "user", "content": "(approval)"}],
            stream=request_body.stream,
            thread_id=thread_id,
        )
        return await self._respond(request, body, run, owui=False, attached=[], started=time.perf_counter())

    async def _respond(
        self,
        request: Request,
        body: ChatRequest,
        run: Run,
        *,
        owui: bool,
        attached: list[AttachedSource],
        started: float,
    ) -> Response:
        """Admit the run and answer with it: a stream of chunks, or one completion. The run is a
        trace of its own (or continues the client's ``traceparent``) when tracing is on; its id,
        and the request's, are in the ``X-Arag-Trace-Id`` / ``X-Request-Id`` headers and the
        ``arag`` object."""
        deadline = time.monotonic() + self.settings.server.deadline
        rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if body.thread_id is not None:
            await self._check_thread_store()
        self.admission.admit()
        call = _Call(
            rid=rid,
            model=body.model,
            admitted=time.perf_counter(),
            span=tracing.start_span(
                f"chat {body.model}",
                {
                    "arag.model": body.model,
                    "arag.request_id": rid,
                    "arag.stream": body.stream,
                    "http.route": request.url.path,
                },
                kind="server",
                parent_headers=request.headers,
            ),
        )
        shown = _Shown(
            references=body.references
            if body.references is not None
            else (not owui or self.settings.server.open_webui_references),
            attached_events=not owui,
            safe=self.settings.server.safe_markdown,
        )
        if body.stream:
            return StreamingResponse(
                self._stream(run, body, call, created, deadline, shown, owui, started),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **call.headers},
            )
        status: int | str = 500
        try:
            await self.runs.start(deadline)
            final: dict[str, Any] | None = None
            steps: list[str] = []
            async for item in self.runs.items(run, deadline, parent=call.span):
                self._observe(call, item)
                if item["type"] == "final":
                    final = call.stamped(item)
                elif item["type"] == "status":
                    steps.append(neutralise_markdown(item["text"]) if shown.safe else item["text"])
                elif item["type"] == "failed":
                    raise wire.from_failed(item)
            if final is None:
                raise ApiError(500, "the agent run ended without an answer", type="server_error", code="run_failed")
            outcome = f"exit_reason={final['exit_reason']}"
            _log_completion(body, owui, outcome, len(final["citations"]), started, call)
            status = 200
            return SafeJSONResponse(
                wire.final_completion(
                    rid,
                    body,
                    created,
                    final,
                    safe=shown.safe,
                    references=shown.references,
                    reasoning="\n".join(steps),
                    attached=attached,
                ),
                headers=call.headers,
            )
        except ApiError as exc:
            status = exc.status
            exc.headers.update(call.headers)
            raise
        finally:
            self._finished(call, status)

    def _observe(self, call: _Call, item: dict[str, Any]) -> None:
        """A run item in the metrics: the first one's wait, searches, the final's tokens and exit."""
        if not call.first_seen:
            call.first_seen = True
            self.metrics.first_event.labels(model=call.model).observe(time.perf_counter() - call.admitted)
        self.metrics.run_item(call.model, item)
        if item["type"] == "final":
            tracing.set_attributes(call.span, {"arag.exit_reason": item.get("exit_reason")})

    def _finished(self, call: _Call, status: int | str) -> None:
        """The run's duration, and the end of its server span."""
        self.metrics.run_seconds.labels(model=call.model).observe(time.perf_counter() - call.admitted)
        if call.span is not None:
            tracing.set_attributes(call.span, {"http.response.status_code": status if isinstance(status, int) else 500})
            call.span.end()

    async def _stream(
        self,
        run: Run,
        body: ChatRequest,
        call: _Call,
        created: int,
        deadline: float,
        shown: _Shown,
        owui: bool,
        started: float,
    ) -> AsyncIterator[str]:
        """The chunks of a streamed chat: accepted, queued (when no slot is free at once), a status
        per step, the source events, the answer, then ``[DONE]``; a failure midway is an error
        event before ``[DONE]``."""
        safe = shown.safe
        outcome = "exit_reason=none"
        cited = 0
        rid = call.rid
        status: int | str = "error"

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
            return wire.chunk(rid, body.model, created, delta, finish, **extra)

        accepted = {"status": "accepted", "thread_id": body.thread_id, **call.ids}
        yield chunk({"role": "assistant", "content": ""}, arag=accepted)
        try:
            async with contextlib.aclosing(self._take_slot(deadline)) as notices:
                async for notice in notices:
                    yield chunk({"reasoning_content": notice}, arag={"status": "queued"})
            async for item in self.runs.items(run, deadline, parent=call.span):
                self._observe(call, item)
                kind = item["type"]
                if kind == "status":
                    text = neutralise_markdown(item["text"]) if safe else item["text"]
                    yield chunk({"reasoning_content": text + "\n"}, arag={"step": wire.jsonable(item["data"])})
                elif kind == "draft":
                    yield chunk({}, arag={"draft": item["text"]})
                elif kind == "failed":
                    raise wire.from_failed(item)
                else:
                    outcome, cited = f"exit_reason={item['exit_reason']}", len(item["citations"])
                    status = 200
                    for last in wire.final_chunks(
                        rid,
                        body,
                        created,
                        call.stamped(item),
                        safe=safe,
                        references=shown.references,
                        attached_events=shown.attached_events,
                    ):
                        yield last
        except ApiError as exc:
            outcome = f"error={exc.code or exc.type}"
            yield wire.sse(exc.body())
        except Exception as exc:  # whatever breaks midway, the client hears it and the stream ends properly
            outcome = "error=internal_error"
            yield wire.sse(wire.failure(wire.log_failure("streamed chat", exc)).body())
        finally:
            self.metrics.request(body.model, status)
            self._finished(call, status)
        _log_completion(body, owui, outcome, cited, started, call)
        yield wire.DONE

    async def _take_slot(self, deadline: float) -> AsyncGenerator[str, None]:
        """Take a run slot for a stream; when none is free at once, first yield one status line
        (so the client hears at once that it waits). A slot taken or waited for by a client that
        has gone is given back."""
        slot = asyncio.ensure_future(self.runs.start(deadline))
        try:
            if not (await asyncio.wait({slot}, timeout=_QUEUED_AFTER))[0]:
                yield f"waiting for a free run slot ({self.admission.waiting} waiting)\n"
            await slot
        except BaseException:
            # start() gives the admission up when cancelled, but a slot that came as it was
            # cancelled (or before) is taken all the same: it goes back once the wait is over.
            slot.cancel()
            slot.add_done_callback(self._give_back)
            raise

    def _give_back(self, slot: asyncio.Future[None]) -> None:
        """Release the slot a stream took for a client that has gone."""
        if not slot.cancelled() and slot.exception() is None:
            self.admission.release(0.0)

    # -- errors --------------------------------------------------------------------------------

    async def api_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        if exc.status < 500:
            self.refuse(exc.code or exc.type, f"{_who(request)}: {exc.status} {exc.message}")
        elif exc.code != "run_failed":  # a failed run is logged with its exception already
            logger.warning("%s: %s %s", _who(request), exc.status, exc.message)
        return exc.response()

    async def http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        error = ApiError(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}", code=code)
        return await self.api_error(request, error)

    def routes(self) -> list[Route]:
        return [
            Route("/", self.page, methods=["GET"]),
            Route("/health", self.health, methods=["GET"]),
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/v1/chat/completions", self.completions, methods=["POST"]),
            Route("/v1/threads/{thread_id}", self.thread, methods=["GET"]),
            Route("/v1/threads/{thread_id}/approval", self.approval, methods=["POST"]),
            Route("/metrics", self.metrics_page, methods=["GET"]),
        ]


@dataclass
class _Call:
    """One admitted chat request: its ids, its server span, when it was admitted."""

    rid: str
    model: str
    admitted: float
    span: Any = None
    first_seen: bool = False

    @property
    def trace_id(self) -> str | None:
        return tracing.trace_id_of(self.span)

    @property
    def ids(self) -> dict[str, Any]:
        """The ids for the ``arag`` object."""
        return {"request_id": self.rid, "trace_id": self.trace_id}

    @property
    def headers(self) -> dict[str, str]:
        headers = {"X-Request-Id": self.rid}
        if (trace := self.trace_id) is not None:
            headers["X-Arag-Trace-Id"] = trace
        return headers

    def stamped(self, final: dict[str, Any]) -> dict[str, Any]:
        """A run's final item with the request's ids (the ``arag`` object shows them)."""
        return {**final, **self.ids}


def _who(request: Request) -> str:
    client = request.client
    where = f"{client.host}:{client.port}" if client else "a client"
    return f"{where} {request.method} {request.url.path}"


@dataclass(frozen=True, slots=True)
class _Shown:
    """What a request's answer shows besides the answer."""

    references: bool
    """The text "Sources" list after the answer."""
    attached_events: bool
    """Source events for the sources the client attached itself (Open WebUI has its own)."""
    safe: bool
    """Markdown images and raw HTML neutralised."""


def _attached_sources(question: str, history: list[BaseMessage]) -> tuple[str, list[BaseMessage], list[AttachedSource]]:
    """The question and conversation without Open WebUI's RAG template, and the sources it
    attached: the template wraps the question, or (``RAG_SYSTEM_CONTEXT``) is a system message."""
    wrapped = open_webui.rag_prompt(question)
    if wrapped is not None:
        return wrapped.query, history, wrapped.sources
    for i, message in enumerate(history):
        if isinstance(message, SystemMessage) and (held := open_webui.rag_prompt(message.text)) is not None:
            return question, [*history[:i], *history[i + 1 :]], held.sources
    return question, history, []


def _log_completion(
    body: ChatRequest, owui: bool, outcome: str, citations: int, started: float, call: _Call | None = None
) -> None:
    """One line per completion: which model, streamed or not, what came of it, how long it took,
    and its request and trace ids (what a user's bug report quotes)."""
    ids = f" request_id={call.rid}" + (f" trace_id={call.trace_id}" if call.trace_id else "") if call else ""
    logger.info(
        "completion model=%s stream=%s%s %s citations=%d seconds=%.2f%s",
        body.model,
        body.stream,
        " client=open-webui" if owui else "",
        outcome,
        citations,
        time.perf_counter() - started,
        ids,
    )


def _answer_now(rid: str, body: ChatRequest, created: int, text: str) -> Response:
    """The reply to a front end's background request, without a run (and no usage: no model ran)."""
    if not body.stream:
        return SafeJSONResponse(wire.completion(rid, body.model, created, text, arag={"background": True}))

    async def chunks() -> AsyncIterator[str]:
        yield wire.chunk(rid, body.model, created, {"role": "assistant", "content": text})
        yield wire.chunk(rid, body.model, created, {}, "stop", arag={"background": True})
        yield wire.DONE

    return StreamingResponse(chunks(), media_type="text/event-stream")


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
            error_id = wire.log_failure(f"{scope.get('method')} {scope.get('path')}", exc)
            if not started:  # else the response is cut short: nothing more can be sent
                await wire.failure(error_id).response()(scope, receive, send)


def create_app(
    settings: Settings | None = None, *, agents: ServerAgents | None = None, owns_agents: bool | None = None
) -> Starlette:
    """The ASGI app (run it with any ASGI server; ``arag serve`` uses uvicorn).

    Args:
        settings: Defaults to ``Settings()``: limits, key, and the agents when ``agents`` is not given.
        agents: The agents to serve (tests inject them).
        owns_agents: Close the agents with the app; by default only when they are built here.
    """
    settings = settings or Settings()
    owns = agents is None if owns_agents is None else owns_agents
    server = ChatServer(
        settings, agents if agents is not None else ServerAgents.from_settings(settings), owns_agents=owns
    )
    app = Starlette(
        routes=server.routes(),
        middleware=[Middleware(_Contained)],
        exception_handlers={ApiError: server.api_error, HTTPException: server.http_error},
        lifespan=server.lifespan,
    )
    app.state.server = server
    return app


def serve(settings: Settings | None = None, *, log_level: Literal["debug", "info", "warning"] = "info") -> None:
    """Build the agents and serve them with uvicorn until interrupted; with
    ``settings.server.workers`` above 1, in that many processes (:mod:`agents.serve._workers`).

    Raises:
        ValueError: A non-loopback host without an API key and without ``settings.server.no_auth``
            (see :func:`~agents.serve._connections.check_exposure`), or several workers over a
            store one process opens at a time (:func:`~agents.serve._workers.check_workers`).
    """
    settings = settings or Settings()
    check_exposure(settings)
    if settings.server.workers > 1:
        from agents.serve._workers import serve_workers

        serve_workers(settings, settings.server.workers, log_level=log_level)
        return
    app = ready_app(settings, owns_agents=False)
    config = uvicorn_config(app, settings, log_level=log_level)
    data_dir = settings.store.data_dir
    try:
        _advertised(config, data_dir).run()
    finally:
        withdraw(data_dir)
        app.state.server.agents.close()


def _advertised(config: Any, data_dir: Path) -> Any:
    """uvicorn's server that, once its socket listens, writes ``<data_dir>/server.json`` so that
    ``arag ask`` over the same data folder asks this process (:mod:`agents._handoff`)."""
    import uvicorn

    class Advertised(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started and self.servers and self.servers[0].sockets:
                host, port = self.servers[0].sockets[0].getsockname()[:2]
                try:
                    advertise(data_dir, str(host), int(port))
                except OSError as exc:  # a read-only data folder: `arag ask` runs in its own process then
                    logger.warning("could not write %s: %s", data_dir / SERVER_FILE, exc)

        async def shutdown(self, sockets: Any = None) -> None:
            # Here, not only after run(): uvicorn re-raises a SIGTERM once it has stopped, and that
            # ends the process before any `finally` of ours.
            withdraw(data_dir)
            await super().shutdown(sockets)

    return Advertised(config)


def ready_app(settings: Settings, *, owns_agents: bool) -> Starlette:
    """The app over agents built from ``settings``, the embedding model loaded before the first
    request: what ``arag serve`` runs, in one process or in each worker (each sets up its own
    tracing from the ``OTEL_*`` variables: :mod:`agents.telemetry`)."""
    from agents.telemetry import configure_tracing

    configure_tracing()
    agents = ServerAgents.from_settings(settings)
    if agents.rag is not None:
        warm_up(agents.rag.retriever.embeddings)
    return create_app(settings, agents=agents, owns_agents=owns_agents)
