"""A general ReAct tool-calling agent: the model calls tools (a search tool per source plus any
user tools) until it answers.

```
START -> agent -> tool (one task per call: Send) -> agent ... -> finish
```

Each tool call of a model turn is a task of its own (``Send("tool", call)``), so several calls
run side by side, at most ``max_parallel_tools`` at a time, and a single one runs in the caller's
thread (LangGraph runs a lone task inline: no thread hand-off per step). A tool that raises, an
unknown tool, or arguments that are not valid JSON go back to the model as an error
``ToolMessage`` so it can correct itself. The turn limit, the run's budget and model failures end
the run at ``finish`` with an ``exit_reason``; they never escape as exceptions.

Tools named in ``ReactContext.approve`` wait for a person: their task calls LangGraph's
``interrupt()`` with the call (tool, args, call id), the run pauses with its state in the
checkpointer, and ``Command(resume=...)`` with an :class:`ApprovalDecision` (approve, edit the
arguments, or reject with a reason the model reads) continues it, in this process or another.

Progress is the graph's own stream: with ``stream_mode="tasks"`` an ``agent`` task starting is a
model turn, and a ``tool`` task's result carries its ``tool_calls`` record (tool, args, status,
ms). The graph writes no custom events, since a custom stream makes LangGraph run every node in a
worker thread (:class:`~agents.react_agent.ReactAgent` turns the task stream into its events).
"""

from __future__ import annotations

import json
import operator
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NotRequired, cast

from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    InvalidToolCall,
    SystemMessage,
    ToolCall,
    ToolMessage,
)
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import Checkpointer, Command, Overwrite, Send, interrupt
from pydantic import BaseModel, Field, ValidationError, model_validator
from typing_extensions import TypedDict

from graphs.budget import Budget, BudgetExceeded, Limits
from graphs.llm import ModelClient, ModelError
from tools import tracing
from tools.retrieval import Retriever
from tools.store import Source

__all__ = [
    "ApprovalDecision",
    "ReactContext",
    "ReactInput",
    "ReactOutput",
    "ReactState",
    "build_react_graph",
    "initial_state",
    "source_tool",
    "source_tools",
]

DEFAULT_SYSTEM_PROMPT = (
    "You answer questions with the tools you have. Search before answering; search again with other words "
    "when results miss. Cite passages by their number in brackets, like [1]. If the tools do not give the "
    "answer, say so."
)


class ReactInput(TypedDict):
    """What a run starts from (:func:`initial_state` builds it): the new messages, and the
    question's counters reset (a thread keeps the previous question's)."""

    messages: Annotated[list[AnyMessage], add_messages]
    """Appended to the thread's conversation (the whole conversation when there is no thread)."""
    turns: NotRequired[int]
    exit_reason: NotRequired[str]
    error: NotRequired[str | None]
    tool_calls: NotRequired[Annotated[list[dict[str, Any]], operator.add]]
    """``Overwrite([])`` starts the question's record afresh."""


class ReactOutput(TypedDict, total=False):
    """What a run hands back."""

    messages: list[AnyMessage]
    """The conversation; the last message is the answer when ``exit_reason`` is ``answered``."""
    exit_reason: str
    """``answered``, ``budget``, ``max_iterations`` or ``error``."""
    error: str | None
    tool_calls: list[dict[str, Any]]
    """The question's tool calls, in call order: tool, args, status, ms."""


class ReactState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    turns: int
    """Model turns of the current question."""
    exit_reason: str
    error: str | None
    tool_calls: Annotated[list[dict[str, Any]], operator.add]


def initial_state(question: str, history: Sequence[BaseMessage] | None = None) -> ReactInput:
    """The input of a run: the conversation sent whole (``history``, if any) and the question,
    with the question's turn count, exit reason, error and tool calls reset."""
    return {
        "messages": [*cast(Sequence[AnyMessage], history or []), HumanMessage(question)],
        "turns": 0,
        "exit_reason": "",
        "error": None,
        "tool_calls": cast(list[dict[str, Any]], Overwrite([])),
    }


@dataclass(frozen=True)
class ReactContext:
    client: ModelClient
    tools: Sequence[BaseTool]
    limits: Limits = field(default_factory=Limits)
    budget: Budget | None = None
    max_turns: int = 8
    """Model turns before the run stops with ``max_iterations``."""
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    max_parallel_tools: int = 4
    """Tool calls of one turn that run at the same time."""
    approve: frozenset[str] = frozenset()
    """Tools whose calls wait for a person's approval (an interrupt); ``"*"``: every tool."""
    first_tool_choice: str | None = None
    """``tool_choice`` of each question's first model turn: ``"required"`` makes the model call a
    tool before it answers (a server that refuses it falls back: see
    :class:`~graphs.llm.ModelClient`); ``None`` leaves it to the model, as every later turn does."""
    _by_name: dict[str, BaseTool] = field(init=False, repr=False, compare=False)
    _system: SystemMessage = field(init=False, repr=False, compare=False)
    _slots: threading.BoundedSemaphore = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.budget is None:
            object.__setattr__(self, "budget", Budget(self.limits))
        names = [t.name for t in self.tools]
        if len(set(names)) != len(names):
            msg = f"tool names must be unique, got {names}"
            raise ValueError(msg)
        if self.max_parallel_tools < 1:
            msg = f"max_parallel_tools must be >= 1, got {self.max_parallel_tools}"
            raise ValueError(msg)
        # Built once per run, not once per step.
        object.__setattr__(self, "_by_name", {t.name: t for t in self.tools})
        object.__setattr__(self, "_system", SystemMessage(self.system_prompt))
        object.__setattr__(self, "_slots", threading.BoundedSemaphore(self.max_parallel_tools))

    @property
    def meter(self) -> Budget:
        assert self.budget is not None
        return self.budget

    def needs_approval(self, tool: str) -> bool:
        return tool in self.approve or "*" in self.approve


class ApprovalDecision(BaseModel):
    """A person's answer to a tool call that waits for approval (the ``resume`` value)."""

    action: Literal["approve", "edit", "reject"]
    """``approve`` runs the call as the model made it; ``edit`` runs it with ``args``; ``reject``
    does not run it and tells the model why."""
    args: dict[str, Any] | None = None
    """``edit``: the arguments to run the call with instead."""
    reason: str = ""
    """``reject``: why, in words the model reads."""

    @classmethod
    def parse(cls, value: Any) -> ApprovalDecision:
        """A decision from what a person or a client sends: a decision, its dict, or the word
        ``"approve"`` / ``"reject"``.

        Raises:
            ValidationError: Not a valid decision.
        """
        if isinstance(value, ApprovalDecision):
            return value
        if isinstance(value, str):
            value = {"action": value.strip().lower()}
        return cls.model_validate(value)

    @model_validator(mode="after")
    def _check(self) -> ApprovalDecision:
        if self.action == "edit" and self.args is None:
            msg = "an edit needs the new arguments: {'action': 'edit', 'args': {...}}"
            raise ValueError(msg)
        return self


def _decision(value: Any) -> ApprovalDecision:
    """The resume value as a decision; one that is not valid rejects the call, saying so (the run
    must not run a tool on a malformed approval)."""
    try:
        return ApprovalDecision.parse(value)
    except ValidationError as exc:
        problem = exc.errors()[0]["msg"] if exc.errors() else str(exc)
        return ApprovalDecision(action="reject", reason=f"the approval was not valid ({problem}); the call did not run")


def agent(state: ReactState, runtime: Runtime[ReactContext]) -> Command[str]:
    """A model turn, and where it leads: a ``tool`` task per call of the reply (invalid ones
    included) while turns remain, else ``finish``. The node routes (a ``Command``) rather than a
    conditional edge, which would read the whole state again, the conversation included."""
    ctx = runtime.context
    choice = ctx.first_tool_choice if not state.get("turns") else None
    try:
        reply = ctx.client.invoke([ctx._system, *state["messages"]], ctx.meter, tools=ctx.tools, tool_choice=choice)
    except BudgetExceeded as exc:
        return Command(update={"exit_reason": "budget", "error": str(exc)}, goto="finish")
    except ModelError as exc:
        return Command(update={"exit_reason": "error", "error": str(exc)}, goto="finish")
    turns = state.get("turns", 0) + 1
    sends: list[Send] = []
    if turns < ctx.max_turns:
        sends = [Send("tool", {**c, "type": "tool_call"}) for c in reply.tool_calls]
        sends += [Send("tool", {**c, "type": "invalid_tool_call"}) for c in reply.invalid_tool_calls]
    return Command(update={"messages": [reply], "turns": turns}, goto=sends or "finish")


def run_tool(call: ToolCall | InvalidToolCall, runtime: Runtime[ReactContext]) -> dict[str, Any]:
    """One tool call of the model's turn (a ``Send`` task): its ``ToolMessage`` and its record."""
    ctx = runtime.context
    name, call_id = call.get("name") or "", call.get("id") or ""
    if call.get("type") == "invalid_tool_call":
        content = (
            f"Error: the arguments of {name!r} are not valid JSON ({call.get('error') or 'unparseable'}). "
            "Call again with a valid JSON object."
        )
        record = {"tool": call.get("name"), "args": call.get("args"), "status": "invalid_arguments", "ms": 0.0}
        message = ToolMessage(content, tool_call_id=call_id, name=name, status="error")
        return {"messages": [message], "tool_calls": [record]}
    started = time.perf_counter()
    tool = ctx._by_name.get(name)
    approval: str | None = None
    if tool is None:
        message = ToolMessage(
            f"Error: no tool named {name!r}; use one of {sorted(ctx._by_name)}",
            tool_call_id=call_id,
            name=name,
            status="error",
        )
    else:
        if ctx.needs_approval(name):
            request = {"kind": "tool_approval", "tool": name, "args": call["args"], "call_id": call_id}
            decision = _decision(interrupt(request, response_schema=ApprovalDecision.model_json_schema()))
            approval = {"approve": "approved", "edit": "edited", "reject": "rejected"}[decision.action]
            if decision.action == "reject":
                why = f": {decision.reason}" if decision.reason else ""
                content = f"The user rejected this call of {name!r}{why}. It did not run; do not repeat it."
                record = {"tool": name, "args": call["args"], "status": "rejected", "ms": 0.0, "approval": approval}
                return {
                    "messages": [ToolMessage(content, tool_call_id=call_id, name=name, status="error")],
                    "tool_calls": [record],
                }
            if decision.action == "edit":
                call = cast(ToolCall, {**call, "args": decision.args})
        attributes = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "gen_ai.tool.call.id": call_id,
            "arag.tool.args_bytes": len(json.dumps(call["args"], default=str)),
            "arag.tool.approval": approval,
        }
        with ctx._slots, tracing.span(f"execute_tool {name}", attributes) as span:
            started = time.perf_counter()  # the call's own time, not its wait for a slot
            try:
                # Invoked with the whole call, a tool answers with a ToolMessage: its content for the
                # model, and its artifact (the search tools' passages) for the code.
                output = tool.invoke(cast(ToolCall, call))
                message = (
                    output
                    if isinstance(output, ToolMessage) and isinstance(output.content, str)
                    else ToolMessage(
                        str(getattr(output, "content", output)),
                        tool_call_id=call_id,
                        name=name,
                        artifact=getattr(output, "artifact", None),
                    )
                )
            except Exception as exc:  # the model sees the error and can fix its call
                tracing.set_attributes(span, {"error.type": type(exc).__name__})
                message = ToolMessage(
                    f"Error: {type(exc).__name__}: {exc}. Fix the arguments and call again.",
                    tool_call_id=call_id,
                    name=name,
                    status="error",
                )
            tracing.set_attributes(span, {"arag.tool.status": message.status})
    record = {
        "tool": name,
        "args": call["args"],
        "status": message.status,
        "ms": round((time.perf_counter() - started) * 1000, 1),
    }
    if approval is not None:
        record["approval"] = approval
    return {"messages": [message], "tool_calls": [record]}


def finish(state: ReactState, runtime: Runtime[ReactContext]) -> dict[str, Any]:
    if state.get("exit_reason"):
        return {}
    last = state["messages"][-1] if state.get("messages") else None
    if isinstance(last, AIMessage) and not last.tool_calls and not last.invalid_tool_calls:
        return {"exit_reason": "answered"}
    return {"exit_reason": "max_iterations", "error": f"stopped after {state.get('turns', 0)} model turns"}


def build_react_graph(
    *, checkpointer: Checkpointer = None, name: str = "react"
) -> CompiledStateGraph[ReactState, ReactContext, ReactInput, ReactOutput]:
    """Compile the ReAct graph; start it from :func:`initial_state` and pass a
    :class:`ReactContext` as ``context=``."""
    builder = StateGraph(ReactState, context_schema=ReactContext, input_schema=ReactInput, output_schema=ReactOutput)
    builder.add_node("agent", tracing.node("react", "agent", cast(Any, agent)), destinations=("tool", "finish"))
    builder.add_node("tool", tracing.node("react", "tool", cast(Any, run_tool)))
    builder.add_node("finish", tracing.node("react", "finish", cast(Any, finish)))
    builder.add_edge(START, "agent")
    builder.add_edge("tool", "agent")
    builder.add_edge("finish", END)
    return builder.compile(checkpointer=checkpointer, name=name)


# -- retrieval tools ------------------------------------------------------------------------------


class _SearchArgs(BaseModel):
    query: str = Field(description="What to search for, in words likely to appear in the passages.")
    k: int = Field(default=5, ge=1, le=20, description="How many passages to return.")


def search_tool_name(source: str) -> str:
    """The name of the search tool over the source ``source`` (tool names allow fewer characters)."""
    return "search_" + re.sub(r"[^A-Za-z0-9_-]", "_", source)[:57]


def source_tool(retriever: Retriever, source: Source) -> StructuredTool:
    """A search tool over one source; its description (what the model reads) is the source's.

    The model reads the passages numbered from 1; the tool message's ``artifact`` holds the same
    passages as plain dicts (id, source, doc_id, title, path, text: what a checkpointer stores as
    is), so ``[n]`` in an answer maps to ``artifact[n - 1]`` without parsing text.
    """
    name = search_tool_name(source.name)

    def search(query: str, k: int = 5) -> tuple[str, list[dict[str, str]]]:
        hits = retriever.search(query, k=k, sources=[source.name])
        if not hits:
            return "No passages found.", []
        text = "\n\n".join(
            f"[{i}] doc={c.doc_id} ({c.title or c.source}) id={c.id}\n{' '.join(c.text.split())[:1200]}"
            for i, c in enumerate(hits, 1)
        )
        fields = ("id", "source", "doc_id", "title", "path", "text")
        return text, [{f: getattr(c, f) for f in fields} for c in hits]

    description = f"Search the {source.name!r} source" + (f": {source.description}" if source.description else ".")
    return StructuredTool.from_function(
        search, name=name, description=description, args_schema=_SearchArgs, response_format="content_and_artifact"
    )


def source_tools(retriever: Retriever) -> list[StructuredTool]:
    """One search tool per source the retriever may use."""
    allowed = set(retriever.sources or [])
    return [source_tool(retriever, s) for s in retriever.store.list_sources() if not allowed or s.name in allowed]
