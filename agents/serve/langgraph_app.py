"""Graphs for the LangGraph server: ``langgraph dev``, LangGraph Studio, the Agent Server and Agent
Chat UI serve ``rag``, ``rlm`` and ``react`` as named in the project's ``langgraph.json``
(``agents.serve.langgraph_app:rag``; the older ``agents.langgraph_app:rag`` names the same graphs).

```bash
arag ingest docs/ --source docs
langgraph dev                     # from the project folder; serves rag and rlm on http://127.0.0.1:2024
```

```python
from langgraph_sdk import get_sync_client

client = get_sync_client(url="http://127.0.0.1:2024")
thread = client.threads.create()
state = client.runs.wait(thread["thread_id"], "rag", input={"messages": [{"role": "user", "content": "How ...?"}]})
answer = state["messages"][-1]       # content: the answer with its references; additional_kwargs: citations, ...
```

The agents' own graphs take Python objects (retriever, strategies, budget) in their runtime
context, which a server cannot send over JSON. So each graph here is a chat graph around an
agent: its state is the conversation (``messages``), and its one node answers the last user
message with a process-wide agent built from :class:`~agents.settings.Settings` on first use.
Step events arrive as ``custom`` stream events; the server keeps the threads. Conversations are
read as ``arag serve`` reads them (:mod:`agents.serve.chat`): the same question and history, the
same long text for ``rlm``.

``react`` (needs ``ARAG_CHAT_MODEL``) pauses for tools named in ``ARAG_TOOLS_APPROVE`` with the
server's own interrupt: the run stops with ``{"kind": "tool_approval", "pending": [...]}`` as its
interrupt value, and ``Command(resume={"action": "approve"})`` (or ``edit`` with ``args``,
``reject`` with a ``reason``, or a dict of call id to decision) continues it. The agent's paused
run itself is kept in the project's thread store (``ARAG_THREADS_PATH`` / ``ARAG_THREADS_URL``),
under an id the server's thread state remembers.
"""

from __future__ import annotations

import atexit
import contextvars
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import Annotated, Any, Generic, NotRequired, Protocol, TypeVar

from langchain_core.messages import AIMessage, AnyMessage, BaseMessage
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import interrupt
from typing_extensions import TypedDict

from agents.events import AgentEvent, AgentResult, describe
from agents.rag_agent import RagAgent
from agents.react_agent import ReactAgent, ReactResult
from agents.rlm_agent import RlmAgent, RlmResult
from agents.serve.chat import (
    citation_payload,
    long_text,
    neutralise_markdown,
    plain_opening,
    split_conversation,
    with_references,
)
from agents.settings import Settings

__all__ = ["ChatState", "ReactChatState", "rag", "react", "rlm"]

T = TypeVar("T")

# LangChain message types as the roles of an OpenAI-style message list (what split_conversation reads).
_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


class ChatState(TypedDict):
    """The state of the server graphs: the conversation, as Agent Chat UI and Studio show it."""

    messages: Annotated[list[AnyMessage], add_messages]
    """Questions and answers; a run appends the answer to the last question."""


class _Lazy(Generic[T]):
    """A value built on first use, once, even when runs on several threads ask at the same time.

    A failed build is not kept: the next run tries again (e.g. after ``arag ingest`` created the store).
    """

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._value: T | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        value = self._value
        if value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._build()
                value = self._value
        return value


def _build_rag_agent() -> RagAgent:
    # The server keeps the threads and each run sends the conversation whole: no thread store of our own.
    agent = RagAgent.from_settings(threads=False)
    atexit.register(agent.close)  # the embedded store holds a file lock until closed
    return agent


def _build_react_agent() -> ReactAgent:
    # Its own thread store holds the agent's runs that pause for approval, so a resume finds them
    # in whichever server process (or after a restart) it arrives.
    from agents.build import build_agents

    built = build_agents(Settings())
    if built.react is None:
        built.close()
        raise ValueError(built.unavailable["react"])
    built.react.owned = built.owned
    atexit.register(built.react.close)
    return built.react


_rag_agent: _Lazy[RagAgent] = _Lazy(_build_rag_agent)
_react_agent: _Lazy[ReactAgent] = _Lazy(_build_react_agent)
_rlm_agent: _Lazy[RlmAgent] = _Lazy(RlmAgent.from_settings)
_settings: _Lazy[Settings] = _Lazy(Settings)


def _shown(text: str) -> str:
    """The answer as a Markdown front end may render it: images and raw HTML from documents made
    inert (``ARAG_SERVER_SAFE_MARKDOWN``, on by default), as ``arag serve`` does."""
    return neutralise_markdown(text) if _settings.get().server.safe_markdown else text


def _conversation(messages: Sequence[BaseMessage]) -> tuple[str, list[BaseMessage]]:
    """The last user message (the question) and the conversation before it, as plain text messages."""
    return split_conversation([{"role": _ROLES.get(m.type, m.type), "content": m.content} for m in messages])


def _isolated(events: Iterator[T]) -> Iterator[T]:
    """Step through an agent's event stream in a context of its own.

    Without it the agent's graph would run as a hidden subgraph of the server's run: it would
    inherit the server's checkpointer (writing checkpoints of its own state into the thread) and
    callbacks (its internal model calls, structured output included, would stream to the chat as
    messages). Only the steps run in the fresh context: between them this generator is back in the
    node's context, where the server's stream writer works.
    """
    context = contextvars.Context()
    try:
        while True:
            try:
                event = context.run(next, events)
            except StopIteration:
                return
            yield event
    finally:
        if isinstance(events, Generator):  # the agent's clean-up must run where its graph set its context
            context.run(events.close)


def _relay(events: Iterator[AgentEvent]) -> AgentResult:
    """Pass an agent's events on as ``custom`` stream events (step and tool events with a one-line
    ``status``, answer tokens as ``{"event": "token", "text": ...}``) and return its result."""
    write = get_stream_writer()
    result = None
    for event in _isolated(events):
        if event.kind in ("step", "tool"):
            write({**event.data, "status": describe(event)})
        elif event.kind == "token":
            write({"event": "token", "text": event.text})
        elif event.kind == "result":
            result = event.result
    assert result is not None  # every agent's stream ends with its result
    return result


def answer_rag(state: ChatState) -> dict[str, list[AnyMessage]]:
    """Answer the last user message with the RAG agent; earlier messages are the chat history.

    Streams each step (``custom`` events: the agent's step event plus a one-line ``status``) and the
    answer's tokens (``{"event": "token", "text": ...}``) when a chat model writes it.
    """
    question, history = _conversation(state["messages"])
    result = _relay(_rag_agent.get().stream(question, history=history, tokens=True))
    return {"messages": [_cited_answer(result, plain_opening(result.answer))]}


def _cited_answer(result: AgentResult, text: str, **extra: Any) -> AIMessage:
    """The chat's reply to a run: ``text`` with its references (Markdown made inert), and the
    citations, exit reason, usage, error and ``extra`` beside it."""
    metadata: dict[str, Any] = {
        "citations": [citation_payload(c) for c in result.citations],
        "exit_reason": result.exit_reason,
        **extra,
        "usage": result.usage,
    }
    if result.error:
        metadata["error"] = result.error
    return AIMessage(content=_shown(with_references(text, result.citations)), additional_kwargs=metadata)


def answer_rlm(state: ChatState) -> dict[str, list[AnyMessage]]:
    """Answer the last user message over the text the user sent before it, with the recursive agent.

    The context is read as ``arag serve`` reads it (:func:`agents.serve.chat.long_text`): every
    earlier user message (e.g. a long document pasted into the chat), or, with a single message,
    everything before its last paragraph; the text never enters a prompt whole. Streams the agent's
    progress events (``rlm_turn``, ``rlm_map``, ``sub_call``, ``rlm_tool``, each with a ``status``
    line) as ``custom`` events.

    Raises:
        ValueError: Nothing to read (the message says how to send the text).
    """
    question, history = _conversation(state["messages"])
    context, question = long_text(question, history)
    result = _relay(_rlm_agent.get().stream(question, context=context))
    assert isinstance(result, RlmResult)
    metadata: dict[str, Any] = {
        "exit_reason": result.exit_reason,
        "usage": result.usage,
        "limits_hit": result.limits_hit,
    }
    if result.error:
        metadata["error"] = result.error
    text = plain_opening(result.answer) or f"I found no answer in the text (exit: {result.exit_reason})."
    return {"messages": [AIMessage(content=_shown(text), additional_kwargs=metadata)]}


class ReactChatState(ChatState):
    """The ``react`` graph's state: the conversation, and the agent's run while it waits for approval."""

    run_thread: NotRequired[str]
    """The agent's own thread of the current question (in the project's thread store)."""
    pending: NotRequired[list[dict[str, Any]]]
    """The tool calls waiting for approval (empty once the question is answered)."""


def _react_reply(result: ReactResult) -> dict[str, Any]:
    """The state update of a ReAct run: the pending calls, or the answer appended to the chat."""
    if result.pending:
        return {"run_thread": result.thread_id, "pending": result.pending}
    text = plain_opening(result.answer) or f"The run ended without an answer (exit: {result.exit_reason})."
    message = _cited_answer(result, text, tool_calls=result.tool_calls)
    return {"run_thread": result.thread_id, "pending": [], "messages": [message]}


def answer_react(state: ReactChatState) -> dict[str, Any]:
    """Answer the last user message with the ReAct agent (its tools: a search per source, MCP
    servers' tools, ``read_document``); a call that needs approval leaves it waiting."""
    question, history = _conversation(state["messages"])
    agent = _react_agent.get()
    result = _relay(agent.stream(question, history=history))
    assert isinstance(result, ReactResult)
    return _react_reply(result)


def approve_react(state: ReactChatState) -> dict[str, Any]:
    """Wait for the person (the server's interrupt), then resume the agent's run with the decision.
    One interrupt per step: a run that pauses again comes back here as a new step."""
    decision = interrupt({"kind": "tool_approval", "pending": state.get("pending", [])})
    result = _relay(_react_agent.get().stream_resume(state["run_thread"], decision))
    assert isinstance(result, ReactResult)
    return _react_reply(result)


def _waiting(state: ReactChatState) -> str:
    return "approve" if state.get("pending") else END


def _react_graph() -> CompiledStateGraph[ReactChatState, None, ReactChatState, ReactChatState]:
    builder = StateGraph(ReactChatState)
    builder.add_node("answer", answer_react)
    builder.add_node("approve", approve_react)
    builder.add_edge(START, "answer")
    builder.add_conditional_edges("answer", _waiting, ["approve", END])
    builder.add_conditional_edges("approve", _waiting, ["approve", END])
    return builder.compile(name="react")


class _ChatNode(Protocol):
    def __call__(self, state: ChatState) -> dict[str, list[AnyMessage]]: ...


def _chat_graph(name: str, node: _ChatNode) -> CompiledStateGraph[ChatState, None, ChatState, ChatState]:
    builder = StateGraph(ChatState)
    builder.add_node("answer", node)
    builder.add_edge(START, "answer")
    builder.add_edge("answer", END)
    # No checkpointer: the LangGraph server supplies its own.
    return builder.compile(name=name)


rag = _chat_graph("rag", answer_rag)
"""Agentic RAG over the ingested sources, with citations."""

rlm = _chat_graph("rlm", answer_rlm)
"""Questions over long text sent earlier in the conversation (Recursive Language Model style)."""

react = _react_graph()
"""A tool-calling agent (needs ``ARAG_CHAT_MODEL``); tools named in ``ARAG_TOOLS_APPROVE`` wait
for ``Command(resume=decision)``."""
