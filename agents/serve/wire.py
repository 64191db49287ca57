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
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import JSONResponse

from agents.serve._bodies import dumps
from agents.serve.chat import citation_payload, neutralise_markdown, with_references

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
    "jsonable",
    "log_failure",
    "parse_request",
    "run_failed",
    "sse",
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
    references: bool = True
    """Append the numbered references to the answer text."""


def parse_request(data: Any) -> ChatRequest:
    """A parsed JSON body as a :class:`ChatRequest`; a 400 naming the first bad field."""
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object with 'model' and 'messages'")
    try:
        return ChatRequest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ApiError(400, f"{where}: {first['msg']}", param=where or None) from None


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


# -- completions and chunks --------------------------------------------------------------------


def sse(payload: Mapping[str, Any]) -> str:
    """One server-sent event."""
    return f"data: {dumps(payload)}\n\n"


def usage(counts: Mapping[str, Any]) -> dict[str, int]:
    """A run's usage as OpenAI's token counts."""
    prompt, completion = int(counts.get("input_tokens", 0)), int(counts.get("output_tokens", 0))
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


def completion(rid: str, model: str, created: int, content: str, **extra: Any) -> dict[str, Any]:
    """A ``chat.completion``; ``citations`` goes on the message and beside it, ``extra`` beside ``choices``."""
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


def _content(final: Mapping[str, Any], references: bool, *, safe: bool) -> str:
    answer = str(final["answer"])
    text = with_references(answer, final["citations"]) if references else answer
    return neutralise_markdown(text) if safe else text


def _extras(final: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "exit_reason": final["exit_reason"],
        "thread_id": final["thread_id"] or None,
        "error": final["error"],
        "usage": final["usage"],
    }


def final_completion(
    rid: str, body: ChatRequest, created: int, final: Mapping[str, Any], *, safe: bool
) -> dict[str, Any]:
    """The completion of a run's ``final`` item: the answer (with references unless the request
    says otherwise; Markdown neutralised when ``safe``), citations, usage and the ``arag`` extras."""
    return completion(
        rid,
        body.model,
        created,
        _content(final, body.references, safe=safe),
        citations=[citation_payload(c) for c in final["citations"]],
        usage=usage(final["usage"]),
        arag=_extras(final),
    )


def final_chunks(rid: str, body: ChatRequest, created: int, final: Mapping[str, Any], *, safe: bool) -> list[str]:
    """The last chunks of a stream for a run's ``final`` item: the answer, then the stop chunk
    with citations, usage and the ``arag`` extras."""
    citations = [citation_payload(c) for c in final["citations"]]
    answer = chunk(rid, body.model, created, {"content": _content(final, body.references, safe=safe)})
    extras = {"citations": citations, "usage": usage(final["usage"]), "arag": _extras(final)}
    return [answer, chunk(rid, body.model, created, {}, "stop", **extras)]


def jsonable(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with whatever JSON cannot hold as its ``str``."""
    return json.loads(json.dumps(data, default=str))  # type: ignore[no-any-return]
