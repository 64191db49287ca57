"""Who drives a recursive (RLM) run, with and without a model.

- The *root policy* decides the next tool calls from the context's metadata and what the tools
  returned: :class:`ModelRoot` asks a tool-calling chat model; :class:`HeuristicRoot` follows a
  fixed plan offline (split, map the sub-reader over every chunk, reduce, submit).
- The *sub-reader* reads one piece for a ``map``, combines a buffer for ``reduce``, and answers
  ``llm_query`` prompts in code mode: :class:`ModelReader` with a chat model, :class:`ExtractiveReader`
  without one (the best sentence of the piece by coverage of the question's content words).

The tool argument models below double as the root model's tool descriptions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, cast, runtime_checkable

from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.messages.utils import count_tokens_approximately
from pydantic import BaseModel, Field

from graphs.broker import Broker, RlmLimits, SubResult
from graphs.llm import ModelClient
from graphs.strategies import terms
from tools.context import aggregate
from tools.extractive import answer_pattern, split_sentences

__all__ = [
    "ExtractiveReader",
    "HeuristicRoot",
    "ModelReader",
    "ModelRoot",
    "RootPolicy",
    "RootView",
    "SubReader",
    "tool_specs",
]


# -- the root model's tools (arguments and descriptions) ---------------------------------------


class Info(BaseModel):
    """Metadata of the context: characters, lines, words, documents, the splits made so far and the buffers."""


class Peek(BaseModel):
    """Read the context between two character offsets (at most 8,000 characters per call)."""

    start: int = Field(0, ge=0, description="First character offset.")
    end: int = Field(2000, ge=0, description="Offset after the last character.")


class Grep(BaseModel):
    """Search the context with a regular expression (case-insensitive); returns matches with their
    offsets, the chunk they fall in, and the text around them."""

    pattern: str = Field(description="A Python regular expression, e.g. 'magic number' or 'born in \\d{4}'.")
    k: int = Field(20, ge=1, le=200, description="Most matches to return.")


class Split(BaseModel):
    """Cut the context into chunks; returns their ids (use them with map)."""

    strategy: Literal["paragraphs", "lines", "chars", "documents"] = Field(
        "paragraphs", description="Where chunks end: paragraph breaks, line breaks, any space, or loaded documents."
    )
    size: int | None = Field(None, ge=1, description="Most characters per chunk (default: what one sub-call reads).")


class Map(BaseModel):
    """Ask a sub-model the same instruction about each chunk, in parallel; the answers go to a named
    buffer (one item per chunk). A chunk longer than a sub-call can read is handled recursively."""

    chunk_ids: list[str] | Literal["all"] = Field("all", description="Chunk ids from split, or 'all' (latest split).")
    instruction: str = Field(description="What to find or do in each chunk, e.g. 'List every date mentioned'.")
    buffer: str = Field("results", description="Name of the buffer that receives the answers.")


class Reduce(BaseModel):
    """Have a sub-model combine a buffer's answers according to an instruction; the result goes to
    the buffer named by `into` (one item) and is returned."""

    buffer: str = Field(description="The buffer to combine.")
    instruction: str = Field(description="How to combine, e.g. 'Answer the question from these notes'.")
    into: str = Field("reduced", description="Buffer that receives the combined answer.")


class Aggregate(BaseModel):
    """Combine a buffer without a model: count (answers that found something), set (distinct
    answers), join (all answers with chunk ids), argmax (the best-scored or largest answer)."""

    buffer: str = Field(description="The buffer to combine.")
    op: Literal["count", "set", "join", "argmax"] = Field(description="The operation.")


class Submit(BaseModel):
    """Give the final answer and end the run: either `text`, or the contents of a buffer."""

    text: str | None = Field(None, description="The final answer.")
    buffer: str | None = Field(None, description="A buffer whose answers are the final answer.")


class RunPython(BaseModel):
    """Run Python in a sandbox (standard-library modules only, no network, /tmp the only writable
    folder, limited time and memory). The variable `context` holds the whole text;
    `llm_query(prompt)` asks a sub-model; print what you need to see (output is truncated);
    `submit(answer)` ends the run with that answer."""

    code: str = Field(description="Python source to run.")


TOOLS: dict[str, type[BaseModel]] = {
    "info": Info,
    "peek": Peek,
    "grep": Grep,
    "split": Split,
    "map": Map,
    "reduce": Reduce,
    "aggregate": Aggregate,
    "submit": Submit,
}


def tool_specs(*, code_mode: bool = False) -> list[dict[str, Any]]:
    """The root model's tools in the OpenAI function-calling format."""
    tools = {**TOOLS, **({"run_python": RunPython} if code_mode else {})}
    specs = []
    for name, model in tools.items():
        schema = cast(type[BaseModel], model).model_json_schema()
        schema.pop("title", None)
        schema.pop("description", None)
        description = " ".join((model.__doc__ or name).split())
        specs.append({"type": "function", "function": {"name": name, "description": description, "parameters": schema}})
    return specs


# -- what the root policy sees -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RootView:
    question: str
    info: dict[str, Any]
    messages: Sequence[AnyMessage]
    iteration: int
    depth: int
    buffers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    code_mode: bool = False


@runtime_checkable
class RootPolicy(Protocol):
    kind: str

    def turn(self, view: RootView, broker: Broker) -> AIMessage:
        """The next tool calls (an ``AIMessage`` with ``tool_calls``), or a plain answer."""
        ...

    def final(self, view: RootView, broker: Broker, reason: str) -> str:
        """The answer from what was gathered, when the run must stop (``reason`` says why)."""
        ...


@runtime_checkable
class SubReader(Protocol):
    kind: str

    def read(self, instruction: str, text: str, broker: Broker) -> SubResult: ...

    def reduce(self, instruction: str, items: Sequence[dict[str, Any]], broker: Broker) -> SubResult: ...

    def ask(self, prompt: str, broker: Broker) -> SubResult: ...


def best_gathered(buffers: dict[str, list[dict[str, Any]]]) -> str:
    """The best answer in the buffers, newest buffer first: what a stopped run can still give."""
    for items in reversed(list(buffers.values())):
        best = aggregate(items, "argmax")
        if best.value is not None:
            return str(best.value)
        joined = aggregate(items, "join")
        if joined.value:
            return str(joined.value)
    return ""


def _call(tool: str, args: dict[str, Any], call_id: str) -> dict[str, Any]:
    return {"name": tool, "args": args, "id": call_id, "type": "tool_call"}


# -- without a model ---------------------------------------------------------------------------


class HeuristicRoot:
    """The offline plan: split into pieces a sub-call can read, map the extractive reader over them,
    reduce to the best-scored answer, submit it.

    A context that would need more than ``fanout`` chunks is cut into ``fanout`` larger pieces
    instead (while depth is left), and each piece is read by a sub-run one level deeper.
    """

    kind = "heuristic"

    def __init__(self, limits: RlmLimits, *, fanout: int = 64) -> None:
        self.limits = limits
        self.fanout = fanout

    def turn(self, view: RootView, broker: Broker) -> AIMessage:
        step = f"h{view.depth}-{view.iteration}"
        if view.iteration == 0:
            size = self.limits.sub_context_chars
            chars = int(view.info.get("chars", 0))
            if math.ceil(chars / size) > self.fanout and view.depth < self.limits.max_depth:
                size = math.ceil(chars / self.fanout)
            calls = [
                _call("split", {"strategy": "paragraphs", "size": size}, f"{step}-split"),
                _call("map", {"chunk_ids": "all", "instruction": view.question, "buffer": "answers"}, f"{step}-map"),
            ]
        else:
            calls = [
                _call("reduce", {"buffer": "answers", "instruction": view.question, "into": "final"}, f"{step}-reduce"),
                _call("submit", {"buffer": "final"}, f"{step}-submit"),
            ]
        return AIMessage(content="", tool_calls=calls)

    def final(self, view: RootView, broker: Broker, reason: str) -> str:
        return best_gathered(view.buffers)


class ExtractiveReader:
    """Reads a piece without a model: its best sentence, scored by the share of the question's
    content words it contains (plus a bonus when it holds the kind of answer asked for: a date
    for "when", a number for "how many"). Scores compare across pieces, so ``reduce`` is argmax."""

    kind = "extractive"

    def __init__(self, *, min_score: float = 0.34) -> None:
        self.min_score = min_score
        """Below this a piece is taken to hold no answer (about a third of the content words)."""

    def read(self, instruction: str, text: str, broker: Broker) -> SubResult:
        wanted = terms(instruction)
        if not wanted or not text:
            return SubResult("", 0.0)
        pattern = answer_pattern(instruction)
        best, best_score = "", 0.0
        for sentence in split_sentences(text):
            if len(sentence) < 20:
                continue
            score = len(wanted & terms(sentence)) / len(wanted)
            if pattern is not None and pattern.search(sentence):
                score += 0.3
            if score > best_score:
                best, best_score = sentence, score
        if best_score < self.min_score:
            return SubResult("", best_score)
        return SubResult(best, round(best_score, 4))

    def reduce(self, instruction: str, items: Sequence[dict[str, Any]], broker: Broker) -> SubResult:
        best = aggregate(items, "argmax")
        if best.best is None:
            return SubResult("", 0.0)
        score = best.best.get("score")
        return SubResult(str(best.value), float(score) if isinstance(score, int | float) else None)

    def ask(self, prompt: str, broker: Broker) -> SubResult:
        msg = "llm_query needs a chat model; the extractive reader cannot answer free-form prompts"
        raise RuntimeError(msg)


# -- with a model ------------------------------------------------------------------------------

SUB_PROMPT = (
    "You read one piece of a long document and follow an instruction about it. Use only the piece. "
    "Answer briefly and exactly. If the piece holds nothing relevant, reply NONE."
)
REDUCE_PROMPT = (
    "You combine notes taken from the pieces of a long document. Follow the instruction using only "
    "the notes. Answer briefly and exactly."
)
ROOT_PROMPT = """You answer a question about a context that is far too long to read at once. The
context is NOT in this conversation: it lives in an environment you reach through tools. Look
first (info, peek, grep), then work on pieces: split it into chunks, map an instruction over
chunks (sub-models read them in parallel; results go to a buffer), then reduce or aggregate the
buffer. When you know the answer, call submit. Be economical: you have {iterations} turns and a
budget of sub-calls; chunks hold up to {sub_chars} characters for one sub-call."""


def _tokens(messages: Sequence[BaseMessage], reply: AIMessage) -> int:
    usage = reply.usage_metadata
    if usage and usage.get("total_tokens"):
        return int(usage["total_tokens"])
    return count_tokens_approximately(list(messages)) + count_tokens_approximately([reply])


class ModelReader:
    """Sub-calls through a chat model (the same as the root's, or a smaller one)."""

    kind = "model"

    def __init__(self, client: ModelClient) -> None:
        self.client = client

    def _complete(self, messages: list[BaseMessage], broker: Broker, tag: str) -> SubResult:
        reply = self.client.invoke(messages, broker.budget, tags=[tag])
        text = reply.text if isinstance(reply.text, str) else str(reply.content)
        return SubResult(text.strip(), None, _tokens(messages, reply))

    def read(self, instruction: str, text: str, broker: Broker) -> SubResult:
        messages: list[BaseMessage] = [
            SystemMessage(SUB_PROMPT),
            HumanMessage(f"Instruction: {instruction}\n\nPiece:\n{text}"),
        ]
        return self._complete(messages, broker, "rlm_map")

    def reduce(self, instruction: str, items: Sequence[dict[str, Any]], broker: Broker) -> SubResult:
        notes = "\n".join(f"[{i.get('chunk', '?')}] {i.get('result', '')}" for i in items)
        messages: list[BaseMessage] = [
            SystemMessage(REDUCE_PROMPT),
            HumanMessage(f"Instruction: {instruction}\n\nNotes:\n{notes}"),
        ]
        return self._complete(messages, broker, "rlm_reduce")

    def ask(self, prompt: str, broker: Broker) -> SubResult:
        return self._complete([HumanMessage(prompt)], broker, "rlm_llm_query")


class ModelRoot:
    """A tool-calling chat model drives the run."""

    kind = "model"

    def __init__(self, client: ModelClient, limits: RlmLimits) -> None:
        self.client = client
        self.limits = limits

    def _system(self) -> SystemMessage:
        return SystemMessage(
            ROOT_PROMPT.format(iterations=self.limits.max_iterations, sub_chars=self.limits.sub_context_chars)
        )

    def turn(self, view: RootView, broker: Broker) -> AIMessage:
        prompt = [self._system(), *view.messages]
        return self.client.invoke(prompt, broker.budget, tools=tool_specs(code_mode=view.code_mode), tags=["rlm_root"])

    def final(self, view: RootView, broker: Broker, reason: str) -> str:
        ask = HumanMessage(
            f"You cannot call tools any more ({reason}). Give your final answer to the question now, "
            "from what you gathered. If you could not find it, say so."
        )
        budget = broker.final_budget()
        try:
            reply = self.client.invoke([self._system(), *_closed(view.messages), ask], budget, tags=["rlm_final"])
        finally:
            broker.merge(budget)
        text = reply.text if isinstance(reply.text, str) else str(reply.content)
        return text.strip() or best_gathered(view.buffers)


def _closed(messages: Sequence[AnyMessage]) -> list[AnyMessage]:
    """The conversation without a trailing turn whose tool calls were never answered (a request
    with unanswered tool calls is invalid for OpenAI-compatible servers)."""
    kept = list(messages)
    if kept and isinstance(kept[-1], AIMessage) and kept[-1].tool_calls:
        kept.pop()
    return kept


def initial_message(question: str, info: dict[str, Any]) -> HumanMessage:
    """The root model's first message: the question and the context's metadata, not its text."""
    meta = {k: v for k, v in info.items() if k != "handle"}
    if len(meta.get("documents", [])) > 20:
        docs = meta["documents"]
        meta["documents"] = [*docs[:20], f"... {len(docs) - 20} more"]
    return HumanMessage(f"Question: {question}\n\nContext metadata:\n{json.dumps(meta)}")
