"""``RlmAgent``: answers questions over contexts far larger than any prompt (Recursive Language
Model style), with a model or offline.

```python
from agents import RlmAgent

agent = RlmAgent()                                   # offline: a plan by question form
result = agent.invoke("What is the special magic number for Paris?", context=ten_million_chars)
result = agent.invoke("Which essays mention Lisp?", context=["essays/"])   # files and folders
print(result.answer, result.exit_reason, result.usage["sub_calls"])
print(result.trace_tree())
```

A ``str`` context is the text itself; a ``Path`` or a list of paths is loaded from disk (txt, md,
html, pdf, csv, jsonl; folders recursively; unreadable files reported in ``result.problems``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.tools import StructuredTool
from langgraph.graph.state import CompiledStateGraph
from pydantic import BaseModel, Field

from agents._spans import end_run_span, run_span
from agents.events import AgentEvent, AgentResult
from agents.settings import Settings
from graphs.broker import Broker, RlmLimits
from graphs.llm import ModelClient, RetryPolicy
from graphs.rlm import RlmContext, build_rlm_graph, prepare_run
from graphs.rlm_policies import ExtractiveReader, HeuristicRoot, ModelReader, ModelRoot
from tools import tracing
from tools.context import ContextStore, load_context
from tools.retrieval import Retriever
from tools.sandbox import Sandbox, SandboxLimits

__all__ = ["RlmAgent", "RlmResult", "read_document_tool"]

ContextInput = str | Path | Sequence[str | Path]


@dataclass(kw_only=True, slots=True)
class RlmResult(AgentResult):
    """The outcome of one long-context question: :class:`~agents.events.AgentResult` plus the tree.

    ``exit_reason`` is ``answered``, ``abstained``, ``max_iterations``, ``max_depth``, ``budget``
    or ``error``; ``usage`` counts model calls, tokens, sub-calls, peak concurrency and wall time
    of the whole tree; ``steps`` are the progress events of the run, in order.
    """

    trace: list[dict[str, Any]] = field(default_factory=list)
    """The tree: runs (``kind="run"``) and calls (root turns, map, reduce, recurse, plain,
    llm_query), each with ``id``, ``parent``, ``depth``, ``chunk``, ``chars``, ``tokens``, ``ms``."""
    chars: int = 0
    limits_hit: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Files that could not be read (the rest were)."""
    strategies: str = "heuristic"

    @property
    def depth(self) -> int:
        """The deepest level any run or call reached."""
        return max((int(node.get("depth", 0)) for node in self.trace), default=0)

    def as_dict(self) -> dict[str, Any]:
        return {
            **AgentResult.as_dict(self),
            "chars": self.chars,
            "depth": self.depth,
            "limits_hit": self.limits_hit,
            "problems": self.problems,
            "strategies": self.strategies,
            "trace": self.trace,
        }

    def trace_tree(self, *, max_children: int = 8) -> str:
        """The trace as an indented tree (long lists of calls are elided)."""
        children: dict[str | None, list[dict[str, Any]]] = {}
        for node in self.trace:
            children.setdefault(node.get("parent"), []).append(node)
        lines: list[str] = []

        def label(node: dict[str, Any]) -> str:
            parts = [str(node["kind"])]
            if node.get("chunk"):
                parts.append(str(node["chunk"]))
            if node.get("chars"):
                parts.append(f"{node['chars']} chars")
            if node.get("tokens"):
                parts.append(f"{node['tokens']} tok")
            if node.get("ms") is not None:
                parts.append(f"{node['ms']} ms")
            if node.get("note"):
                parts.append(str(node["note"])[:100])
            if node.get("exit_reason"):
                parts.append(f"-> {node['exit_reason']}")
            if node.get("status") == "error":
                parts.append(f"error: {node.get('error', '')}")
            return f"d{node.get('depth', 0)} " + " · ".join(parts)

        def walk(parent: str | None, indent: int) -> None:
            kids = children.get(parent, [])
            shown = kids if len(kids) <= max_children else [*kids[: max_children - 1]]
            for node in shown:
                lines.append("  " * indent + label(node))
                walk(node["id"], indent + 1)
            if len(kids) > len(shown):
                lines.append("  " * indent + f"... {len(kids) - len(shown)} more")

        walk(None, 0)
        return "\n".join(lines)


class RlmAgent:
    """Runs the recursive long-context graph.

    Args:
        chat_model: The root model (tool calling). ``None``: the deterministic plan (split, map,
            reduce, submit) drives the run.
        sub_model: Model of the sub-calls (default: ``chat_model``), e.g. a smaller, cheaper one.
            With neither, sub-calls are extractive: the run works offline.
        limits: Budget of the whole tree: iterations, depth, sub-calls, tokens, deadline, concurrency.
        code_mode: Offer the root model ``run_python`` (a sandboxed process); needs ``chat_model``
            and the OS boundary of :class:`tools.sandbox.Sandbox` (bubblewrap).
        sandbox_limits: Limits of that process.
        code_mode_unsafe: Run code mode without the OS boundary where it cannot be set up (warns).
        retry: Retry policy of model calls.

    Raises:
        tools.sandbox.SandboxUnavailable: ``code_mode`` without the OS boundary on this machine (the
            message says what is missing) and without ``code_mode_unsafe``.
    """

    def __init__(
        self,
        chat_model: BaseChatModel | None = None,
        *,
        sub_model: BaseChatModel | None = None,
        limits: RlmLimits | None = None,
        code_mode: bool = False,
        sandbox_limits: SandboxLimits | None = None,
        code_mode_unsafe: bool = False,
        retry: RetryPolicy | None = None,
    ) -> None:
        if code_mode and chat_model is None:
            msg = "code mode needs a chat model to write the code: pass chat_model= or set ARAG_CHAT_MODEL"
            raise ValueError(msg)
        self.limits = limits or RlmLimits()
        self.chat_model = chat_model
        self.client = ModelClient(chat_model, retry) if chat_model is not None else None
        sub = sub_model if sub_model is not None else chat_model
        self.sub_client = ModelClient(sub, retry) if sub is not None else None
        self.sandbox = Sandbox(sandbox_limits, unsafe=code_mode_unsafe) if code_mode else None
        self.graph: CompiledStateGraph[Any, Any, Any, Any] = build_rlm_graph()

    @property
    def kind(self) -> str:
        """``model`` (a root model), ``model-reader`` (the fixed plan, a model reads), ``heuristic``."""
        if self.client is not None:
            return "model"
        return "model-reader" if self.sub_client is not None else "heuristic"

    @classmethod
    def from_settings(cls, settings: Settings | None = None, *, chat_model: BaseChatModel | None = None) -> RlmAgent:
        """The settings' recursive agent (:func:`agents.build.build_rlm_agent`): root model, sub-call
        model (``ARAG_SUB_CHAT_MODEL``), limits (``ARAG_RLM_*``), code mode."""
        from agents.build import build_rlm_agent  # here: agents.build imports this module

        return build_rlm_agent(settings or Settings(), chat_model=chat_model)

    def _context(self, broker: Broker) -> RlmContext:
        return RlmContext(
            store=ContextStore(),
            broker=broker,
            root=ModelRoot(self.client, self.limits) if self.client is not None else HeuristicRoot(self.limits),
            reader=ModelReader(self.sub_client) if self.sub_client is not None else ExtractiveReader(),
            sandbox=self.sandbox,
        )

    def invoke(self, question: str, *, context: ContextInput) -> RlmResult:
        """Answer ``question`` over ``context`` (text, or paths of files and folders).

        Raises:
            ValueError: Empty question, or no readable text in the context.
        """
        result = None
        for event in self.stream(question, context=context):
            if event.kind == "result":
                result = event.result
        assert isinstance(result, RlmResult)
        return result

    def stream(self, question: str, *, context: ContextInput) -> Iterator[AgentEvent]:
        """:class:`~agents.events.AgentEvent` items as they happen: ``step`` events (``data``:
        ``rlm_turn``, ``rlm_map``, ``sub_call``), a ``tool`` event per context tool the root
        model calls (``rlm_tool``), then the ``result`` (an :class:`RlmResult`)."""
        if not question.strip():
            msg = "the question is empty"
            raise ValueError(msg)
        text, documents, problems, kind = _read(context)
        broker = Broker(self.limits)
        ctx = self._context(broker)
        info = ctx.store.put(text, documents=documents, kind=kind)
        start, config = prepare_run(ctx, question, info)
        final: dict[str, Any] = {}
        steps: list[dict[str, Any]] = []
        root = run_span("rlm", question, "")
        tracing.set_attributes(root, {"arag.rlm.context_chars": info.chars})
        parts = tracing.stepped(self.graph.stream(start, config, context=ctx, stream_mode=["custom", "values"]), root)
        try:
            for mode, data in parts:
                if mode == "custom":
                    event = dict(cast(dict[str, Any], data))
                    steps.append(event)
                    if event.get("event") == "rlm_tool":  # a context tool the root model called
                        yield AgentEvent("tool", data=event)
                    else:
                        yield AgentEvent("step", data=event)
                else:
                    final = cast(dict[str, Any], data)
        except BaseException:
            end_run_span(root, None, broker.budget)
            raise
        answer = final.get("answer") or {}
        result = RlmResult(
            question=question,
            answer=str(answer.get("content", "")),
            exit_reason=str(final.get("exit_reason", "error")),
            usage=broker.usage(),
            steps=[*steps, *broker.budget.fallback_steps()],
            trace=broker.trace,
            chars=info.chars,
            limits_hit=sorted(broker.limits_hit),
            error=final.get("error"),
            partial_answer=str(answer.get("partial", "")),
            short_answer=str(answer.get("short", "")),
            problems=problems,
            strategies=self.kind,
            trace_id=tracing.trace_id_of(root) or "",
        )
        end_run_span(root, result, broker.budget)
        yield AgentEvent("result", result=result)


def _read(context: ContextInput) -> tuple[str, list[Any], list[str], str]:
    if isinstance(context, str):
        if not context:
            msg = "the context is empty"
            raise ValueError(msg)
        return context, [], [], "text"
    paths = [context] if isinstance(context, Path) else list(context)
    if not paths:
        msg = "no context: pass the text, or paths of files or folders"
        raise ValueError(msg)
    text, documents, problems = load_context(paths)
    return text, documents, problems, "files"


# -- the RAG hand-over ------------------------------------------------------------------------


class _ReadDocumentArgs(BaseModel):
    document: str = Field(description="The document's id, as search results name it (doc=...).")
    question: str = Field(description="What to find out from the whole document.")


def read_document_tool(retriever: Retriever, reader: RlmAgent) -> StructuredTool:
    """The ``read_document`` tool: hands one whole stored document (rebuilt from its chunks) and a
    question to the recursive agent, for questions that search passages cannot answer (count,
    list everything, summarise) and documents too long for the model's context."""

    def read_document(document: str, question: str) -> str:
        stored = retriever.document(document)
        result = reader.invoke(question, context=stored.text)
        usage = result.usage
        note = (
            f"(read {stored.title or stored.doc_id!r} in full: {stored.chars:,} chars, "
            f"{usage.get('sub_calls', 0)} sub-calls, exit {result.exit_reason})"
        )
        if not result.answer:
            return f"The document does not answer this. {note}"
        return f"{result.answer}\n{note}"

    return StructuredTool.from_function(
        read_document,
        name="read_document",
        description=(
            "Read one whole document to answer a question that the search passages cannot: counting or "
            "listing everything it says about something, summarising it, or a document too long for your "
            "context. Slower than search; use it after search has found the document."
        ),
        args_schema=_ReadDocumentArgs,
    )
