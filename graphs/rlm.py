"""The recursive long-context graph (Recursive Language Model style): the context stays out of the
prompt; the root works on it through tools and sub-calls, recursing on pieces still too long.

```
START -> root -> tools -> root ...                      (info, peek, grep, split, reduce, aggregate)
                 tools -> map_chunk x chunk -> collect   (map: one Send per chunk, concurrency capped)
                 collect -> tools (more calls this turn) | root
root -> finish  (submitted, or forced: iterations or budget used up, or the model failed)
```

State holds the context's handle and metadata, never its text (that lives in the
:class:`~tools.context.ContextStore` of :class:`RlmContext`), so checkpoints stay small. A ``map``
item whose chunk is longer than a sub-call can read runs this same graph one level deeper on it,
with the tree's remaining budget (the :class:`~graphs.broker.Broker` is shared); at ``max_depth``
the piece is read by one plain sub-call instead. When iterations or the budget run out, the root
is asked once for the final answer from what was gathered, and ``exit_reason`` says why.
"""

from __future__ import annotations

import bisect
import functools
import json
import logging
import operator
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict, cast

from langchain_core.messages import AnyMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import Checkpointer, Overwrite, Send
from pydantic import BaseModel, ValidationError

from graphs.broker import Broker, RlmLimits, SubResult
from graphs.budget import BudgetExceeded
from graphs.llm import ModelError
from graphs.rlm_policies import TOOLS, Map, RootPolicy, RootView, RunPython, SubReader, best_gathered, initial_message
from tools import tracing
from tools.context import ContextInfo, ContextStore, DocumentSpan, aggregate, grep, grep_items, split_text
from tools.sandbox import Sandbox

__all__ = [
    "RlmContext",
    "RlmInput",
    "RlmOutput",
    "RlmState",
    "build_rlm_graph",
    "initial_state",
    "prepare_run",
    "run_rlm",
]

log = logging.getLogger(__name__)

MAX_CALLS_PER_TURN = 16
"""Tool calls run from one root turn; more get an error (it bounds the graph's steps)."""
MAX_PEEK = 8_000
ExitReason = str  # answered | abstained | max_iterations | max_depth | budget | error


def _merge(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    return {**(left or {}), **(right or {})}


class RlmInput(TypedDict):
    """What a (sub-)run starts from (:func:`initial_state` builds it)."""

    question: str
    handle: str
    info: dict[str, Any]
    depth: int
    run_id: str
    messages: list[AnyMessage]
    iteration: int
    queue: list[dict[str, Any]]
    splits: int
    pending: list[dict[str, Any]]
    answer: dict[str, Any]


class RlmOutput(TypedDict, total=False):
    """What a run hands back."""

    answer: dict[str, Any]
    """``{content, ready, score}``: the answer given (or forced) at the end."""
    exit_reason: str
    error: str | None


class RlmState(TypedDict, total=False):
    question: str
    handle: str
    """The context in the store (its text is never in state)."""
    info: dict[str, Any]
    depth: int
    run_id: str
    """This run's node in the broker's trace tree."""
    messages: Annotated[list[AnyMessage], add_messages]
    iteration: int
    queue: list[dict[str, Any]]
    """Tool calls of the current turn still to run."""
    splits: int
    chunks: Annotated[dict[str, list[int]], _merge]
    """Chunk id -> [start, end) offsets, for every split made."""
    buffers: Annotated[dict[str, list[dict[str, Any]]], _merge]
    """Named results: one item per chunk of a map ({chunk, result, score}), one for a reduce."""
    mapping: dict[str, Any] | None
    pending: list[dict[str, Any]]
    map_results: Annotated[list[dict[str, Any]], operator.add]
    answer: dict[str, Any]
    """The answer slot ``{content, ready, score}``; the run ends when ``ready``."""
    stop: str | None
    error: str | None
    exit_reason: str


class MapTask(TypedDict):
    call_id: str
    buffer: str
    index: int
    chunk: str
    start: int
    end: int
    instruction: str
    handle: str
    depth: int
    run_id: str


@dataclass(frozen=True)
class RlmContext:
    """A run's dependencies: passed as ``context=``; shared by every level of the tree."""

    store: ContextStore
    broker: Broker
    root: RootPolicy
    reader: SubReader
    sandbox: Sandbox | None = None
    """Code mode (the ``run_python`` tool) when set; off by default."""

    @property
    def limits(self) -> RlmLimits:
        return self.broker.limits


# -- nodes -------------------------------------------------------------------------------------


def _view(state: RlmState, ctx: RlmContext) -> RootView:
    return RootView(
        question=state["question"],
        info=state.get("info", {}),
        messages=state.get("messages", []),
        iteration=state.get("iteration", 0),
        depth=state.get("depth", 0),
        buffers=state.get("buffers", {}),
        code_mode=ctx.sandbox is not None,
    )


def _forced(state: RlmState, ctx: RlmContext, reason: str, detail: str) -> dict[str, Any]:
    """One last call for the answer from what was gathered; the run ends with ``reason``."""
    view = _view(state, ctx)
    error = state.get("error") or (detail if reason != "max_iterations" else None)
    try:
        text = ctx.root.final(view, ctx.broker, detail)
    except (ModelError, BudgetExceeded) as exc:
        text, error = best_gathered(view.buffers), f"{detail}; the final call failed too: {exc}"
    return {"answer": {"content": text, "ready": True, "forced": True}, "exit_reason": reason, "error": error}


def root(state: RlmState, runtime: Runtime[RlmContext]) -> dict[str, Any]:
    ctx = runtime.context
    iteration, depth = state.get("iteration", 0), state.get("depth", 0)
    get_stream_writer()({"event": "rlm_turn", "depth": depth, "iteration": iteration + 1})
    if state.get("stop"):
        return _forced(state, ctx, "budget", state.get("error") or "the budget ran out")
    if iteration >= ctx.limits.max_iterations:
        return _forced(state, ctx, "max_iterations", f"all {ctx.limits.max_iterations} turns were used")
    started = time.perf_counter()
    try:
        ctx.broker.check()
        reply = ctx.root.turn(_view(state, ctx), ctx.broker)
    except BudgetExceeded as exc:
        return _forced(state, ctx, "budget", str(exc))
    except ModelError as exc:
        content = best_gathered(state.get("buffers", {}))
        return {"answer": {"content": content, "ready": True}, "exit_reason": "error", "error": str(exc)}
    ctx.broker.record(
        parent=state["run_id"],
        depth=depth,
        kind="root",
        started=started,
        tools=[c["name"] for c in reply.tool_calls],
        tokens=reply.usage_metadata["total_tokens"] if reply.usage_metadata else 0,
        **({"note": reply.text[:300]} if reply.tool_calls and isinstance(reply.text, str) and reply.text else {}),
    )
    update: dict[str, Any] = {"messages": [reply], "iteration": iteration + 1, "queue": []}
    calls = [dict(c) for c in reply.tool_calls]
    if not calls and not reply.invalid_tool_calls:  # a plain reply is the answer
        text = reply.text if isinstance(reply.text, str) else str(reply.content)
        return {**update, "answer": {"content": text.strip(), "ready": True}}
    errors = [
        ToolMessage(
            f"Error: the arguments of {bad.get('name')!r} are not valid JSON; call again with a JSON object.",
            tool_call_id=bad.get("id") or "",
            name=bad.get("name") or "",
            status="error",
        )
        for bad in reply.invalid_tool_calls
    ]
    for extra in calls[MAX_CALLS_PER_TURN:]:
        errors.append(_error(extra, f"at most {MAX_CALLS_PER_TURN} tool calls run per turn; call it again"))
    return {**update, "messages": [reply, *errors], "queue": calls[:MAX_CALLS_PER_TURN]}


def _error(call: dict[str, Any], text: str) -> ToolMessage:
    return ToolMessage(f"Error: {text}", tool_call_id=call.get("id") or "", name=call.get("name", ""), status="error")


class _Tools:
    """Runs one turn's tool calls against the context, the splits and the buffers."""

    def __init__(self, state: RlmState, ctx: RlmContext) -> None:
        self.state, self.ctx = state, ctx
        self.text = ctx.store.text(state["handle"])
        self.splits = state.get("splits", 0)
        self.chunks = dict(state.get("chunks", {}))
        self.buffers = dict(state.get("buffers", {}))
        self.new_chunks: dict[str, list[int]] = {}
        self.new_buffers: dict[str, list[dict[str, Any]]] = {}
        self.answer: dict[str, Any] | None = None

    def latest(self) -> list[str]:
        prefix = f"s{self.splits}-"
        return [c for c in self.chunks if c.startswith(prefix)]

    def put(self, name: str, items: list[dict[str, Any]]) -> None:
        self.buffers[name] = self.new_buffers[name] = items

    def info(self, args: BaseModel) -> str:
        data = {k: v for k, v in self.state.get("info", {}).items() if k != "handle"}
        data["splits"] = {
            f"s{n}": sum(1 for c in self.chunks if c.startswith(f"s{n}-")) for n in range(1, self.splits + 1)
        }
        data["buffers"] = {name: len(items) for name, items in self.buffers.items()}
        return json.dumps(data)

    def peek(self, args: Any) -> str:
        start, end = max(0, args.start), min(len(self.text), args.end, args.start + MAX_PEEK)
        if end <= start:
            return f"Error: nothing between {args.start} and {args.end}; the context has {len(self.text)} characters"
        return self.text[start:end]

    def grep(self, args: Any) -> str:
        matches, total, timed_out = grep(self.text, args.pattern, k=args.k, ignore_case=args.ignore_case)
        ids = self.latest()
        starts = [self.chunks[c][0] for c in ids]
        lines = [f"{total}{'+' if total >= 10_000 else ''} matches" + (" (stopped: time limit)" if timed_out else "")]
        if args.buffer:
            items, item_timeout = grep_items(self.text, args.pattern, unit=args.unit, ignore_case=args.ignore_case)
            self.put(args.buffer, items)
            lines[0] += f"; {len(items)} items ({args.unit}) in buffer {args.buffer!r}"
            lines[0] += " (stopped: time limit)" if item_timeout else ""
        for m in matches:
            chunk = ids[bisect.bisect_right(starts, m.start) - 1] if ids else None
            lines.append(f"@{m.start}" + (f" [{chunk}]" if chunk else "") + f": {m.snippet}")
        return "\n".join(lines)

    def split(self, args: Any) -> str:
        size = args.size or self.ctx.limits.sub_context_chars
        documents = [DocumentSpan(**d) for d in self.state.get("info", {}).get("documents", [])]
        spans = split_text(self.text, args.strategy, size, documents=documents)
        self.splits += 1
        ids = [f"s{self.splits}-{i}" for i in range(len(spans))]
        for cid, (start, end) in zip(ids, spans, strict=True):
            self.chunks[cid] = self.new_chunks[cid] = [start, end]
        longest = max(end - start for start, end in spans)
        return f"{len(ids)} chunks: {ids[0]} .. {ids[-1]} (longest {longest} characters)"

    def reduce(self, args: Any) -> str:
        items = self._buffer(args.buffer)
        result = self.ctx.broker.sub_call(
            lambda: self.ctx.reader.reduce(args.instruction, items, self.ctx.broker),
            parent=self.state["run_id"],
            depth=self.state.get("depth", 0),
            kind="reduce",
            chars=sum(len(str(i.get("result", ""))) for i in items),
        )
        item: dict[str, Any] = {"chunk": f"reduce:{args.buffer}", "result": result.result}
        if result.score is not None:
            item["score"] = result.score
        self.put(args.into, [item])
        return result.result or "NONE (nothing found)"

    def aggregate(self, args: Any) -> str:
        return json.dumps(aggregate(self._buffer(args.buffer), args.op).value)

    def submit(self, args: Any) -> str:
        if args.abstain:
            reason = (args.reason or "the context does not answer it").strip()
            self.answer = {"content": "", "partial": (args.text or "").strip(), "reason": reason, "ready": True}
            self.answer["abstained"] = True
            return "submitted: abstained"
        if args.text is None and args.buffer is None:
            raise ValueError("give text or buffer")
        if args.buffer is not None:
            items = self._buffer(args.buffer)
            best = aggregate(items, "argmax" if len(items) == 1 else "join")
            content = str(best.value or "")
            score = items[0].get("score") if len(items) == 1 else None
        else:
            content, score = str(args.text), None
        self.answer = {"content": content.strip(), "ready": True, "score": score}
        if args.short:
            self.answer["short"] = args.short.strip()
        return "submitted"

    def run_python(self, args: Any) -> str:
        sandbox = self.ctx.sandbox
        assert sandbox is not None  # only offered in code mode
        broker, reader = self.ctx.broker, self.ctx.reader
        parent, depth = self.state["run_id"], self.state.get("depth", 0)

        def llm_query(prompt: str) -> str:
            return broker.sub_call(
                lambda: reader.ask(prompt, broker), parent=parent, depth=depth, kind="llm_query", chars=len(prompt)
            ).result

        try:
            outcome = sandbox.run(args.code, context=self.text, llm_query=llm_query)
        except Exception as exc:  # run() reports what the code does; this is a fault of the sandbox itself
            log.exception("run_python failed")
            return f"Error: run_python failed in the sandbox itself: {type(exc).__name__}: {exc}"
        if outcome.submitted is not None:
            self.answer = {"content": outcome.submitted.strip(), "ready": True}
        return outcome.report()

    def _buffer(self, name: str) -> list[dict[str, Any]]:
        if name not in self.buffers:
            known = ", ".join(sorted(self.buffers)) or "none yet"
            raise ValueError(f"no buffer named {name!r} (buffers: {known}); map or reduce into it first")
        return self.buffers[name]

    def plan_map(self, call: dict[str, Any], args: Any) -> list[MapTask]:
        ids = self.latest() if args.chunk_ids == "all" else list(args.chunk_ids)
        if not ids:
            raise ValueError("no chunks to map over; call split first")
        unknown = [c for c in ids if c not in self.chunks]
        if unknown:
            raise ValueError(f"unknown chunk ids {unknown[:5]}; use ids returned by split")
        return [
            MapTask(
                call_id=call.get("id") or "",
                buffer=args.buffer,
                index=i,
                chunk=cid,
                start=self.chunks[cid][0],
                end=self.chunks[cid][1],
                instruction=args.instruction,
                handle=self.state["handle"],
                depth=self.state.get("depth", 0),
                run_id=self.state["run_id"],
            )
            for i, cid in enumerate(ids)
        ]


def run_tools(state: RlmState, runtime: Runtime[RlmContext]) -> dict[str, Any]:
    ctx = runtime.context
    box = _Tools(state, ctx)
    queue = list(state.get("queue", []))
    messages: list[ToolMessage] = []
    writer = get_stream_writer()
    update: dict[str, Any] = {"mapping": None, "pending": []}
    while queue and box.answer is None:
        call = queue.pop(0)
        name = call.get("name", "")
        schema: type[BaseModel] | None = RunPython if name == "run_python" and ctx.sandbox else TOOLS.get(name)
        if schema is None:
            messages.append(_error(call, f"no tool named {name!r}; use one of {sorted(TOOLS)}"))
            continue
        started = time.perf_counter()
        try:
            args = schema.model_validate(call.get("args") or {})
            if name == "map":
                tasks = box.plan_map(call, args)
                buffer = cast(Map, args).buffer
                update["mapping"] = {"call_id": call.get("id") or "", "buffer": buffer, "tasks": len(tasks)}
                update["pending"] = tasks
                writer({"event": "rlm_map", "depth": state.get("depth", 0), "chunks": len(tasks)})
                break
            content = cast(Callable[[Any], str], getattr(box, name))(args)
            status = "success"
        except ValidationError as exc:
            content, status = f"Error: bad arguments for {name}: {exc.errors()[0]['msg']}", "error"
        except (ValueError, KeyError) as exc:
            content, status = f"Error: {exc}", "error"
        except BudgetExceeded as exc:
            content, status = f"Error: {exc}", "error"
            update.update(stop="budget", error=str(exc))
            messages.append(_tool_message(call, content, status))
            break
        except ModelError as exc:
            content, status = f"Error: the sub-call failed: {exc}", "error"
        writer(
            {
                "event": "rlm_tool",
                "tool": name,
                "status": status,
                "ms": round((time.perf_counter() - started) * 1000, 1),
            }
        )
        messages.append(_tool_message(call, content, status))
    if update.get("stop") or box.answer is not None:
        messages += [_error(c, "not run: the run ended first") for c in queue]
        queue = []
    update.update(messages=messages, queue=queue, splits=box.splits, chunks=box.new_chunks, buffers=box.new_buffers)
    if box.answer is not None:
        update["answer"] = box.answer
    return update


def _tool_message(call: dict[str, Any], content: str, status: str) -> ToolMessage:
    return ToolMessage(content, tool_call_id=call.get("id") or "", name=call.get("name", ""), status=status)


def map_chunk(task: MapTask, runtime: Runtime[RlmContext]) -> dict[str, Any]:
    """Read one chunk: a sub-call, or a sub-run one level deeper when the chunk is too long."""
    ctx = runtime.context
    limits, broker = ctx.limits, ctx.broker
    piece = ctx.store.text(task["handle"])[task["start"] : task["end"]]
    item: dict[str, Any] = {"index": task["index"], "chunk": task["chunk"], "result": ""}
    parent, depth, chunk = task["run_id"], task["depth"] + 1, task["chunk"]
    try:
        if len(piece) > limits.sub_context_chars and task["depth"] < limits.max_depth:
            result = broker.sub_call(
                lambda: _recurse(ctx, task, piece),
                kind="recurse",
                chars=len(piece),
                hold_slot=False,
                trace=False,
                parent=parent,
                depth=depth,
                chunk=chunk,
            )
        else:
            kind = "map"
            if len(piece) > limits.sub_context_chars:  # at the depth cap: one plain call on what fits
                broker.note_depth_cap()
                piece, kind = piece[: limits.sub_context_chars], "plain"
            result = broker.sub_call(
                lambda: ctx.reader.read(task["instruction"], piece, broker),
                kind=kind,
                chars=len(piece),
                parent=parent,
                depth=depth,
                chunk=chunk,
            )
        item["result"] = result.result
        if result.score is not None:
            item["score"] = result.score
    except BudgetExceeded as exc:
        item.update(error=str(exc), limit=exc.limit)
    except ModelError as exc:
        item["error"] = str(exc)
    get_stream_writer()(
        {"event": "sub_call", "chunk": task["chunk"], "depth": task["depth"] + 1, "ok": "error" not in item}
    )
    return {"map_results": [item]}


def _recurse(ctx: RlmContext, task: MapTask, piece: str) -> SubResult:
    info = ctx.store.put(piece)
    try:
        final = run_rlm(
            ctx, task["instruction"], info, depth=task["depth"] + 1, parent=task["run_id"], chunk=task["chunk"]
        )
    finally:
        ctx.store.release(info.handle)
    answer = final.get("answer") or {}
    if final.get("exit_reason") == "budget":
        raise BudgetExceeded("sub_calls", final.get("error") or "the budget ran out in a sub-run")
    return SubResult(str(answer.get("content", "")), answer.get("score"))


def collect(state: RlmState, runtime: Runtime[RlmContext]) -> dict[str, Any]:
    """Gather a map's results into its buffer and answer the map call."""
    mapping = state.get("mapping") or {}
    results = sorted(state.get("map_results", []), key=lambda r: r["index"])
    items = [{k: v for k, v in r.items() if k not in ("index", "limit")} for r in results]
    found = [i for i in items if i.get("result") and i["result"].strip().upper() != "NONE"]
    failed = [i for i in items if i.get("error")]
    lines = [f"map over {len(items)} chunks into buffer {mapping.get('buffer')!r}: {len(found)} found something"]
    lines += [f"[{i['chunk']}] {' '.join(str(i['result']).split())[:300]}" for i in found[:8]]
    if len(found) > 8:
        lines.append(f"... {len(found) - 8} more; use aggregate or reduce on the buffer")
    if failed:
        lines.append(f"{len(failed)} chunks failed, e.g. {failed[0]['error']}")
    update: dict[str, Any] = {
        "buffers": {mapping.get("buffer", "results"): items},
        "map_results": Overwrite([]),
        "mapping": None,
        "pending": [],
        "messages": [ToolMessage("\n".join(lines), tool_call_id=mapping.get("call_id", ""), name="map")],
    }
    budget_hit = next((r for r in results if r.get("limit")), None)
    if budget_hit is not None:
        rest = [_error(c, "not run: the budget ran out") for c in state.get("queue", [])]
        update.update(stop="budget", error=budget_hit["error"], queue=[], messages=[*update["messages"], *rest])
    return update


def finish(state: RlmState, runtime: Runtime[RlmContext]) -> dict[str, Any]:
    broker = runtime.context.broker
    answer = dict(state.get("answer") or {"content": "", "ready": True})
    reason = state.get("exit_reason") or "answered"
    if reason == "max_iterations" and "max_depth" in broker.limits_hit:
        reason = "max_depth"  # recursion was cut short, which is why no answer was submitted
    if answer.get("abstained"):
        reason = "abstained"
        answer["content"] = f"I could not answer {state.get('question', '')!r}: {answer.get('reason')}."
    elif reason == "answered" and not answer.get("content"):
        reason = "abstained"
        answer["content"] = f"I found nothing in the context that answers {state.get('question', '')!r}."
    broker.close_run(state["run_id"], exit_reason=reason, iterations=state.get("iteration", 0))
    return {"answer": answer, "exit_reason": reason}


# -- routing -----------------------------------------------------------------------------------


def route_after_root(state: RlmState) -> str:
    if (state.get("answer") or {}).get("ready"):
        return "finish"
    return "tools" if state.get("queue") else "root"


def route_after_tools(state: RlmState) -> list[Send] | str:
    if state.get("pending"):
        return [Send("map_chunk", task) for task in state["pending"]]
    if (state.get("answer") or {}).get("ready"):
        return "finish"
    return "root"


def route_after_collect(state: RlmState) -> str:
    return "tools" if state.get("queue") and not state.get("stop") else "root"


def build_rlm_graph(*, checkpointer: Checkpointer = None, name: str = "rlm") -> CompiledStateGraph[Any, Any, Any, Any]:
    """Compile the recursive long-context graph; run it with :func:`run_rlm`."""
    builder = StateGraph(RlmState, context_schema=RlmContext, input_schema=RlmInput, output_schema=RlmOutput)
    builder.add_node("root", tracing.node("rlm", "root", cast(Any, root)))
    builder.add_node("tools", tracing.node("rlm", "tools", cast(Any, run_tools)))
    builder.add_node("map_chunk", tracing.node("rlm", "map_chunk", cast(Any, map_chunk)))
    builder.add_node("collect", tracing.node("rlm", "collect", cast(Any, collect)))
    builder.add_node("finish", tracing.node("rlm", "finish", cast(Any, finish)))
    builder.add_edge(START, "root")
    builder.add_conditional_edges("root", route_after_root, ["tools", "root", "finish"])
    builder.add_conditional_edges("tools", route_after_tools, ["map_chunk", "root", "finish"])
    builder.add_edge("map_chunk", "collect")
    builder.add_conditional_edges("collect", route_after_collect, ["tools", "root"])
    builder.add_edge("finish", END)
    return builder.compile(checkpointer=checkpointer, name=name)


@functools.cache
def _graph() -> CompiledStateGraph[Any, Any, Any, Any]:
    return build_rlm_graph()


def recursion_limit(limits: RlmLimits) -> int:
    """A step limit the graph cannot reach within ``limits``: each turn runs at most
    ``MAX_CALLS_PER_TURN`` calls, each map taking three steps."""
    return 10 + limits.max_iterations * (2 + 3 * MAX_CALLS_PER_TURN)


def initial_state(question: str, info: ContextInfo, *, depth: int, run_id: str) -> RlmInput:
    """The input of a (sub-)run over the stored context ``info`` (its handle, never its text)."""
    return {
        "question": question,
        "handle": info.handle,
        "info": info.as_dict(),
        "depth": depth,
        "run_id": run_id,
        "messages": [initial_message(question, info.as_dict())],
        "iteration": 0,
        "queue": [],
        "splits": 0,
        "pending": [],
        "answer": {"content": "", "ready": False},
    }


def prepare_run(
    ctx: RlmContext,
    question: str,
    info: ContextInfo,
    *,
    depth: int = 0,
    parent: str | None = None,
    chunk: str | None = None,
) -> tuple[RlmInput, RunnableConfig]:
    """The start state and run config of a (sub-)run on a stored context (it opens its trace node)."""
    run_id = ctx.broker.open_run(parent=parent, depth=depth, chunk=chunk, chars=info.chars)
    start = initial_state(question, info, depth=depth, run_id=run_id)
    config: RunnableConfig = {
        "recursion_limit": recursion_limit(ctx.limits),
        # LangGraph's executor runs the map tasks; while streaming, its waiter for stream output
        # holds one slot, so allow one more than the broker's cap (which does the real limiting).
        "max_concurrency": ctx.limits.max_concurrency + 1,
    }
    return start, config


def run_rlm(
    ctx: RlmContext,
    question: str,
    info: ContextInfo,
    *,
    depth: int = 0,
    parent: str | None = None,
    chunk: str | None = None,
) -> dict[str, Any]:
    """Run the graph on a stored context; returns the final state (``answer``, ``exit_reason``)."""
    start, config = prepare_run(ctx, question, info, depth=depth, parent=parent, chunk=chunk)
    return cast(dict[str, Any], _graph().invoke(start, config, context=ctx))
