"""``ReactAgent``: a tool-calling agent with a search tool per source plus your own tools.

```python
from agents import ReactAgent

with ReactAgent.from_settings(tools=[my_calculator]) as agent:   # needs ARAG_CHAT_MODEL
    result = agent.invoke("How many eggs does a queen lay in a week?")
    print(result.answer, result.tool_calls, result.exit_reason)
```

Tools that write, send or spend can wait for a person (``approve=["send_mail"]``): a run that
reaches one ends with ``exit_reason == "awaiting_approval"`` and the calls in ``result.pending``;
:meth:`ReactAgent.resume` continues it (approve, edit the arguments, or reject), from this process
or, with a thread store, from another one after a restart:

```python
result = agent.invoke("Mail the summary to Ada", thread_id="t1")
if result.exit_reason == "awaiting_approval":
    result = agent.resume("t1", {"action": "approve"})   # or {"action": "edit", "args": {...}}
```
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Checkpointer, Command
from pydantic import ValidationError

from agents._owner import OwnsResources
from agents._spans import end_run_span, run_span
from agents._threads import KeepsThreads, ThreadedGraph
from agents.events import AgentEvent, AgentResult, Citation
from agents.rlm_agent import RlmAgent, read_document_tool
from agents.settings import Settings
from graphs.budget import Budget, Limits
from graphs.llm import ModelClient, RetryPolicy
from graphs.react import (
    DEFAULT_SYSTEM_PROMPT,
    ApprovalDecision,
    ReactContext,
    build_react_graph,
    initial_state,
    source_tools,
)
from graphs.strategies import CITATION
from tools import tracing
from tools.retrieval import Retriever
from tools.store import StoreError

__all__ = ["ApprovalDecision", "ReactAgent", "ReactResult", "answer_citations"]

logger = logging.getLogger("arag.react")


@dataclass(kw_only=True, slots=True)
class ReactResult(AgentResult):
    """The outcome of one question: :class:`~agents.events.AgentResult` plus the tool calls.

    ``exit_reason`` is ``answered``, ``budget``, ``max_iterations`` or ``error``; ``citations``
    are the passages of the search tools that the answer's ``[n]`` marks point at; ``steps`` are
    the model turns and tool calls, in order.
    """

    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    """Each tool call: tool, args, status (success, error, invalid_arguments, rejected), ms, and
    ``approval`` (approved, edited, rejected) for a tool that waited for one."""
    pending: list[dict[str, Any]] = field(default_factory=list)
    """With ``exit_reason == "awaiting_approval"``: the calls waiting, each ``id`` (the interrupt's,
    to resume it by), ``tool``, ``args`` and ``call_id``."""
    messages: list[BaseMessage] = field(default_factory=list)
    """The run's conversation: question, model turns, tool calls and their results."""

    def as_dict(self) -> dict[str, Any]:
        data = {**AgentResult.as_dict(self), "tool_calls": self.tool_calls}
        if self.pending:
            data["pending"] = self.pending
        return data


def answer_citations(answer: str, messages: Sequence[BaseMessage]) -> list[Citation]:
    """Citations of a ReAct answer: each ``[n]`` in ``answer`` is passage ``n`` of the most recent
    search result that has one (the search tools number their passages from 1 and hand the same
    passages over as the tool message's artifact)."""
    latest: dict[int, dict[str, Any]] = {}
    for message in messages:
        if isinstance(message, ToolMessage) and isinstance(message.artifact, list):
            for n, passage in enumerate(message.artifact, 1):
                if isinstance(passage, dict) and "id" in passage:
                    latest[n] = passage
    marks = dict.fromkeys(int(m) for m in CITATION.findall(answer))
    return [Citation.from_chunk(n, p) for n in marks if (p := latest.get(n)) is not None]


class ReactAgent(OwnsResources, KeepsThreads):
    """Runs the ReAct graph with a chat model, a search tool per source and ``tools``.

    Args:
        chat_model: A tool-calling chat model (``ChatOpenAI(base_url=...)``).
        retriever: Gives one search tool per source; ``None`` for user tools only.
        tools: More LangChain tools.
        limits: Budget per question (``max_iterations`` is not used; see ``max_turns``).
        max_turns: Model turns before the run stops with ``max_iterations``.
        read_documents: With a retriever, add the ``read_document`` tool, which hands a whole stored
            document to a recursive agent (:class:`~agents.rlm_agent.RlmAgent`; by default one on
            ``chat_model``); ``False`` leaves it out.
        first_tool_choice: ``tool_choice`` of each question's first turn: ``"required"`` (the
            default with a retriever: search before answering, as the system prompt says; it also
            makes servers whose models never call a tool unasked, such as llama-cpp-python's, use
            one) or ``"auto"`` (the default without one).
        approve: Names of tools whose calls wait for a person's approval (``"*"``: all). The pause
            is kept by the checkpointer: without one, the agent keeps paused runs in memory (this
            process only); give it a thread store to resume after a restart.
    """

    def __init__(
        self,
        chat_model: BaseChatModel,
        *,
        retriever: Retriever | None = None,
        tools: Sequence[BaseTool] = (),
        limits: Limits | None = None,
        max_turns: int = 8,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        checkpointer: Checkpointer = None,
        retry: RetryPolicy | None = None,
        read_documents: RlmAgent | bool = True,
        first_tool_choice: Literal["auto", "required"] | None = None,
        approve: Collection[str] = (),
    ) -> None:
        self.client = ModelClient(chat_model, retry)
        if retriever is None and not tools:
            msg = "the ReAct agent has no tools: give it a retriever (one search tool per source) or tools=[...]"
            raise ValueError(msg)
        self._retriever = retriever
        self._own_tools = list(tools)
        self._reader: RlmAgent | None = None
        if retriever is not None and read_documents is not False:
            self._reader = read_documents if isinstance(read_documents, RlmAgent) else RlmAgent(chat_model, retry=retry)
        self._search: tuple[list[BaseTool], list[BaseTool]] | None = None
        self.store_error: str | None = None
        """Why the store's tools are missing from the next run (the store did not answer), or ``None``."""
        _unique(self.tools)
        self.limits = limits or Limits()
        self.max_turns = max_turns
        self.system_prompt = system_prompt
        self.first_tool_choice = first_tool_choice or ("required" if retriever is not None else "auto")
        self.approve = frozenset(approve)
        if self.approve and checkpointer is None:
            checkpointer = InMemorySaver()  # an interrupt needs a checkpoint to resume from
        self._threads = ThreadedGraph(lambda saver: build_react_graph(checkpointer=saver), checkpointer)

    @property
    def tools(self) -> list[BaseTool]:
        """The tools of the next run: a search tool per source, your tools, ``read_document``.

        The store's tools (search, ``read_document``) are listed from the store once it answers:
        when it does not (a Qdrant server not up yet), a run has your tools only, says so in a
        ``tools_unavailable`` step (:attr:`store_error`), and the next run asks the store again.
        """
        if self._retriever is not None and self._search is None:
            try:
                reader = self._reader
                read: list[BaseTool] = [read_document_tool(self._retriever, reader)] if reader is not None else []
                self._search = (list[BaseTool](source_tools(self._retriever)), read)
                self.store_error = None
            except StoreError as exc:
                self.store_error = f"the store did not answer, so this run cannot search: {exc}"
                logger.warning("ReAct agent: %s", self.store_error)
        search, reading = self._search or ([], [])
        return _unique([*search, *self._own_tools, *reading])

    @classmethod
    def from_settings(
        cls,
        settings: Settings | None = None,
        *,
        chat_model: BaseChatModel | None = None,
        tools: Sequence[BaseTool] = (),
    ) -> ReactAgent:
        """The settings' ReAct agent (:func:`agents.build.build_agents`): a search tool per source,
        ``tools``, and ``read_document`` over the settings' recursive agent; it owns (and closes)
        the store. Needs a chat model (``ARAG_CHAT_MODEL`` or ``chat_model``)."""
        from agents.build import REACT_NEEDS_A_MODEL, build_agents  # here: agents.build imports this module

        settings = settings or Settings()
        if chat_model is None and not settings.model.name:
            raise ValueError(REACT_NEEDS_A_MODEL)
        built = build_agents(settings, chat_model=chat_model, threads=False, tools=tools)
        assert built.react is not None  # a model was given or configured
        built.react.owned = built.owned
        return built.react

    def invoke(
        self, question: str, *, thread_id: str | None = None, history: Sequence[BaseMessage] | None = None
    ) -> ReactResult:
        """Answer one question; ``thread_id`` continues a stored thread, ``history`` is the
        conversation sent whole (as in :meth:`RagAgent.invoke <agents.rag_agent.RagAgent.invoke>`)."""
        result = None
        for event in self.stream(question, thread_id=thread_id, history=history):
            if event.kind == "result":
                result = event.result
        assert isinstance(result, ReactResult)  # stream always ends with the result
        return result

    def stream(
        self, question: str, *, thread_id: str | None = None, history: Sequence[BaseMessage] | None = None
    ) -> Iterator[AgentEvent]:
        """:class:`~agents.events.AgentEvent` items as they happen: a ``step`` per model turn, a
        ``tool`` per tool call, then the ``result`` (a :class:`ReactResult`)."""
        if not question.strip():
            msg = "the question is empty"
            raise ValueError(msg)
        graph, thread, config = self._threads.pick(thread_id, history)
        if self.approve and thread_id is not None and (waiting := self.pending(thread_id)):
            msg = (
                f"thread {thread_id!r} has {len(waiting)} tool call(s) waiting for approval "
                f"({', '.join(w['tool'] for w in waiting)}): resume it (approve, edit or reject) first"
            )
            raise ValueError(msg)
        if self.approve and not thread:  # a conversation sent whole still needs a thread to pause in
            graph, thread = self._threads.graph, uuid.uuid4().hex
            config = {"configurable": {"thread_id": thread}}
        yield from self._run(graph, initial_state(question, history), config, thread, question)

    def pending(self, thread_id: str) -> list[dict[str, Any]]:
        """The tool calls of a thread that wait for approval (empty when none do)."""
        if self.checkpointer is None:
            return []
        snapshot = self.graph.get_state({"configurable": {"thread_id": thread_id}})
        return [{"id": i.id, **i.value} for i in snapshot.interrupts if isinstance(i.value, dict)]

    def resume(self, thread_id: str, decision: Decisions) -> ReactResult:
        """Continue a run that waits for approval (see :meth:`stream_resume`)."""
        result = None
        for event in self.stream_resume(thread_id, decision):
            if event.kind == "result":
                result = event.result
        assert isinstance(result, ReactResult)
        return result

    def stream_resume(self, thread_id: str, decision: Decisions) -> Iterator[AgentEvent]:
        """Continue a paused run of ``thread_id`` with a decision, yielding its events as
        :meth:`stream` does (and a new ``awaiting_approval`` result if it pauses again).

        Args:
            decision: One :class:`~graphs.react.ApprovalDecision` (or its dict, or ``"approve"`` /
                ``"reject"``) for every waiting call, or a mapping of the calls' ``id`` to one.

        Raises:
            ValueError: Nothing waits in that thread, an id is not one of the waiting calls, or a
                decision is not valid.
        """
        waiting = self.pending(thread_id)
        if not waiting:
            msg = f"thread {thread_id!r} has no tool call waiting for approval"
            raise ValueError(msg)
        ids = [w["id"] for w in waiting]
        if isinstance(decision, Mapping) and "action" not in decision:
            unknown = sorted(set(decision) - set(ids))
            if unknown:
                msg = f"no waiting call has the id(s) {unknown}; waiting: {ids}"
                raise ValueError(msg)
            chosen = {key: _valid(value).model_dump() for key, value in decision.items()}
        else:
            one = _valid(decision).model_dump()
            chosen = dict.fromkeys(ids, one)
        config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
        snapshot = self.graph.get_state(config)
        question = next(
            (str(m.text) for m in reversed(snapshot.values.get("messages", [])) if isinstance(m, HumanMessage)), ""
        )
        yield from self._run(self.graph, Command(resume=chosen), config, thread_id, question)

    def _run(self, graph: Any, start: Any, config: RunnableConfig, thread: str, question: str) -> Iterator[AgentEvent]:
        budget = Budget(self.limits)
        tools = self.tools
        if self.store_error is not None:
            yield AgentEvent("step", data={"event": "tools_unavailable", "node": "agent", "reason": self.store_error})
        context = ReactContext(
            client=self.client,
            tools=tools,
            limits=self.limits,
            budget=budget,
            max_turns=self.max_turns,
            system_prompt=self.system_prompt,
            approve=self.approve,
            first_tool_choice=self.first_tool_choice if self.first_tool_choice != "auto" and tools else None,
        )
        config["recursion_limit"] = 2 * self.max_turns + 6
        state: dict[str, Any] = {}
        steps: list[dict[str, Any]] = []
        # The task stream, not a custom one: a custom stream makes LangGraph run every node in a
        # worker thread and hand each event over, which added about half again to each step.
        root = run_span("react", question, thread)
        try:
            parts = graph.stream(start, config, context=context, stream_mode=["tasks", "values"])
            for mode, data in tracing.stepped(parts, root):
                if mode == "values":
                    state = cast(dict[str, Any], data)
                elif (event := _event(cast(dict[str, Any], data))) is not None:
                    steps.append(event.data)
                    yield event
        except BaseException:
            end_run_span(root, None, budget)
            raise
        pending = self.pending(thread) if self.approve and thread else []
        for waiting in pending:
            step = {"event": "approval_needed", "node": "tool", **waiting}
            steps.append(step)
            yield AgentEvent("step", data=step)
        last = state["messages"][-1]
        text = last.text if isinstance(last, AIMessage) and not last.tool_calls else ""
        answer = text if isinstance(text, str) else str(text)
        messages = list(state["messages"])
        result = ReactResult(
            question=question,
            answer=answer,
            citations=answer_citations(answer, messages),
            exit_reason="awaiting_approval" if pending else state.get("exit_reason", "error"),
            usage=budget.report(),
            steps=[*steps, *budget.fallback_steps()],
            tool_calls=list(state.get("tool_calls", [])),
            thread_id=thread,
            error=state.get("error"),
            messages=messages,
            pending=pending,
            trace_id=tracing.trace_id_of(root) or "",
        )
        end_run_span(root, result, budget)
        yield AgentEvent("result", result=result)


Decisions = ApprovalDecision | Mapping[str, Any] | str
"""What :meth:`ReactAgent.resume` takes: one decision for every waiting call, or one per call id."""


def _valid(value: Any) -> ApprovalDecision:
    try:
        return ApprovalDecision.parse(value)
    except ValidationError as exc:
        msg = f"not a valid approval decision ({exc.errors()[0]['msg']}): use approve, edit with args, or reject"
        raise ValueError(msg) from exc


def _unique(tools: list[BaseTool]) -> list[BaseTool]:
    names = [t.name for t in tools]
    if len(set(names)) != len(names):
        msg = f"tool names must be unique, got {names}; rename a tool or a source"
        raise ValueError(msg)
    return tools


def _event(task: dict[str, Any]) -> AgentEvent | None:
    """The agent event of a ``tasks`` stream item: an ``agent`` task starting is a model turn; a
    ``tool`` task's result is its tool call."""
    if task.get("name") == "agent" and "input" in task:
        turn = int(task["input"].get("turns") or 0) + 1
        return AgentEvent("step", data={"event": "step_start", "node": "agent", "turn": turn})
    if task.get("name") == "tool" and (records := (task.get("result") or {}).get("tool_calls")):
        return AgentEvent("tool", data={"event": "tool", **records[0]})
    return None
