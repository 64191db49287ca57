"""Test doubles for your own agents' tests, the ones the project's test suite uses.

In the spirit of pydantic-ai's ``TestModel`` / ``FunctionModel``: no network, no model weights,
deterministic, and loud when a run does something the test did not plan for.

- :func:`scripted` / :class:`ScriptedChatModel`: a LangChain chat model that answers each call with
  the next item of a script (text, a dict as JSON, an ``AIMessage`` with tool calls, or an exception
  to raise), and raises :class:`ScriptExhaustedError` when the script runs out.
- :func:`function_model` / :class:`FunctionChatModel`: a chat model whose reply is computed from the
  prompt; safe for concurrent calls.
- :class:`FakeEmbeddings`: a deterministic bag-of-words hashing embedder (texts sharing words are
  close).
- :class:`OpenAIStub`: a loopback OpenAI-compatible server (chat completions, streaming, tool calls,
  embeddings) with injectable faults (:class:`Fault`: 429 with ``Retry-After``, 500, a malformed
  body; :class:`ChatReply`: slow replies, malformed tool-call arguments), so the real ``ChatOpenAI``
  client is tested over HTTP; ``OpenAIStub(quirks="llama-cpp-python")`` (:class:`Quirks`,
  :data:`SERVER_QUIRKS`) makes it refuse or ignore request features as that server does.
- :class:`PostgresServer`: a real, throwaway PostgreSQL server (``initdb`` into a temporary
  folder, a free loopback port, an unprivileged user when run as root) for the Postgres thread
  store; :func:`missing_postgres` says why one cannot start here.
- :class:`LlamaServer`: a real OpenAI-compatible inference server (llama-cpp-python with Gemma 3
  270M, a base model, from ``make llm-install``) on a free loopback port, for plumbing tests;
  :func:`missing_llama` says why it cannot start here.

Nothing here imports pytest, starts anything or reads the environment on import; the stub's HTTP
server modules load on first use of its names.

Example:
    >>> from langchain_core.messages import AIMessage
    >>> from langchain_core.tools import tool
    >>> from agents import ReactAgent
    >>> from agents.testing import scripted
    >>> @tool
    ... def double(x: int) -> int:
    ...     "Double a number."
    ...     return 2 * x
    >>> call = {"name": "double", "args": {"x": 21}, "id": "c1", "type": "tool_call"}
    >>> model = scripted(AIMessage("", tool_calls=[call]), "It is 42.")
    >>> ReactAgent(model, tools=[double]).invoke("Double 21").answer
    'It is 42.'
    >>> model.remaining  # every scripted reply was used
    0
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agents.testing._chat import (
    FunctionChatModel,
    ScriptedChatModel,
    ScriptExhaustedError,
    function_model,
    scripted,
)
from agents.testing._embeddings import FakeEmbeddings

if TYPE_CHECKING:
    from agents.testing._llama import LlamaServer, ReplyLog, missing_llama
    from agents.testing._openai_stub import SERVER_QUIRKS, ChatReply, Fault, OpenAIStub, Quirks, StubState, stub_vector
    from agents.testing._postgres import PostgresServer, missing_postgres

__all__ = [
    "SERVER_QUIRKS",
    "ChatReply",
    "FakeEmbeddings",
    "Fault",
    "FunctionChatModel",
    "LlamaServer",
    "OpenAIStub",
    "PostgresServer",
    "Quirks",
    "ReplyLog",
    "ScriptExhaustedError",
    "ScriptedChatModel",
    "StubState",
    "function_model",
    "missing_llama",
    "missing_postgres",
    "scripted",
    "stub_vector",
]

_STUB_NAMES = frozenset({"SERVER_QUIRKS", "ChatReply", "Fault", "OpenAIStub", "Quirks", "StubState", "stub_vector"})
_POSTGRES_NAMES = frozenset({"PostgresServer", "missing_postgres"})
_LLAMA_NAMES = frozenset({"LlamaServer", "ReplyLog", "missing_llama"})


def __getattr__(name: str) -> Any:
    # The stub needs http.server and threads; tests that only script models never load them.
    if name in _STUB_NAMES:
        from agents.testing import _openai_stub

        return getattr(_openai_stub, name)
    if name in _POSTGRES_NAMES:
        from agents.testing import _postgres

        return getattr(_postgres, name)
    if name in _LLAMA_NAMES:
        from agents.testing import _llama

        return getattr(_llama, name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
