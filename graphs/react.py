"""A general ReAct tool-calling agent: the model calls tools (a search tool per source plus any
user tools) until it answers.

```
START -> agent -> tools -> agent ... -> finish
```

Tool calls of one model turn run in parallel. A tool that raises, an unknown tool, or arguments
that are not valid JSON go back to the model as an error ``ToolMessage`` so it can correct itself.
The step limit, the run's budget and model failures end the run at ``finish`` with an
``exit_reason``; they never escape as exceptions.
"""

from __future__ import annotations

import contextvars
import re
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Annotated, Any, TypedDict, cast

from langchain_core.messages import AIMessage, AnyMessage, SystemMessage, ToolMessage
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import Checkpointer
from pydantic import BaseModel, Field

from graphs._state import extend_or_reset
from graphs.budget import Budget, BudgetExceeded, Limits
from graphs.llm import ModelClient, ModelError
from tools.retrieval import Retriever
from tools.store import Source

__all__ = ["ReactContext", "ReactState", "build_react_graph", "source_tool", "source_tools"]

DEFAULT_SYSTEM_PROMPT = (
    "You answer questions with the tools you have. Search before answering; search again with other words "
    "when results miss. Cite passages by their number in brackets, like [1]. If the tools do not give the "
    "answer, say so."
)


class ReactState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    turns: int
    """Model turns of the current question."""
    exit_reason: str
    error: str | None
    tool_calls: Annotated[list[dict[str, Any]], extend_or_reset]


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

    def __post_init__(self) -> None:
        if self.budget is None:
            object.__setattr__(self, "budget", Budget(self.limits))
        names = [t.name for t in self.tools]
        if len(set(names)) != len(names):
            msg = f"tool names must be unique, got {names}"
            raise ValueError(msg)

    @property
    def meter(self) -> Budget:
        assert self.budget is not None
        return self.budget


def agent(state: ReactState, runtime: Runtime[ReactContext]) -> dict[str, Any]:
    ctx = runtime.context
    turns = state.get("turns", 0)
    get_stream_writer()({"event": "step_start", "node": "agent", "turn": turns + 1})
    prompt = [SystemMessage(ctx.system_prompt), *state.get("messages", [])]
    try:
        reply = ctx.client.invoke(prompt, ctx.meter, tools=ctx.tools, tags=["agent"])
    except BudgetExceeded as exc:
        return {"exit_reason": "budget", "error": str(exc)}
    except ModelError as exc:
        return {"exit_reason": "error", "error": str(exc)}
    return {"messages": [reply], "turns": turns + 1}


def run_tools(state: ReactState, runtime: Runtime[ReactContext]) -> dict[str, Any]:
    ctx = runtime.context
    last = state["messages"][-1]
    assert isinstance(last, AIMessage)
    by_name = {t.name: t for t in ctx.tools}
    writer = get_stream_writer()

    def call(tool_call: dict[str, Any]) -> tuple[ToolMessage, dict[str, Any]]:
        started = time.perf_counter()
        name, call_id = tool_call["name"], tool_call["id"] or ""
        tool = by_name.get(name)
        artifact: Any = None
        if tool is None:
            content, status = f"Error: no tool named {name!r}; use one of {sorted(by_name)}", "error"
        else:
            try:
                # Invoked with the whole call, a tool answers with a ToolMessage: its content for the
                # model, and its artifact (the search tools' passages) for the code.
                output = tool.invoke({**tool_call, "type": "tool_call"})
                content, status = str(output.content), "success"
                artifact = output.artifact
            except Exception as exc:  # the model sees the error and can fix its call
                content, status = f"Error: {type(exc).__name__}: {exc}. Fix the arguments and call again.", "error"
        record = {
            "tool": name,
            "args": tool_call["args"],
            "status": status,
            "ms": round((time.perf_counter() - started) * 1000, 1),
        }
        writer({"event": "tool", **record})
        return ToolMessage(content, tool_call_id=call_id, name=name, status=status, artifact=artifact), record

    results = []
    if last.tool_calls:
        with ThreadPoolExecutor(max_workers=max(1, min(ctx.max_parallel_tools, len(last.tool_calls)))) as pool:
            # Each call runs in a copy of this node's context, where the stream writer works.
            calls = [(contextvars.copy_context(), dict(c)) for c in last.tool_calls]
            results = list(pool.map(lambda pair: pair[0].run(call, pair[1]), calls))
    for bad in last.invalid_tool_calls:
        content = (
            f"Error: the arguments of {bad.get('name')!r} are not valid JSON ({bad.get('error') or 'unparseable'}). "
            "Call again with a valid JSON object."
        )
        record = {"tool": bad.get("name"), "args": bad.get("args"), "status": "invalid_arguments", "ms": 0.0}
        writer({"event": "tool", **record})
        results.append(
            (ToolMessage(content, tool_call_id=bad.get("id") or "", name=bad.get("name") or "", status="error"), record)
        )
    return {"messages": [m for m, _ in results], "tool_calls": [r for _, r in results]}


def finish(state: ReactState, runtime: Runtime[ReactContext]) -> dict[str, Any]:
    if state.get("exit_reason"):
        return {}
    last = state["messages"][-1] if state.get("messages") else None
    if isinstance(last, AIMessage) and not last.tool_calls and not last.invalid_tool_calls:
        return {"exit_reason": "answered"}
    return {"exit_reason": "max_iterations", "error": f"stopped after {state.get('turns', 0)} model turns"}


def route_after_agent(state: ReactState, runtime: Runtime[ReactContext]) -> str:
    if state.get("exit_reason"):
        return "finish"
    last = state["messages"][-1]
    wants_tools = isinstance(last, AIMessage) and bool(last.tool_calls or last.invalid_tool_calls)
    if wants_tools and state.get("turns", 0) < runtime.context.max_turns:
        return "tools"
    return "finish"


def build_react_graph(
    *, checkpointer: Checkpointer = None, name: str = "react"
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Compile the ReAct graph; pass a :class:`ReactContext` as ``context=`` when running it."""
    builder = StateGraph(ReactState, context_schema=ReactContext)
    builder.add_node("agent", cast(Any, agent))
    builder.add_node("tools", cast(Any, run_tools))
    builder.add_node("finish", cast(Any, finish))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", route_after_agent, ["tools", "finish"])
    builder.add_edge("tools", "agent")
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
