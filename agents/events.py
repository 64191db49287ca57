"""One vocabulary for every agent: the events its ``stream()`` yields and the result it ends with.

```python
for event in agent.stream("When did Apollo 11 land?"):   # RagAgent, ReactAgent or RlmAgent
    if event.kind in ("step", "tool"):
        print(describe(event))          # "retrieve: 10 chunks from docs for 'Apollo 11'"
    elif event.kind == "token":
        print(event.text, end="")       # the answer as the model writes it (not verified yet)
    elif event.kind == "result":
        result = event.result           # answer, citations, exit_reason, usage, steps, thread_id, error
```

Kinds:

- ``step``: a step of the agent's graph started, ended or reported progress; ``data`` is the
  graph's event (``{"event": "step_start", "node": "retrieve"}``, ``{"event": "rlm_map", ...}``).
- ``tool``: a tool call and how it went; ``data`` has ``tool``, ``status``, ``ms`` and, where the
  agent records them, ``args``.
- ``token``: a piece of answer text as the model writes it (``text``); a later step may still
  reject it, so front ends show it as a draft.
- ``draft``: a whole answer written and not yet verified (``text``); the result carries the
  verified one (or an abstention).
- ``result``: the end; ``result`` is an :class:`AgentResult` (the agent's own subclass).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["AgentEvent", "AgentResult", "Citation", "EventKind", "describe"]

EventKind = Literal["step", "tool", "token", "draft", "result"]


@dataclass(frozen=True, slots=True)
class Citation:
    """A numbered reference of an answer: ``[number]`` in the text is this passage."""

    number: int
    chunk_id: str
    source: str
    title: str
    doc_id: str
    path: str
    text: str
    location: str = ""
    """Where in the file: ``page 3``, ``slide 2``, ``sheet Rivers`` (empty for a whole file)."""

    @classmethod
    def from_chunk(cls, number: int, chunk: Mapping[str, Any]) -> Citation:
        """Citation ``number`` of a chunk in its plain-data form (what the graphs' state and the
        search tools' artifacts hold: id, source, doc_id, title, path, text)."""
        return cls(
            number=number,
            chunk_id=str(chunk["id"]),
            source=str(chunk.get("source", "")),
            title=str(chunk.get("title", "")),
            doc_id=str(chunk.get("doc_id", "")),
            path=str(chunk.get("path", "")),
            text=str(chunk.get("text", "")),
            location=location(chunk.get("metadata") or {}),
        )

    @property
    def snippet(self) -> str:
        """The passage shortened to about 200 characters."""
        flat = " ".join(self.text.split())
        return flat if len(flat) <= 200 else flat[:199].rsplit(" ", 1)[0] + "..."

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "chunk_id": self.chunk_id,
            "source": self.source,
            "title": self.title,
            "doc_id": self.doc_id,
            "path": self.path,
            "location": self.location,
            "snippet": self.snippet,
        }


def location(metadata: Any) -> str:
    """``page 3`` / ``slide 2`` / ``sheet Rivers`` from a chunk's metadata (what the loaders keep)."""
    if not isinstance(metadata, dict):
        return ""
    for key in ("page", "slide", "sheet"):
        if metadata.get(key) not in (None, ""):
            return f"{key} {metadata[key]}"
    return ""


@dataclass(kw_only=True, slots=True)
class AgentResult:
    """What every agent's run ends with; each agent's result adds its own fields."""

    question: str
    answer: str
    """The verified answer; empty when the run abstained or failed (see ``partial_answer``)."""
    exit_reason: str
    """Why the run ended: ``answered``, ``abstained``, ``budget``, ``max_iterations``, ``max_depth``
    or ``error``, as each agent documents."""
    usage: dict[str, Any]
    """Model calls, tokens, retries and wall time of the run."""
    citations: list[Citation] = field(default_factory=list)
    """Numbered references: ``[n]`` in ``answer`` is ``citations[n - 1]``."""
    steps: list[dict[str, Any]] = field(default_factory=list)
    """What the run did, in order."""
    thread_id: str = ""
    error: str | None = None
    partial_answer: str = ""
    """The best unverified draft when the run stopped without a verified answer, or what an
    abstaining run did find."""
    short_answer: str = ""
    """The bare answer the ``answer`` leads with (a name, a date, a number), when the agent gives
    one; the eval harness scores it against short gold answers."""
    trace_id: str = ""
    """The run's OpenTelemetry trace id (32 hex digits) when tracing is on, else empty."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.answer,
            "citations": [c.as_dict() for c in self.citations],
            "exit_reason": self.exit_reason,
            "usage": self.usage,
            "steps": self.steps,
            "thread_id": self.thread_id,
            "error": self.error,
            "partial_answer": self.partial_answer,
            "short_answer": self.short_answer,
            "trace_id": self.trace_id,
        }


@dataclass(frozen=True, slots=True)
class AgentEvent:
    """One item of an agent's ``stream()``; see the module docstring for the kinds."""

    kind: EventKind
    data: dict[str, Any] = field(default_factory=dict)
    text: str = ""
    result: AgentResult | None = None


def describe(event: AgentEvent) -> str:
    """A ``step`` or ``tool`` event as one status line, whichever agent sent it.

    ``analyze ...`` when a step starts, ``analyze: 2 queries (3 ms)`` when it ends, ``retrieve:
    10 chunks from docs for 'query'``, ``search_docs({"query": "x"}): success`` for a tool call,
    ``rlm_map: {"depth": 0, "chunks": 12}`` for the recursive agent's progress.
    """
    data = event.data
    if event.kind == "tool":
        if "args" in data:
            return f"{data.get('tool')}({json.dumps(data['args'], default=str)[:200]}): {data.get('status')}"
        ms = data.get("ms")
        return f"{data.get('tool')}: {data.get('status')}" + (f" ({ms:.0f} ms)" if isinstance(ms, int | float) else "")
    kind = data.get("event")
    node = str(data.get("node", "step"))
    if kind == "step_start":
        return f"{node} ..."
    if kind == "tools_unavailable":
        return f"{node}: {data.get('reason')}"
    if kind == "retrieved":
        return f"retrieve: {data.get('chunks', 0)} chunks from {data.get('source')} for {data.get('query')!r}"
    if kind == "step_end":
        detail = str(data.get("detail", "")).strip()
        ms = data.get("ms")
        timing = f" ({ms:.0f} ms)" if isinstance(ms, int | float) else ""
        return f"{node}: {detail}{timing}" if detail else f"{node}{timing}"
    fields = {k: v for k, v in data.items() if k != "event" and isinstance(v, str | int | float)}
    return f"{kind or 'step'}: {json.dumps(fields)[:200]}"
