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
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, cast, runtime_checkable

from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.messages.utils import count_tokens_approximately
from pydantic import BaseModel, Field

from graphs.broker import Broker, RlmLimits, SubResult
from graphs.llm import ModelClient
from tools.context import aggregate, record_pattern
from tools.extractive import answer_pattern, split_sentences
from tools.questions import (
    entities,
    find_spans,
    modifier_conflicts,
    plural_pattern,
    read_question,
    terms,
    verb_terms,
)

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
    """Search the context with a regular expression (case-insensitive unless told); returns matches
    with their offsets, the chunk they fall in, and the text around them. With `buffer`, every
    match (up to 10,000) also goes into that buffer for aggregate: the match itself (its `value`
    group or first group, if the pattern has groups), or the line or sentence it is in."""

    pattern: str = Field(description="A Python regular expression, e.g. 'magic number' or 'born in \\d{4}'.")
    k: int = Field(20, ge=1, le=200, description="Most matches to return.")
    buffer: str | None = Field(None, description="Also put every match into this buffer.")
    unit: Literal["match", "line", "sentence"] = Field("match", description="What a buffer item holds.")
    ignore_case: bool = Field(True, description="Match regardless of case.")


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
    """Combine a buffer without a model: count (answers that found something), distinct (how many
    different answers), set (the different answers), join (all answers with chunk ids), argmax
    (the best-scored or largest answer), most / least (the most / least frequent answer and its
    count), sum (of the first number in each answer)."""

    buffer: str = Field(description="The buffer to combine.")
    op: Literal["count", "distinct", "set", "join", "argmax", "most", "least", "sum"] = Field(
        description="The operation."
    )


class Submit(BaseModel):
    """Give the final answer and end the run: either `text`, or the contents of a buffer. When the
    context does not answer the question, set `abstain` with the `reason`, and put what you did
    find in `text`."""

    text: str | None = Field(None, description="The final answer (with abstain: what was found).")
    buffer: str | None = Field(None, description="A buffer whose answers are the final answer.")
    short: str | None = Field(None, description="The bare answer (a name, date or number) the text leads with.")
    abstain: bool = Field(False, description="The question cannot be answered from the context.")
    reason: str | None = Field(None, description="Why not (with abstain).")


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
    """The offline plan, by the form of the question (:func:`tools.questions.read_question`):

    - **lookup**: split into pieces a sub-call can read, map the extractive reader over them,
      reduce to the best-scored sentence; it is the answer only if it holds a span of the asked
      kind (a year for "when", a number for "how many"...) and mentions the question's rare words
      (each missing word is counted with ``grep``; one the context rarely uses means the sentence
      is about something else). The answer leads with the span, then the sentence.
    - **chain** ("where was the designer of the Lumen bridge born?"): the lookup finds the first
      hop; the names it holds that the question does not are the bridge; ``grep`` finds the
      sentences naming the bridge, and the one with a span of the asked kind answers, up to
      ``max_hops`` hops. The answer shows the chain; every hop is a turn in the trace.
    - **aggregate** ("how many distinct vessels are recorded?", "list all...", "which ... most
      often", "... in total"): ``grep`` the lines mentioning the record word into a buffer,
      find the pattern the records share (:func:`tools.context.record_pattern`), ``grep`` its
      values into a buffer, ``aggregate`` them (distinct, set, count, most, least, sum).
    - anything else (summaries, explanations, comparisons), or no evidence of the asked kind:
      ``submit`` with ``abstain`` and the reason; what was found is the partial answer.

    Sub-runs (pieces longer than a sub-call may read) run the plain lookup plan and hand their
    best sentence up. A context that would need more than ``fanout`` chunks is cut into
    ``fanout`` larger pieces instead (while depth is left). The plan's progress rides in each
    turn's ``additional_kwargs["plan"]``, so the policy itself keeps no state between turns.
    """

    kind = "heuristic"

    def __init__(self, limits: RlmLimits, *, fanout: int = 64, max_hops: int = 3, common: int = 20) -> None:
        self.limits = limits
        self.fanout = fanout
        self.max_hops = max_hops
        """Bridges followed after the first hop of a chain."""
        self.common = common
        """A question word the best sentence lacks is harmless if the context uses it this often
        (it is wording, like "code" or "access"); a rarer one names something else."""

    # -- turns -----------------------------------------------------------------------------

    def turn(self, view: RootView, broker: Broker) -> AIMessage:
        plan = _plan(view.messages)
        if not plan:
            question = read_question(view.question)
            form = "lookup" if view.depth > 0 else question.form
            plan = {"form": form, "stage": "start"}
        step = f"h{view.depth}-{view.iteration}"
        stage = plan["stage"]
        if stage == "start":
            stage = {"aggregate": "aggregate", "chain": "chain"}.get(plan["form"], "start")
        stages: dict[str, _Stage] = {
            "start": self._read,  # lookups, comparisons, and what will be declined
            "read": self._reduce,
            "reduce": self._judge,
            "words": self._weigh,
            "chain": self._chain,
            "anchor": self._anchor,
            "first": self._first,
            "hop": self._follow,
            "aggregate": self._mentions,
            "mentions": self._records,
            "values": self._combine,
        }
        if stage not in stages:
            return _abstain(step, plan, "", f"offline plan in an unknown stage {stage!r}")
        return stages[stage](view, plan, step)

    def final(self, view: RootView, broker: Broker, reason: str) -> str:
        return best_gathered(view.buffers)

    # -- lookups and chains ---------------------------------------------------------------------

    def _read(self, view: RootView, plan: dict[str, Any], step: str) -> AIMessage:
        size = self.limits.sub_context_chars
        chars = int(view.info.get("chars", 0))
        if math.ceil(chars / size) > self.fanout and view.depth < self.limits.max_depth:
            size = math.ceil(chars / self.fanout)
        calls = [
            _call("split", {"strategy": "paragraphs", "size": size}, f"{step}-split"),
            _call("map", {"chunk_ids": "all", "instruction": view.question, "buffer": "answers"}, f"{step}-map"),
        ]
        return _turn(calls, {**plan, "stage": "read"}, f"offline plan: {plan['form']}; reading every piece")

    def _reduce(self, view: RootView, plan: dict[str, Any], step: str) -> AIMessage:
        calls = [
            _call("reduce", {"buffer": "answers", "instruction": view.question, "into": "final"}, f"{step}-reduce")
        ]
        if view.depth > 0:  # a sub-run hands its best sentence up
            calls.append(_call("submit", {"buffer": "final"}, f"{step}-submit"))
        return _turn(calls, {**plan, "stage": "reduce"}, "")

    def _chain(self, view: RootView, plan: dict[str, Any], step: str) -> AIMessage:
        words = sorted(terms(view.question) - _GENERIC)
        return self._count(view, {**plan, "stage": "anchor"}, step, words)

    def _judge(self, view: RootView, plan: dict[str, Any], step: str) -> AIMessage:
        final = view.buffers.get("final") or [{}]
        best = str(final[0].get("result") or "")
        question = read_question(view.question)
        if plan["form"] == "unsupported":
            return _abstain(step, plan, best, question.reason)
        if not best:
            return _abstain(step, plan, "", "nothing in the context matches the question")
        if plan["form"] == "chain":
            return self._hop(view, {**plan, "chain": [best], "hops": 0}, step, best)
        spans = find_spans(best, question.kind, view.question)
        if not spans:
            what = question.kind or "answer"
            return _abstain(step, plan, best, f"the best passage holds no {what} for what was asked")
        conflicts = modifier_conflicts(view.question, best)
        if conflicts:
            return _abstain(step, plan, best, f"the best passage is about something else than {', '.join(conflicts)}")
        missing = sorted(terms(view.question) - terms(best) - _GENERIC - verb_terms(view.question))
        if not missing:
            return _answer(step, plan, spans[0], [best])
        plan = {**plan, "stage": "words", "best": best, "span": spans[0]}
        return self._count(view, plan, step, missing, f"the best sentence lacks {', '.join(missing)}")

    def _count(self, view: RootView, plan: dict[str, Any], step: str, words: list[str], why: str = "") -> AIMessage:
        """How often the context uses each of ``words`` (stems): one grep each, read next turn."""
        words = words[:MAX_WORDS]
        stems = _stem_prefixes(view.question)
        calls = [
            _call("grep", {"pattern": rf"\b{re.escape(stems.get(w, w))}", "k": 1}, f"{step}-count-{i}")
            for i, w in enumerate(words)
        ]
        return _turn(calls, {**plan, "words": words}, f"{why + ': ' if why else ''}how common are {', '.join(words)}?")

    def _anchor(self, view: RootView, plan: dict[str, Any], step: str) -> AIMessage:
        """A chain's first hop: the sentences holding any of its three rarest words that the
        context holds at all (ranked next turn by all the question's words, rare ones weighing most)."""
        counts = dict(zip(plan["words"], _grep_counts(view.messages), strict=False))
        present = [w for n, w in sorted((n, w) for w, n in counts.items() if n > 0)]
        if not present:
            return _abstain(step, plan, "", "the context mentions none of the question's words")
        stems = _stem_prefixes(view.question)
        rarest = [stems.get(w, w) for w in present[:3]]
        pattern = r"\b(?:" + "|".join(re.escape(w) for w in rarest) + ")"
        call = _call("grep", {"pattern": pattern, "k": 5, "buffer": "first", "unit": "sentence"}, f"{step}-first")
        plan = {**plan, "stage": "first", "counts": counts}
        return _turn([call], plan, f"first hop: sentences with {', '.join(rarest)}")

    def _first(self, view: RootView, plan: dict[str, Any], step: str) -> AIMessage:
        sentences = list(dict.fromkeys(str(i.get("result", "")) for i in view.buffers.get("first", [])))
        weights = _weights(plan["counts"])
        ranked = sorted(sentences, key=lambda s: -sum(weights.get(t, 0.0) for t in terms(s)))
        if not ranked:
            return _abstain(step, plan, "", "nothing in the context matches the question")
        return self._hop(view, {**plan, "chain": [ranked[0]], "hops": 0}, step, ranked[0])

    def _weigh(self, view: RootView, plan: dict[str, Any], step: str) -> AIMessage:
        counts = _grep_counts(view.messages)
        rare = [w for w, n in zip(plan["words"], counts, strict=False) if n < self.common]
        if rare:
            return _abstain(step, plan, plan["best"], f"the best passage does not mention {', '.join(rare)}")
        return _answer(step, plan, plan["span"], [plan["best"]])

    def _hop(self, view: RootView, plan: dict[str, Any], step: str, sentence: str) -> AIMessage:
        """Follow the names of ``sentence`` that the question and the chain do not hold yet."""
        known = " ".join([view.question, *plan["chain"][:-1], *plan.get("bridges", [])])
        bridges = [e for e in entities(sentence) if terms(e) and not terms(e) <= terms(known)]
        if not bridges:
            return _abstain(step, plan, " ".join(plan["chain"]), "the first hop names no one to follow")
        if plan["hops"] >= self.max_hops:
            return _abstain(step, plan, " ".join(plan["chain"]), f"no answer within {self.max_hops} hops")
        bridge = bridges[0]
        pattern = rf"\b{re.escape(bridge)}\b"
        hop = plan["hops"] + 1
        call = _call(
            "grep",
            {"pattern": pattern, "k": 5, "buffer": f"hop{hop}", "unit": "sentence", "ignore_case": False},
            f"{step}-hop{hop}",
        )
        plan = {**plan, "stage": "hop", "hops": hop, "bridges": [*plan.get("bridges", []), bridge]}
        return _turn([call], plan, f"hop {hop}: follow {bridge!r} from {sentence[:120]!r}")

    def _follow(self, view: RootView, plan: dict[str, Any], step: str) -> AIMessage:
        question = read_question(view.question)
        chain: list[str] = plan["chain"]
        seen = {" ".join(s.split()) for s in chain}
        sentences = [str(i.get("result", "")) for i in view.buffers.get(f"hop{plan['hops']}", [])]
        sentences = [s for s in dict.fromkeys(sentences) if s and s not in seen]
        if not sentences:
            return _abstain(step, plan, " ".join(chain), f"nothing else in the context names {plan['bridges'][-1]!r}")
        open_words = terms(view.question) - set().union(*(terms(s) for s in chain)) - _GENERIC
        bridge = plan["bridges"][-1]
        weights = _weights(plan.get("counts", {}))

        def score(sentence: str) -> float:
            found = sum(weights.get(t, 1.0) for t in open_words & terms(sentence))
            return found + (0.5 if find_spans(sentence, question.kind, bridge) else 0.0)

        ranked = sorted(sentences, key=score, reverse=True)
        for sentence in ranked:
            spans = [s for s in find_spans(sentence, question.kind, f"{view.question} {bridge}") if s not in bridge]
            if spans and (open_words & terms(sentence) or score(sentence) == score(ranked[0])):
                return _answer(step, plan, spans[0], [*chain, sentence])
        return self._hop(view, {**plan, "chain": [*chain, ranked[0]]}, step, ranked[0])

    # -- aggregation over records ----------------------------------------------------------------

    def _mentions(self, view: RootView, plan: dict[str, Any], step: str) -> AIMessage:
        ask = read_question(view.question).aggregate
        assert ask is not None
        call = _call(
            "grep",
            {"pattern": plural_pattern(ask.target), "k": 5, "buffer": "mentions", "unit": "sentence"},
            f"{step}-mentions",
        )
        plan = {**plan, "stage": "mentions", "op": ask.op, "target": ask.target}
        return _turn([call], plan, f"offline plan: {ask.op} over the records of {ask.target!r}")

    def _records(self, view: RootView, plan: dict[str, Any], step: str) -> AIMessage:
        lines = [str(i.get("result", "")) for i in view.buffers.get("mentions", [])]
        found = record_pattern(lines, plural_pattern(plan["target"]), numeric=plan["op"] == "sum")
        if found is None:
            partial = " ".join(lines[:3])
            return _abstain(step, plan, partial, f"found no repeated records of {plan['target']!r} to count")
        call = _call("grep", {"pattern": found.regex, "k": 5, "buffer": "values", "unit": "match"}, f"{step}-values")
        plan = {**plan, "stage": "values", "frame": found.frame}
        return _turn([call], plan, f"records look like {found.frame!r} ({found.lines} of {len(lines)} mentions)")

    def _combine(self, view: RootView, plan: dict[str, Any], step: str) -> AIMessage:
        values = view.buffers.get("values", [])
        op, target, frame = plan["op"], plan["target"], plan["frame"]
        records = len(values)
        if not records:
            return _abstain(step, plan, "", f"the records of {target!r} could not be read")
        tool_op = {"list": "set"}.get(op, op)
        result = aggregate(values, tool_op).value
        distinct = aggregate(values, "set").value
        where = f"{records} records like {frame!r}"
        if op == "distinct":
            text = f"{result}\n\n{result} distinct {target} in {where}: {', '.join(distinct)}."
        elif op == "list":
            text = f"{', '.join(distinct)}\n\n{len(distinct)} distinct {target} in {where}."
        elif op == "count":
            text = f"{result}\n\n{result} records of {target} ({where})."
        elif op in ("most", "least"):
            ties = f", tied with {', '.join(result['ties'])}" if result["ties"] else ""
            often = "most" if op == "most" else "least"
            text = (
                f"{result['value']}\n\n{result['value']} is the {often} frequent ({result['count']} of {where}{ties})."
            )
        else:
            skipped = f"; {result['skipped']} without a number" if result["skipped"] else ""
            text = f"{result['sum']}\n\nThe sum of {result['numbers']} counts of {target} in {where}{skipped}."
        calls = [
            _call("aggregate", {"buffer": "values", "op": tool_op}, f"{step}-aggregate"),
            _call("submit", {"text": text, "short": text.split("\n\n", 1)[0]}, f"{step}-submit"),
        ]
        return _turn(calls, {**plan, "stage": "done"}, f"{op} of {records} values")


_Stage = Callable[[RootView, dict[str, Any], str], AIMessage]
"""One step of the offline plan: the next turn from the view, the plan so far and the step id."""
MAX_WORDS = 8
"""Question words whose frequency a lookup checks with grep."""
_GENERIC = terms(
    "person people one someone thing things name called named kept keep keeps find found located place record "
    "recorded mention mentioned text context document essay"
)
"""Question words that never decide whether a sentence is about the thing asked."""


def _stem_prefixes(text: str) -> dict[str, str]:
    """Each content word's stem -> what to grep for it: the start the word and its stem share
    ("ivory"/"ivori" -> "ivor"), so every form of the word matches."""
    out: dict[str, str] = {}
    for word in re.findall(r"[A-Za-z][A-Za-z'-]*", text):
        for stem in terms(word):
            shared = 0
            while shared < min(len(stem), len(word)) and stem[shared] == word[shared].lower():
                shared += 1
            out.setdefault(stem, word[: max(shared, 3)].lower())
    return out


def _weights(counts: dict[str, int]) -> dict[str, float]:
    """A word's weight by how rarely the context uses it (a word it never uses weighs nothing)."""
    return {w: 1.0 / math.log(2 + n) for w, n in counts.items() if n > 0}


def _plan(messages: Sequence[AnyMessage]) -> dict[str, Any]:
    for message in reversed(messages):
        if isinstance(message, AIMessage):
            return dict(message.additional_kwargs.get("plan") or {})
    return {}


def _turn(calls: list[dict[str, Any]], plan: dict[str, Any], note: str) -> AIMessage:
    return AIMessage(content=note, tool_calls=calls, additional_kwargs={"plan": plan})


def _answer(step: str, plan: dict[str, Any], span: str, chain: list[str]) -> AIMessage:
    text = f"{span}\n\n" + " → ".join(chain) if len(chain) > 1 else f"{span}\n\n{chain[0]}"
    note = "answer: " + (f"chain of {len(chain)} sentences" if len(chain) > 1 else "the best sentence holds it")
    submit = _call("submit", {"text": text, "short": span}, f"{step}-submit")
    return _turn([submit], {**plan, "stage": "done"}, note)


def _abstain(step: str, plan: dict[str, Any], partial: str, reason: str) -> AIMessage:
    args = {"text": partial, "abstain": True, "reason": reason}
    return _turn([_call("submit", args, f"{step}-abstain")], {**plan, "stage": "done"}, f"abstain: {reason}")


_COUNT = re.compile(r"^(\d+)\+? matches")


def _grep_counts(messages: Sequence[AnyMessage]) -> list[int]:
    """Match counts of the grep calls of the last turn, in call order."""
    last = next((i for i in range(len(messages) - 1, -1, -1) if isinstance(messages[i], AIMessage)), None)
    if last is None:
        return []
    replies = {m.tool_call_id: str(m.content) for m in messages[last + 1 :] if isinstance(m, ToolMessage)}
    counts = []
    for call in cast(AIMessage, messages[last]).tool_calls:
        found = _COUNT.match(replies.get(call.get("id") or "", ""))
        counts.append(int(found.group(1)) if found else 0)
    return counts


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
