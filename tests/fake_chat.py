"""The scripted chat model shared by the agent tests.

Each call consumes the next item of the script: a string (reply text), an ``AIMessage`` (e.g. with
tool calls or usage), a dict (sent as JSON text) or an exception (raised). It raises when the
script runs out, so a test that makes more calls than it scripted fails loudly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult


class ScriptExhaustedError(AssertionError):
    """The model was called more often than the test scripted."""


class _ReplyingChatModel(FakeMessagesListChatModel):
    """What the test models share: ``bind_tools`` returns the model itself, and each call's reply
    (text, a dict sent as JSON text, or an ``AIMessage``) comes from :meth:`_reply`."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> _ReplyingChatModel:  # type: ignore[override]
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
        item = self._reply(messages)
        if isinstance(item, dict):
            item = json.dumps(item)
        message = item if isinstance(item, BaseMessage) else AIMessage(content=str(item))
        return ChatResult(generations=[ChatGeneration(message=message)])


class ScriptedChatModel(_ReplyingChatModel):
    responses: list[Any]  # type: ignore[assignment]  # strings, dicts, AIMessages or exceptions
    prompts: list[list[BaseMessage]] = []  # noqa: RUF012 - pydantic copies the default per instance

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _reply(self, messages: list[BaseMessage]) -> Any:
        self.prompts.append(list(messages))
        if self.i >= len(self.responses):
            msg = f"the scripted model ran out after {self.i} calls; last prompt: {messages[-1].content!r:.300}"
            raise ScriptExhaustedError(msg)
        item = self.responses[self.i]
        self.i += 1
        if isinstance(item, BaseException):
            raise item
        return item

    @property
    def remaining(self) -> int:
        return len(self.responses) - self.i


def scripted(*responses: Any) -> ScriptedChatModel:
    return ScriptedChatModel(responses=list(responses))


class FunctionChatModel(_ReplyingChatModel):
    """A chat model whose reply is computed from the prompt (thread-safe: it keeps no position),
    for sub-calls that run concurrently. ``fn`` returns text, an ``AIMessage``, or raises."""

    fn: Any = None
    responses: list[Any] = []  # type: ignore[assignment]  # noqa: RUF012 - unused; the parent requires it

    @property
    def _llm_type(self) -> str:
        return "function"

    def _reply(self, messages: list[BaseMessage]) -> Any:
        return self.fn(messages)


def function_model(fn: Any) -> FunctionChatModel:
    return FunctionChatModel(fn=fn, responses=[])
