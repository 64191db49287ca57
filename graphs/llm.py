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
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.messages.utils import count_tokens_approximately
from pydantic import BaseModel, ValidationError
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from graphs.budget import Budget, BudgetExceeded

__all__ = ["ModelClient", "ModelError", "RetryPolicy", "is_transient", "parse_json_object"]

T = TypeVar("T", bound=BaseModel)


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


class ModelClient:
    """A chat model behind retries, usage accounting and the run's budget.

    Args:
        model: Any LangChain chat model (``ChatOpenAI(base_url=...)`` reaches OpenAI, vLLM, Ollama,
            llama.cpp and LM Studio). Turn its own retries off (``max_retries=0``).
        retry: Retry policy for transient faults.
    """

    def __init__(self, model: BaseChatModel, retry: RetryPolicy | None = None) -> None:
        self.model = model
        self.retry = retry or RetryPolicy()

    @property
    def name(self) -> str:
        return str(
            getattr(self.model, "model_name", None) or getattr(self.model, "model", None) or type(self.model).__name__
        )

    def invoke(
        self,
        messages: Sequence[BaseMessage],
        budget: Budget,
        *,
        tools: Sequence[Any] | None = None,
        tags: Sequence[str] = (),
    ) -> AIMessage:
        """One model call (with retries), charged to ``budget``.

        Raises:
            BudgetExceeded: The budget was spent before the call.
            ModelError: The call failed after its retries, or with a permanent error.
        """
        budget.start_call()
        runnable: Any = self.model.bind_tools(list(tools)) if tools else self.model
        if tags:
            runnable = runnable.with_config(tags=list(tags))
        attempts = 1
        try:
            replay: BaseException | None = None
            try:
                # The first attempt goes straight to the model: most calls need no retry, and
                # tenacity's loop costs about 100 us a call (a quarter of a zero-latency model's).
                response = runnable.invoke(list(messages))
            except Exception as exc:
                if not is_transient(exc):
                    raise
                replay = exc
            if replay is not None:
                attempts = 0
                for attempt in self._retrying(budget):
                    with attempt:
                        attempts += 1
                        if replay is not None:  # tenacity sees the first failure as its attempt 1
                            failure, replay = replay, None
                            raise failure
                        budget.check()  # the deadline may have passed while waiting
                        response = runnable.invoke(list(messages))
        except BudgetExceeded:
            raise
        except Exception as exc:  # any failure of the model is the run's error, with its reason
            status_error = _openai_error("APIStatusError")
            if status_error is not None and isinstance(exc, status_error):
                status = getattr(exc, "status_code", "?")
                msg = f"model {self.name!r} failed after {attempts} attempt(s): HTTP {status}: {_brief(exc)}"
            else:
                msg = f"model {self.name!r} failed after {attempts} attempt(s): {type(exc).__name__}: {_brief(exc)}"
            raise ModelError(msg, attempts=attempts, cause=exc) from exc
        if not isinstance(response, AIMessage):
            response = AIMessage(content=str(getattr(response, "content", response)))
        self._charge(budget, messages, response)
        return response

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

        The JSON schema is appended to the instructions, and the reply is parsed from the text, so
        it works with servers that offer neither tool calling nor JSON mode.
        """
        instruction = SystemMessage(
            "Reply with only one JSON object (no prose, no code fence) that matches this JSON schema:\n"
            + json.dumps(schema.model_json_schema())
        )
        conversation = [*messages, instruction]
        for attempt in range(2):
            reply = self.invoke(conversation, budget, tags=tags)
            text = reply.text if isinstance(reply.text, str) else str(reply.content)
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


def _brief(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] + ("..." if len(text) > 300 else "")
