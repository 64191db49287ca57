"""The one wrapper every chat-model call goes through: retries, usage accounting, the run's budget.

- Transient faults (HTTP 429, 408, 409, 5xx, timeouts, connection errors) are retried with
  exponential backoff and jitter; a ``Retry-After`` header, when the server sends one, sets the wait.
  Give the client itself no retries (``ChatOpenAI(max_retries=0)``), so attempts are counted here.
- Tokens come from the response's usage metadata; when a server reports none they are estimated
  from the text (``Usage.estimated`` says so).
- Each call is charged to the run's :class:`~graphs.budget.Budget`; a spent budget raises
  :class:`~graphs.budget.BudgetExceeded` before the request is sent.
- :meth:`ModelClient.structured` asks for JSON, validates it with a Pydantic model, repairs once by
  showing the model its error, and returns ``None`` when that fails too, so the caller falls back.
"""

from __future__ import annotations

import email.utils
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import httpx
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.messages.utils import count_tokens_approximately
from pydantic import BaseModel, ValidationError
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from graphs.budget import Budget, BudgetExceeded
from tools import tracing

__all__ = ["STRUCTURED_PATHS", "ModelClient", "ModelError", "RetryPolicy", "is_transient", "parse_json_object"]

T = TypeVar("T", bound=BaseModel)

logger = logging.getLogger("arag.model")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How transient model failures are retried."""

    max_attempts: int = 4
    """Attempts per call, the first included."""
    initial_wait: float = 0.5
    """Seconds before the first retry; doubles each time."""
    max_wait: float = 20.0
    """Longest single wait, also the cap on a server's Retry-After."""
    jitter: float = 0.5
    """Random seconds added to each backoff wait, so clients do not retry in lockstep."""


class ModelError(RuntimeError):
    """A model call failed for good: a permanent error, or a transient one that outlived its retries."""

    def __init__(self, message: str, *, attempts: int, cause: BaseException) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.cause = cause


_TRANSIENT_STATUS = {408, 409, 429}


def _openai_error(name: str) -> type[BaseException] | None:
    """openai's exception class ``name`` if openai is loaded. It is not imported here (0.6 s): a model
    client that raises its errors has loaded it, and without one no such error can occur."""
    module = sys.modules.get("openai")
    found = getattr(module, name, None) if module is not None else None
    return found if isinstance(found, type) and issubclass(found, BaseException) else None


def is_transient(exc: BaseException) -> bool:
    """Whether retrying ``exc`` can help: rate limits, server errors, timeouts, dropped connections."""
    if isinstance(exc, httpx.TransportError | TimeoutError | ConnectionError):
        return True
    connection = _openai_error("APIConnectionError")
    if connection is not None and isinstance(exc, connection):
        return True
    status = getattr(exc, "status_code", None)
    return isinstance(status, int) and (status in _TRANSIENT_STATUS or status >= 500)


def _retry_after(exc: BaseException | None) -> float | None:
    """Seconds the server asked us to wait (``Retry-After`` / ``retry-after-ms``), if it did."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, when.timestamp() - time.time()) if when else None


_REFUSAL_STATUS = frozenset({400, 404, 405, 415, 422, 500, 501})
"""Statuses with which servers refuse a request feature they do not have (llama-cpp-python answers
``tool_choice: "required"`` and ``json_schema`` with a 500; vLLM and OpenAI answer 400)."""
_CAP_PARAM = re.compile(r"\bmax_(?:completion_)?tokens\b")

STRUCTURED_PATHS = ("json_schema", "json_object", "tools", "text")
"""How :meth:`ModelClient.structured` asks an OpenAI-compatible server for JSON, best first."""


class _Refused(Exception):  # noqa: N818 - control flow inside ModelClient, never escapes
    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class _Failed(Exception):  # noqa: N818 - carries the attempts of a failed call to its ModelError
    def __init__(self, cause: BaseException, attempts: int) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.attempts = attempts


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


class ModelClient:
    """A chat model behind retries, usage accounting, the run's budget and server quirks.

    Compatibility with OpenAI-compatible servers (``ChatOpenAI``; other chat models are called as
    they are):

    - Output cap: the model's ``max_tokens`` is sent as ``max_completion_tokens`` (what
      langchain-openai sends) and as ``max_tokens`` (what llama.cpp, Ollama and older servers
      honour). A server that refuses one of them (OpenAI's reasoning models refuse ``max_tokens``)
      gets the other; a reply longer than the cap is noted as ``cap: ignored``.
    - Tool choice: ``required`` falls back to naming the first tool, then to ``auto``; a named
      choice falls back to ``auto``, when the server refuses it (an HTTP 4xx/5xx).
    - Structured output (:meth:`structured`): ``json_schema`` -> ``json_object`` with the schema
      -> a forced tool call -> the schema in the prompt and the reply parsed.
    - A tool-call turn with no text goes out with ``content: null`` (langchain-openai's choice);
      a server that refuses that (llama-cpp-python's schema wants a string) gets a blank text.

    What a server refused is remembered for the client's lifetime (one client per server), so
    later calls go straight to what works; every call records the path it used in the run's
    :attr:`Budget.model_paths <graphs.budget.Budget.model_paths>` and each fallback in
    :attr:`Budget.fallbacks <graphs.budget.Budget.fallbacks>` (``model_fallback`` steps).

    Args:
        model: Any LangChain chat model (``ChatOpenAI(base_url=...)`` reaches OpenAI, vLLM, Ollama,
            llama.cpp and LM Studio). Turn its own retries off (``max_retries=0``).
        retry: Retry policy for transient faults.
    """

    def __init__(self, model: BaseChatModel, retry: RetryPolicy | None = None) -> None:
        self.model = model
        self.retry = retry or RetryPolicy()
        self.refused: set[str] = set()
        """Features this client's server refused (``max_tokens``, ``tool_choice=required``, ...)."""
        self._lock = threading.Lock()
        self._uncapped: BaseChatModel | None = None

    @property
    def name(self) -> str:
        return str(
            getattr(self.model, "model_name", None) or getattr(self.model, "model", None) or type(self.model).__name__
        )

    @property
    def openai_compatible(self) -> bool:
        """Whether the model speaks the OpenAI chat API (``langchain_openai``), so its requests can
        be shaped: output cap, response format, tool choice."""
        return type(self.model).__module__.startswith("langchain_openai")

    @property
    def output_cap(self) -> int | None:
        """Tokens one reply may have (the model's ``max_tokens``), or ``None``."""
        cap = getattr(self.model, "max_tokens", None)
        return cap if isinstance(cap, int) and cap > 0 else None

    def invoke(
        self,
        messages: Sequence[BaseMessage],
        budget: Budget,
        *,
        tools: Sequence[Any] | None = None,
        tool_choice: str | None = None,
        tags: Sequence[str] = (),
    ) -> AIMessage:
        """One model call (with retries), charged to ``budget``.

        Args:
            tool_choice: ``None`` (the model decides), ``"required"`` (some tool must be called) or
                a tool's name; falls back as the class says when the server refuses it.

        Raises:
            BudgetExceeded: The budget was spent before the call.
            ModelError: The call failed after its retries, or with a permanent error.
        """
        if not tools or tool_choice in (None, "auto"):
            return self._call(messages, budget, tools=tools, tags=tags)
        first = _tool_name(tools[0])
        wanted: list[tuple[str, str | None]] = [("required", "required")] if tool_choice == "required" else []
        wanted += [("named", tool_choice if tool_choice != "required" else first), ("auto", None)]
        options = [(kind, choice) for kind, choice in wanted if f"tool_choice={kind}" not in self.refused]
        refused: list[tuple[str, str]] = []
        for i, (kind, choice) in enumerate(options):
            last = i == len(options) - 1
            try:
                # The last way is refusable too once another was refused: the same error again is
                # the server's answer to tools at all, which retrying cannot change.
                reply = self._call(
                    messages, budget, tools=tools, tool_choice=choice, tags=tags, refusable=not last or bool(refused)
                )
            except _Refused as exc:
                if last:
                    raise self._error(exc.cause, 1) from exc.cause
                self._refuse(f"tool_choice={kind}")
                refused.append((kind, _brief(exc.cause, 160)))
                continue
            requested = "required" if tool_choice == "required" else "named"
            path = kind if kind != "named" or requested == "named" else f"named:{choice}"
            if kind != "auto" and not reply.tool_calls and not reply.invalid_tool_calls:
                path += " (ignored by the server)"
            fallback = None
            if refused or path.endswith("(ignored by the server)"):
                reason = "; ".join(f"{k} refused: {why}" for k, why in refused) or "the reply called no tool"
                fallback = {"feature": "tool_choice", "refused": requested, "chosen": path, "reason": reason}
            budget.record_path("tool_choice", path, fallback)
            return reply
        raise AssertionError("unreachable: the last tool choice is not refusable")  # pragma: no cover

    def _call(
        self,
        messages: Sequence[BaseMessage],
        budget: Budget,
        *,
        tools: Sequence[Any] | None = None,
        tool_choice: str | None = None,
        response_format: dict[str, Any] | None = None,
        tags: Sequence[str] = (),
        refusable: bool = False,
    ) -> AIMessage:
        """One request with its retries; a refusal of the output cap parameter is resent without it.
        With ``refusable``, a refused request raises :class:`_Refused` at once (no retries), so the
        caller can try the next way of asking."""
        budget.start_call()
        attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai" if self.openai_compatible else type(self.model).__name__,
            "gen_ai.request.model": self.name,
            "gen_ai.request.max_tokens": self.output_cap,
            "arag.tags": list(tags),
            "arag.tools": len(tools or ()),
            "arag.tool_choice": tool_choice,
            "arag.response_format": (response_format or {}).get("type"),
        }
        retries = budget.usage.retries
        with tracing.span(f"chat {self.name}", attributes, kind="client") as span:
            response: Any = None
            while True:
                runnable = self._runnable(tools, tool_choice, response_format, tags)
                sent = self._with_text_content(messages) if "null_content" in self.refused else messages
                try:
                    response = self._send(runnable, sent, budget, refusable=refusable)
                    break
                except _Failed as failed:
                    if self._cap_refused(failed.cause, budget) or self._null_content_refused(
                        failed.cause, messages, budget
                    ):
                        continue
                    tracing.set_attributes(span, {"arag.retries": budget.usage.retries - retries})
                    if refusable and _status(failed.cause) in _REFUSAL_STATUS and failed.attempts == 1:
                        tracing.set_attributes(span, {"arag.refused": True, "error.type": "refused"})
                        raise _Refused(failed.cause) from failed.cause
                    raise self._error(failed.cause, failed.attempts) from failed.cause
            reply = (
                response if isinstance(response, AIMessage) else AIMessage(str(getattr(response, "content", response)))
            )
            self._charge(budget, messages, reply)
            self._check_cap(budget, reply)
            if span is not None:
                tracing.set_attributes(span, _reply_attributes(reply, budget.usage.retries - retries))
        return reply

    def _runnable(
        self,
        tools: Sequence[Any] | None,
        tool_choice: str | None,
        response_format: dict[str, Any] | None,
        tags: Sequence[str],
    ) -> Any:
        model = self.model
        extra: dict[str, Any] = {}
        if self.openai_compatible:
            # Sent through extra_body, as the server reads them: langchain-openai renames
            # max_tokens, and a response_format kwarg would take it down its beta parse path.
            extra = dict(getattr(model, "extra_body", None) or {})
            if (cap := self.output_cap) is not None:
                if "max_tokens" not in self.refused:
                    extra["max_tokens"] = cap
                if "max_completion_tokens" in self.refused:
                    model = self._without_completion_cap()
            if response_format is not None:
                extra["response_format"] = response_format
        runnable: Any = model
        if tools:
            runnable = self._bound(model, list(tools), tool_choice)
        if extra:
            runnable = runnable.bind(extra_body=extra)
        if tags:
            runnable = runnable.with_config(tags=list(tags))
        return runnable

    def _bound(self, model: BaseChatModel, tools: list[Any], tool_choice: str | None) -> Any:
        """``model`` with ``tools`` and the tool choice in the model class's own spelling:
        ``"required"`` is OpenAI's word; other LangChain chat models (Anthropic, Google, Bedrock)
        take ``"any"``. A class that takes no such choice gets the tools alone (the model decides)."""
        if tool_choice is None:
            return model.bind_tools(tools)
        choice = tool_choice if self.openai_compatible or tool_choice != "required" else "any"
        try:
            return model.bind_tools(tools, tool_choice=choice)
        except (NotImplementedError, TypeError, ValueError) as exc:
            logger.debug("model %s takes no tool_choice %r (%s): the model decides", self.name, choice, exc)
            return model.bind_tools(tools)

    def _without_completion_cap(self) -> BaseChatModel:
        if self._uncapped is None:
            self._uncapped = self.model.model_copy(update={"max_tokens": None})
        return self._uncapped

    def _send(self, runnable: Any, messages: Sequence[BaseMessage], budget: Budget, *, refusable: bool) -> Any:
        """The request, and its retries on transient faults; a failure raises :class:`_Failed`."""
        try:
            # The first attempt goes straight to the model: most calls need no retry, and
            # tenacity's loop costs about 100 us a call (a quarter of a zero-latency model's).
            return runnable.invoke(list(messages))
        except BudgetExceeded:
            raise
        except Exception as exc:
            first = exc
        if not is_transient(first) or self._cap_param(first) or (refusable and _status(first) in _REFUSAL_STATUS):
            raise _Failed(first, 1) from first
        attempts, replay = 0, cast(Exception | None, first)
        try:
            for attempt in self._retrying(budget):
                with attempt:
                    attempts += 1
                    if replay is not None:  # tenacity sees the first failure as its attempt 1
                        failure, replay = replay, None
                        raise failure
                    budget.check()  # the deadline may have passed while waiting
                    return runnable.invoke(list(messages))
        except BudgetExceeded:
            raise
        except Exception as exc:
            raise _Failed(exc, attempts) from exc
        raise AssertionError("unreachable: tenacity reraises the last failure")  # pragma: no cover

    def _cap_param(self, exc: BaseException) -> str | None:
        """The output-cap parameter a 400/422 names, if the server refused one we sent."""
        if not self.openai_compatible or self.output_cap is None or _status(exc) not in (400, 422):
            return None
        match = _CAP_PARAM.search(str(exc))
        return match.group(0) if match and match.group(0) not in self.refused else None

    def _cap_refused(self, exc: BaseException, budget: Budget) -> bool:
        param = self._cap_param(exc)
        if param is None or {"max_tokens", "max_completion_tokens"} <= self.refused | {param}:
            return False
        self._refuse(param)
        kept = "max_completion_tokens" if param == "max_tokens" else "max_tokens"
        fallback = {"feature": "cap", "refused": param, "chosen": kept, "reason": _brief(exc, 160)}
        budget.record_path("cap", kept, fallback)
        return True

    def _null_content_refused(self, exc: BaseException, messages: Sequence[BaseMessage], budget: Budget) -> bool:
        """Whether the server refused an assistant tool-call turn whose content is ``null`` (what
        langchain-openai sends for an empty one; llama-cpp-python wants a string): then every
        later request of this client sends such turns with a blank text."""
        if "null_content" in self.refused or not self.openai_compatible or _status(exc) not in _REFUSAL_STATUS:
            return False
        if "content" not in str(exc) or not any(_empty_tool_turn(m) for m in messages):
            return False
        self._refuse("null_content")
        fallback = {
            "feature": "messages",
            "refused": "null_content",
            "chosen": "blank_content",
            "reason": _brief(exc, 160),
        }
        budget.record_path("messages", "blank_content", fallback)
        return True

    @staticmethod
    def _with_text_content(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
        return [m.model_copy(update={"content": " "}) if _empty_tool_turn(m) else m for m in messages]

    def _check_cap(self, budget: Budget, response: AIMessage) -> None:
        cap = self.output_cap
        if cap is None or not self.openai_compatible:
            return
        usage = response.usage_metadata
        out = int(usage.get("output_tokens") or 0) if usage else 0
        if out > cap:
            reason = f"a reply of {out} tokens over the cap of {cap}"
            fallback = {"feature": "cap", "refused": "cap", "chosen": "ignored", "reason": reason}
            budget.record_path("cap", "ignored by the server", fallback)
        elif "cap" not in budget.model_paths:
            sent = [p for p in ("max_completion_tokens", "max_tokens") if p not in self.refused]
            budget.record_path("cap", "+".join(sent))

    def _refuse(self, feature: str) -> None:
        with self._lock:
            self.refused.add(feature)

    def _error(self, exc: BaseException, attempts: int) -> ModelError:
        status_error = _openai_error("APIStatusError")
        if status_error is not None and isinstance(exc, status_error):
            status = getattr(exc, "status_code", "?")
            msg = f"model {self.name!r} failed after {attempts} attempt(s): HTTP {status}: {_brief(exc)}"
        else:
            msg = f"model {self.name!r} failed after {attempts} attempt(s): {type(exc).__name__}: {_brief(exc)}"
        return ModelError(msg, attempts=attempts, cause=exc)

    def _retrying(self, budget: Budget) -> Retrying:
        """The retry loop after a transient failure: the policy's backoff (or the server's
        ``Retry-After``), capped by the time the budget has left; each retry counted."""
        policy = self.retry
        backoff = wait_exponential_jitter(multiplier=policy.initial_wait, max=policy.max_wait, jitter=policy.jitter)

        def wait(state: RetryCallState) -> float:
            asked = _retry_after(state.outcome.exception() if state.outcome else None)
            seconds = min(policy.max_wait, asked) if asked is not None else backoff(state)
            remaining = budget.remaining_s
            return seconds if remaining is None else min(seconds, remaining)

        def before_sleep(state: RetryCallState) -> None:
            budget.count_retry()

        return Retrying(
            stop=stop_after_attempt(policy.max_attempts),
            wait=wait,
            retry=retry_if_exception(is_transient),
            before_sleep=before_sleep,
            reraise=True,
        )

    def structured(
        self,
        messages: Sequence[BaseMessage],
        schema: type[T],
        budget: Budget,
        *,
        tags: Sequence[str] = (),
    ) -> T | None:
        """Ask for one JSON object matching ``schema``; repair once; ``None`` if still invalid.

        The JSON schema is always in the instructions too. An OpenAI-compatible server is asked
        along :data:`STRUCTURED_PATHS` (a refused way is not tried again on this client); any
        other chat model gets the instructions only and its reply is parsed from the text.
        """
        json_schema = schema.model_json_schema()
        instruction = SystemMessage(
            "Reply with only one JSON object (no prose, no code fence) that matches this JSON schema:\n"
            + json.dumps(json_schema)
        )
        conversation = [*messages, instruction]
        paths = STRUCTURED_PATHS if self.openai_compatible else ("text",)
        options = [p for p in paths if f"structured={p}" not in self.refused]
        refused: list[tuple[str, str]] = []
        for i, path in enumerate(options):
            try:
                parsed = self._structured_via(
                    path, conversation, schema, json_schema, budget, tags, i < len(options) - 1
                )
            except _Refused as exc:
                self._refuse(f"structured={path}")
                refused.append((path, _brief(exc.cause, 160)))
                continue
            fallback = None
            if refused:
                reason = "; ".join(f"{p} refused: {why}" for p, why in refused)
                fallback = {"feature": "structured", "refused": refused[0][0], "chosen": path, "reason": reason}
            budget.record_path("structured", path, fallback)
            return parsed
        return None  # pragma: no cover - the text path is never refused

    def _structured_via(
        self,
        path: str,
        conversation: list[BaseMessage],
        schema: type[T],
        json_schema: dict[str, Any],
        budget: Budget,
        tags: Sequence[str],
        refusable: bool,
    ) -> T | None:
        name = schema.__name__.strip("_") or "reply"
        tools: list[Any] | None = None
        choice: str | None = None
        response_format: dict[str, Any] | None = None
        if path == "json_schema":
            response_format = {"type": "json_schema", "json_schema": {"name": name, "schema": json_schema}}
        elif path == "json_object":
            response_format = {"type": "json_object", "schema": json_schema}  # llama.cpp: a grammar
        elif path == "tools":
            tools = [
                {"type": "function", "function": {"name": name, "description": "Reply", "parameters": json_schema}}
            ]
            choice = name
        for attempt in range(2):
            reply = self._call(
                conversation,
                budget,
                tools=tools,
                tool_choice=choice,
                response_format=response_format,
                tags=tags,
                refusable=refusable and attempt == 0,
            )
            text = json.dumps(reply.tool_calls[0]["args"]) if tools and reply.tool_calls else _text(reply)
            try:
                return schema.model_validate(parse_json_object(text))
            except (ValueError, ValidationError) as exc:
                if attempt == 1:
                    return None
                problem = str(exc).splitlines()[0] if isinstance(exc, ValueError) else _errors(exc)
                conversation = [
                    *conversation,
                    AIMessage(text),
                    HumanMessage(f"That reply was not valid ({problem}). Reply again with only the JSON object."),
                ]
        return None

    @staticmethod
    def _charge(budget: Budget, messages: Sequence[BaseMessage], response: AIMessage) -> None:
        usage = response.usage_metadata
        if usage and (usage.get("input_tokens") or usage.get("output_tokens")):
            budget.charge(int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0)))
            return
        budget.charge(
            count_tokens_approximately(list(messages)), count_tokens_approximately([response]), estimated=True
        )


_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.IGNORECASE)


def parse_json_object(text: str) -> dict[str, Any]:
    """The JSON object in a model's reply, tolerating a code fence or prose around it.

    Raises:
        ValueError: No JSON object could be read.
    """
    stripped = _FENCE.sub("", text.strip())
    start, end = stripped.find("{"), stripped.rfind("}")
    if start < 0 or end <= start:
        msg = "no JSON object in the reply"
        raise ValueError(msg)
    try:
        value = json.loads(stripped[start : end + 1])
    except json.JSONDecodeError as exc:
        msg = f"invalid JSON: {exc.msg} at character {exc.pos}"
        raise ValueError(msg) from exc
    if not isinstance(value, dict):
        msg = "the reply is JSON but not an object"
        raise ValueError(msg)
    return value


def _errors(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()[:3])


def _brief(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text[:limit] + ("..." if len(text) > limit else "")


def _reply_attributes(reply: AIMessage, retries: int) -> dict[str, Any]:
    usage = reply.usage_metadata
    metadata = reply.response_metadata or {}
    finish = metadata.get("finish_reason")
    attributes: dict[str, Any] = {
        "gen_ai.usage.input_tokens": int(usage.get("input_tokens") or 0) if usage else None,
        "gen_ai.usage.output_tokens": int(usage.get("output_tokens") or 0) if usage else None,
        "gen_ai.response.finish_reasons": [str(finish)] if finish else None,
        "gen_ai.response.model": metadata.get("model_name"),
        "arag.retries": retries,
        "arag.tool_calls": len(reply.tool_calls),
    }
    if tracing.capture_content:
        attributes["gen_ai.output.text"] = _text(reply)[:4000]
    return attributes


def _text(reply: AIMessage) -> str:
    return reply.text if isinstance(reply.text, str) else str(reply.content)


def _empty_tool_turn(message: BaseMessage) -> bool:
    return isinstance(message, AIMessage) and bool(message.tool_calls) and not message.content


def _tool_name(tool: Any) -> str:
    """The name a tool is called by: a LangChain tool's, or an OpenAI tool dict's."""
    if isinstance(tool, dict):
        return str((tool.get("function") or tool).get("name", ""))
    return str(getattr(tool, "name", None) or getattr(tool, "__name__", ""))
