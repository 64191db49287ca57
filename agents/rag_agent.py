"""``RagAgent``: the agentic RAG graph behind a small API.

```python
from agents import RagAgent

with RagAgent.from_settings() as agent:      # embedded Qdrant; heuristic strategies if no model set
    result = agent.invoke("When did Apollo 11 land on the Moon?")
    print(result.answer, result.citations, result.exit_reason, result.usage, result.steps)
```
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage
from langgraph.types import Checkpointer, StreamMode

from agents._owner import OwnsResources
from agents._spans import end_run_span, run_span
from agents._threads import KeepsThreads, ThreadedGraph
from agents.events import AgentEvent, AgentResult, Citation
from agents.settings import Settings
from graphs.budget import Budget, Limits
from graphs.heuristic import heuristic_strategies
from graphs.llm import ModelClient, RetryPolicy
from graphs.llm_strategies import llm_strategies
from graphs.rag import RagContext, build_rag_graph, initial_state, recursion_limit
from graphs.strategies import Strategies
from tools import tracing
from tools.retrieval import Retriever
from tools.store import VectorStore

__all__ = ["RagAgent", "RagResult"]


@dataclass(kw_only=True, slots=True)
class RagResult(AgentResult):
    """The outcome of one question: :class:`~agents.events.AgentResult` plus what RAG knows.

    ``exit_reason`` is ``answered``, ``abstained``, ``budget``, ``max_iterations`` or ``error``;
    ``steps`` are what each node did, in order (node, detail, ms, ...).
    """

    standalone_question: str = ""
    strategies: str = "heuristic"
    retrieved: list[str] = field(default_factory=list)
    """Documents (``source/doc_id``) in the order retrieval ranked them (for retrieval metrics)."""
    evidence: list[dict[str, Any]] = field(default_factory=list)
    """The passages the answer was written from: id, source, doc_id, title, text."""

    def as_dict(self) -> dict[str, Any]:
        return {
            **AgentResult.as_dict(self),
            "standalone_question": self.standalone_question,
            "strategies": self.strategies,
            "retrieved": self.retrieved,
            "evidence": self.evidence,
        }


class RagAgent(OwnsResources, KeepsThreads):
    """Answers questions over the store's sources with the agentic RAG graph.

    Args:
        retriever: Searches the sources (its ``sources`` narrows which ones the agent may use).
        chat_model: A LangChain chat model; ``None`` uses the heuristic (extractive) strategies.
        strategies: Replaces the strategy set chosen from ``chat_model``.
        limits: Per-question limits (iterations, model calls, tokens, deadline).
        checkpointer: Keeps chat threads; ``None`` keeps none (each question stands alone).
        retry: Retry policy of model calls.
    """

    def __init__(
        self,
        retriever: Retriever,
        *,
        chat_model: BaseChatModel | None = None,
        strategies: Strategies | None = None,
        limits: Limits | None = None,
        checkpointer: Checkpointer = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.retriever = retriever
        self.limits = limits or Limits()
        self.client = ModelClient(chat_model, retry) if chat_model is not None else None
        if strategies is None:
            strategies = (
                llm_strategies(self.client, retriever) if self.client is not None else heuristic_strategies(retriever)
            )
        self.strategies = strategies
        self._threads = ThreadedGraph(lambda saver: build_rag_graph(checkpointer=saver), checkpointer)

    @classmethod
    def from_settings(
        cls,
        settings: Settings | None = None,
        *,
        chat_model: BaseChatModel | None = None,
        threads: bool = True,
        sources: list[str] | None = None,
    ) -> RagAgent:
        """Build store, embeddings, model and thread store from settings (``ARAG_*``, ``.env``)
        through :func:`agents.build.build_agents`; the agent owns (and closes) them.

        Args:
            settings: Defaults to ``Settings()``.
            chat_model: Overrides the model of the settings.
            threads: Keep chat threads (SQLite, ``ARAG_THREADS_PATH``; Postgres with ``ARAG_THREADS_URL``).
            sources: Search only these sources.
        """
        from agents.build import build_agents  # here: agents.build imports this module

        built = build_agents(settings, chat_model=chat_model, threads=threads, sources=sources)
        built.rag.owned = built.owned
        return built.rag

    @property
    def store(self) -> VectorStore:
        return self.retriever.store

    def thread_messages(self, thread_id: str) -> list[BaseMessage]:
        """The questions and answers of a stored thread, oldest first (empty for an unknown thread)."""
        if self.checkpointer is None:
            msg = "this agent keeps no threads; build it with a checkpointer (RagAgent.from_settings keeps them)"
            raise ValueError(msg)
        snapshot = self.graph.get_state({"configurable": {"thread_id": thread_id}})
        return list(snapshot.values.get("messages", []))

    def invoke(
        self, question: str, *, thread_id: str | None = None, history: Sequence[BaseMessage] | None = None
    ) -> RagResult:
        """Answer one question.

        Args:
            question: The question (a follow-up is resolved against the conversation).
            thread_id: A thread kept by the checkpointer; the question continues it.
            history: The conversation so far, sent whole (earlier questions and answers), as chat
                front ends send it; nothing is stored. Not together with ``thread_id``.
        """
        result = None
        for event in self.stream(question, thread_id=thread_id, history=history, tokens=False):
            if event.kind == "result":
                result = event.result
        assert isinstance(result, RagResult)  # stream always ends with the result
        return result

    def stream(
        self,
        question: str,
        *,
        thread_id: str | None = None,
        history: Sequence[BaseMessage] | None = None,
        tokens: bool = True,
    ) -> Iterator[AgentEvent]:
        """Run the graph, yielding step events and answer tokens as they happen, then the result.

        ``thread_id`` and ``history`` are as in :meth:`invoke`.
        """
        if not question or not question.strip():
            msg = "the question is empty; ask something, e.g. agent.invoke('What is ...?')"
            raise ValueError(msg)
        budget = Budget(self.limits)
        context = RagContext(retriever=self.retriever, strategies=self.strategies, limits=self.limits, budget=budget)
        graph, thread, config = self._threads.pick(thread_id, history)
        config["recursion_limit"] = recursion_limit(self.limits)
        start = initial_state(question, history)
        modes: list[StreamMode] = ["custom", "values", *(["messages"] if tokens else [])]  # type: ignore[list-item]
        state: dict[str, Any] = {}
        draft: str | None = None  # the last draft seen; the first state may hold the thread's last one
        root = run_span("rag", question, thread)
        parts = tracing.stepped(graph.stream(start, config, context=context, stream_mode=modes), root)
        try:
            for part in parts:
                mode, chunk = cast(tuple[str, Any], part)
                if mode == "custom":
                    yield AgentEvent("step", data=dict(chunk))
                elif mode == "values":
                    written = (chunk.get("draft") or {}).get("text")
                    if state and written and written != draft:  # the answer node wrote one; validate is next
                        yield AgentEvent("draft", text=written)
                    draft, state = written, chunk
                elif mode == "messages":
                    message, metadata = chunk
                    if (
                        metadata.get("langgraph_node") == "answer"
                        and isinstance(message, AIMessageChunk)
                        and message.text
                    ):
                        yield AgentEvent("token", text=message.text)
        except BaseException:
            end_run_span(root, None, budget)
            raise
        usage = budget.report()
        citations = [Citation.from_chunk(i, c) for i, c in enumerate(state.get("citations", []), 1)]
        result = RagResult(
            question=question,
            answer=state.get("answer", ""),
            citations=citations,
            exit_reason=state.get("exit_reason", "error"),
            usage=usage,
            steps=[*state.get("steps", []), *budget.fallback_steps()],
            standalone_question=state.get("standalone", question),
            thread_id=thread,
            partial_answer=state.get("partial_answer", ""),
            short_answer=state.get("short_answer", ""),
            error=state.get("error"),
            strategies=self.strategies.kind,
            retrieved=list(state.get("retrieved_docs", [])),
            evidence=[
                {k: c[k] for k in ("id", "source", "doc_id", "title", "text")} for c in state.get("evidence", [])
            ],
            trace_id=tracing.trace_id_of(root) or "",
        )
        end_run_span(root, result, budget)
        yield AgentEvent("result", result=result)
