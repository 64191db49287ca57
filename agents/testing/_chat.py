"""Chat models for tests: one scripted by a list of replies, one computing its reply from the prompt."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

__all__ = ["FunctionChatModel", "ScriptExhaustedError", "ScriptedChatModel", "function_model", "scripted"]


class ScriptExhaustedError(AssertionError):
    """The scripted model was called more often than its script has replies.

    An ``AssertionError``, so a test runner reports it as a failed expectation: the code under test
    made a model call the test did not plan for.
    """


class _ReplyingChatModel(FakeMessagesListChatModel):
    """What the test models share: ``bind_tools`` returns the model itself, ``sleep`` delays each
    call, and each reply (text, a dict sent as JSON text, or an ``AIMessage``) comes from
    :meth:`_reply`."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> _ReplyingChatModel:
        """Return the model itself: the script, not the tools, decides which tool calls it makes."""
        return self

    def _reply(self, messages: list[BaseMessage]) -> Any:
        raise NotImplementedError

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.sleep:
            time.sleep(self.sleep)
        item = self._reply(messages)
        if isinstance(item, dict):
            item = json.dumps(item)
        message = item if isinstance(item, BaseMessage) else AIMessage(content=str(item))
        return ChatResult(generations=[ChatGeneration(message=message)])


class ScriptedChatModel(_ReplyingChatModel):
    """A LangChain chat model that answers each call with the next item of its script.

    An item is a string (the reply's text), a dict (sent as JSON text, for the steps that ask for
    structured output), an ``AIMessage`` (e.g. with ``tool_calls`` or ``usage_metadata``) or an
    exception (raised, to test error handling). When the script runs out it raises
    :class:`ScriptExhaustedError`, so a run that makes more calls than the test planned fails loudly.
    ``bind_tools`` returns the model itself, so it drives tool-calling agents too. Build one with
    :func:`scripted`.

    One script position is shared by all callers: use :class:`FunctionChatModel` for calls that run
    concurrently.

    Attributes:
        responses: The script, in call order.
        prompts: The messages of every call so far, in order (for asserting on prompts).
        sleep: Seconds to wait before each reply (``None``: no wait).

    Example:
        >>> from agents.testing import scripted
        >>> model = scripted("first reply", {"sources": ["kb"]})
        >>> model.invoke("hello").content
        'first reply'
        >>> model.invoke("route this").content
        '{"sources": ["kb"]}'
        >>> model.remaining
        0
    """

    responses: list[Any]  # strings, dicts, AIMessages or exceptions
    prompts: list[list[BaseMessage]] = []  # noqa: RUF012 - pydantic copies the default per instance

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _reply(self, messages: list[BaseMessage]) -> Any:
        self.prompts.append(list(messages))
        if self.i >= len(self.responses):
            last = messages[-1].content if messages else ""
            msg = f"the scripted model ran out after {self.i} calls; last prompt: {last!r:.300}"
            raise ScriptExhaustedError(msg)
        item = self.responses[self.i]
        self.i += 1
        if isinstance(item, BaseException):
            raise item
        return item

    @property
    def remaining(self) -> int:
        """Replies of the script not used yet (``0`` once the run made every planned call)."""
        return len(self.responses) - self.i


def scripted(*responses: Any, sleep: float | None = None) -> ScriptedChatModel:
    """A :class:`ScriptedChatModel` that answers its calls with ``responses``, in order.

    Args:
        *responses: Strings, dicts (sent as JSON text), ``AIMessage`` objects or exceptions (raised).
        sleep: Seconds to wait before each reply, to stand in for a remote model's latency.

    Returns:
        The model; it raises :class:`ScriptExhaustedError` on a call past the last response.

    Example:
        >>> from langchain_core.messages import AIMessage
        >>> from agents.testing import scripted
        >>> call = {"name": "search", "args": {"query": "Apollo 11"}, "id": "c1", "type": "tool_call"}
        >>> model = scripted(AIMessage("", tool_calls=[call]), "It landed in 1969 [1].")
        >>> model.invoke("When did Apollo 11 land?").tool_calls[0]["name"]
        'search'
    """
    return ScriptedChatModel(responses=list(responses), sleep=sleep)


class FunctionChatModel(_ReplyingChatModel):
    """A LangChain chat model whose reply is computed from the prompt by a function.

    It keeps no script position, so it is safe for calls that run concurrently (the recursive
    agent's sub-calls) and for runs whose number of calls a test cannot know in advance. ``fn``
    receives the call's messages and returns text, a dict (sent as JSON text) or an ``AIMessage``,
    or raises. Build one with :func:`function_model`.

    Attributes:
        fn: The function from the call's messages to the reply.
        sleep: Seconds to wait before each reply (``None``: no wait).

    Example:
        >>> from agents.testing import function_model
        >>> model = function_model(lambda messages: f"you said {messages[-1].content}")
        >>> model.invoke("hi").content
        'you said hi'
    """

    fn: Callable[[list[BaseMessage]], Any]
    responses: list[Any] = []  # noqa: RUF012 - unused; the parent requires it

    @property
    def _llm_type(self) -> str:
        return "function"

    def _reply(self, messages: list[BaseMessage]) -> Any:
        return self.fn(messages)


def function_model(fn: Callable[[list[BaseMessage]], Any], *, sleep: float | None = None) -> FunctionChatModel:
    """A :class:`FunctionChatModel` that answers each call with ``fn(messages)``.

    Args:
        fn: Returns the reply (text, a dict sent as JSON text, or an ``AIMessage``) for the call's
            messages, or raises.
        sleep: Seconds to wait before each reply, to stand in for a remote model's latency.

    Returns:
        The model.

    Example:
        >>> from agents.testing import function_model
        >>> reader = function_model(lambda m: "7251904" if "7251904" in str(m[-1].content) else "NONE")
        >>> reader.invoke("the code is 7251904").content
        '7251904'
        >>> slow = function_model(lambda m: "NONE", sleep=0.1)  # a sub-model with 100 ms latency
    """
    return FunctionChatModel(fn=fn, sleep=sleep)
