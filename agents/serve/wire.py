"""What ``arag serve`` sends and receives, in OpenAI's shapes: the chat request body, completions
and stream chunks built from a run's final item, and error objects.

Every refusal or failure reaches the client as ``{"error": {"message", "type", "param",
"code"}}`` (:class:`ApiError`); an unexpected failure carries an error id and never the
exception's text (:func:`log_failure` writes the exception to the log under that id). JSON out is
:func:`agents.serve._bodies.dumps`, so no text can make a response fail to encode.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.responses import JSONResponse

from agents.events import Citation
from agents.serve._bodies import dumps
from agents.serve.chat import citation_payload, neutralise_markdown, with_references
from agents.serve.open_webui import ATTACHED_SOURCE, AttachedSource, source_event, sources_list
from graphs.react import ApprovalDecision

__all__ = [
    "DONE",
    "ApiError",
    "ChatRequest",
    "SafeJSONResponse",
    "chunk",
    "completion",
    "failure",
    "final_chunks",
    "final_completion",
    "from_failed",
    "jsonable",
    "log_failure",
    "parse_request",
    "run_failed",
    "source_chunks",
    "sse",
    "thread_store_unavailable",
    "usage",
]

logger = logging.getLogger("arag.server")

DONE = "data: [DONE]\n\n"
"""The last event of every stream."""


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


class ChatRequest(BaseModel):
    """The body of ``POST /v1/chat/completions`` (fields a client may send and we do not use are
    accepted and ignored: temperature, max_tokens, ...)."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[dict[str, Any]] = Field(min_length=1)
    stream: bool = False
    thread_id: str | None = Field(default=None, min_length=1, max_length=200)
    """Keep the conversation on the server under this id (``rag`` and ``react``)."""
    references: bool | None = None
    """Append the numbered references to the answer text; unset, the server decides (yes, except
    for Open WebUI, which shows them as chips: ``ARAG_SERVER_OPEN_WEBUI_REFERENCES``)."""


class ApprovalRequest(BaseModel):
    """The body of ``POST /v1/threads/{id}/approval``: one ``decision`` for every waiting call,
    or ``decisions`` by call id (each ``{"action": "approve" | "edit" | "reject", "args": {...},
    "reason": "..."}``)."""

    model_config = ConfigDict(extra="forbid")

    model: str = "react"
    decision: ApprovalDecision | None = None
    decisions: dict[str, ApprovalDecision] | None = Field(default=None, min_length=1)
    stream: bool = False

    @model_validator(mode="after")
    def _one(self) -> ApprovalRequest:
        if (self.decision is None) == (self.decisions is None):
            msg = "give either 'decision' (for every waiting call) or 'decisions' (by call id)"
            raise ValueError(msg)
        return self

    @property
    def chosen(self) -> dict[str, Any]:
        """What :meth:`ReactAgent.stream_resume <agents.react_agent.ReactAgent.stream_resume>` takes."""
        if self.decision is not None:
            return self.decision.model_dump()
        assert self.decisions is not None
        return {key: value.model_dump() for key, value in self.decisions.items()}


def parse_approval(data: Any) -> ApprovalRequest:
    """A parsed JSON body as an :class:`ApprovalRequest`; a 400 naming the first bad field."""
    return _parsed(ApprovalRequest, data, "the body must be a JSON object with 'decision' or 'decisions'")


def parse_request(data: Any) -> ChatRequest:
    """A parsed JSON body as a :class:`ChatRequest`; a 400 naming the first bad field."""
    return _parsed(ChatRequest, data, "the body must be a JSON object with 'model' and 'messages'")


_Body = TypeVar("_Body", bound=BaseModel)


def _parsed(schema: type[_Body], data: Any, not_an_object: str) -> _Body:
    if not isinstance(data, dict):
        raise ApiError(400, not_an_object)
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ApiError(400, f"{where + ': ' if where else ''}{first['msg']}", param=where or None) from None


# -- failures ----------------------------------------------------------------------------------


def log_failure(what: str, exc: BaseException) -> str:
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


def failure(error_id: str, what: str = "the request") -> ApiError:
    """The 500 a client gets for a failure logged under ``error_id``."""
    return ApiError(
        500,
        f"{what} failed on the server (error id {error_id}; the server log has the details)",
        type="server_error",
        code="internal_error",
    )


def run_failed(error_id: str) -> ApiError:
    """The 500 of an agent run that failed (already logged under ``error_id``)."""
    error = failure(error_id, "the agent run")
    error.code = "run_failed"
    return error


def thread_store_unavailable(message: str, error_id: str | None = None) -> ApiError:
    """The 503 of a request whose thread store does not answer (Postgres down or restarting)."""
    logged = f" (error id {error_id})" if error_id else ""
    return ApiError(
        503,
        message + logged,
        type="server_error",
        code="thread_store_unavailable",
        headers={"Retry-After": "5"},
    )


def from_failed(item: Mapping[str, Any]) -> ApiError:
    """The error of a run's ``failed`` item: a 503 when the thread store went away, else a 500."""
    if item.get("unavailable"):
        return thread_store_unavailable(str(item["unavailable"]), str(item["error_id"]))
    return run_failed(str(item["error_id"]))


# -- completions and chunks --------------------------------------------------------------------


def sse(payload: Mapping[str, Any]) -> str:
    """One server-sent event."""
    return f"data: {dumps(payload)}\n\n"


def usage(counts: Mapping[str, Any]) -> dict[str, int] | None:
    """A run's usage as OpenAI's token counts; ``None`` when no model ran (nothing to count,
    and zeros would read as a measurement)."""
    prompt, completion = int(counts.get("input_tokens", 0)), int(counts.get("output_tokens", 0))
    if not int(counts.get("model_calls", 0)) and not prompt + completion:
        return None
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def chunk(rid: str, model: str, created: int, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
    """One ``chat.completion.chunk`` as a server-sent event; ``extra`` goes beside ``choices``."""
    return sse(
        {
            "id": rid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
    )


def completion(
    rid: str, model: str, created: int, content: str, *, reasoning: str = "", **extra: Any
) -> dict[str, Any]:
    """A ``chat.completion``; ``citations`` goes on the message and beside it, ``reasoning``
    (the steps, as Open WebUI shows thinking) on the message, a ``usage`` of ``None`` is left
    out, ``extra`` goes beside ``choices``."""
    citations = extra.pop("citations", [])
    if extra.get("usage", {}) is None:
        del extra["usage"]
    message: dict[str, Any] = {"role": "assistant", "content": content, "citations": citations}
    if reasoning:
        message["reasoning_content"] = reasoning
    return {
        "id": rid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "citations": citations,
        **extra,
    }


def _content(final: Mapping[str, Any], references: bool, *, safe: bool) -> str:
    answer = str(final["answer"])
    text = with_references(answer, final["citations"]) if references else answer
    return neutralise_markdown(text) if safe else text


def _extras(final: Mapping[str, Any]) -> dict[str, Any]:
    extras = {
        "exit_reason": final["exit_reason"],
        "thread_id": final["thread_id"] or None,
        "error": final["error"],
        "usage": final["usage"],
    }
    if final.get("pending"):
        extras["pending"] = final["pending"]  # the tool calls waiting for approval
    for key in ("request_id", "trace_id"):  # to match a bug report with the server's log and trace
        if key in final:
            extras[key] = final[key]
    return extras


def final_completion(
    rid: str,
    body: ChatRequest,
    created: int,
    final: Mapping[str, Any],
    *,
    safe: bool,
    references: bool,
    reasoning: str = "",
    attached: Sequence[AttachedSource] = (),
) -> dict[str, Any]:
    """The completion of a run's ``final`` item: the answer (with the text references when
    ``references``; Markdown neutralised when ``safe``), the steps as ``reasoning_content``,
    citations, Open WebUI's ``sources`` (:func:`~agents.serve.open_webui.sources_list`), usage
    (when a model ran) and the ``arag`` extras."""
    return completion(
        rid,
        body.model,
        created,
        _content(final, references, safe=safe),
        reasoning=reasoning,
        citations=[citation_payload(c) for c in final["citations"]],
        sources=sources_list(final["citations"], attached),
        usage=usage(final["usage"]),
        arag=_extras(final),
    )


def source_chunks(rid: str, model: str, created: int, citations: list[Citation], *, attached: bool) -> list[str]:
    """One chunk per citation carrying it as Open WebUI's source event (``event`` beside
    ``choices``; other clients ignore the field). ``attached`` False leaves out the citations of
    sources the front end sent itself (it shows those already, under the same numbers)."""
    return [
        chunk(rid, model, created, {}, event=source_event(c))
        for c in citations
        if attached or c.source != ATTACHED_SOURCE
    ]


def final_chunks(
    rid: str,
    body: ChatRequest,
    created: int,
    final: Mapping[str, Any],
    *,
    safe: bool,
    references: bool,
    attached_events: bool = True,
) -> list[str]:
    """The last chunks of a stream for a run's ``final`` item: a source event per citation
    (:func:`source_chunks`), the answer, then the stop chunk with citations, usage (when a
    model ran) and the ``arag`` extras."""
    citations = [citation_payload(c) for c in final["citations"]]
    sources = source_chunks(rid, body.model, created, list(final["citations"]), attached=attached_events)
    answer = chunk(rid, body.model, created, {"content": _content(final, references, safe=safe)})
    extras: dict[str, Any] = {"citations": citations, "arag": _extras(final)}
    if (counts := usage(final["usage"])) is not None:
        extras["usage"] = counts
    return [*sources, answer, chunk(rid, body.model, created, {}, "stop", **extras)]


def jsonable(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with whatever JSON cannot hold as its ``str``."""
    return json.loads(json.dumps(data, default=str))  # type: ignore[no-any-return]
