"""``ReactAgent``: a tool-calling agent with a search tool per source plus your own tools.

```python
from agents import ReactAgent

with ReactAgent.from_settings(tools=[my_calculator]) as agent:   # needs ARAG_CHAT_MODEL
    result = agent.invoke("How many eggs does a queen lay in a week?")
    print(result.answer, result.tool_calls, result.exit_reason)
```
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.tools import BaseTool
from langgraph.types import Checkpointer

from agents._owner import OwnsResources
from agents._threads import ThreadedGraph
from agents.components import build_embeddings, build_retriever, build_store
from agents.models import build_chat_model
from agents.rag_agent import limits_from_settings
from agents.rlm_agent import RlmAgent, read_document_tool
from agents.settings import Settings
from graphs._state import RESET
from graphs.budget import Budget, Limits
from graphs.llm import ModelClient, RetryPolicy
from graphs.react import DEFAULT_SYSTEM_PROMPT, ReactContext, build_react_graph, source_tools
from tools.retrieval import Retriever

__all__ = ["ReactAgent", "ReactResult"]


@dataclass(slots=True)
class ReactResult:
    question: str
    answer: str
    exit_reason: str
    """``answered``, ``budget``, ``max_iterations`` or ``error``."""
    usage: dict[str, Any]
    tool_calls: list[dict[str, Any]]
    """Each tool call: tool, args, status (success, error, invalid_arguments), ms."""
    thread_id: str = ""
    error: str | None = None
    messages: list[BaseMessage] = field(default_factory=list)
    """The run's conversation: question, model turns, tool calls and their results."""


class ReactAgent(OwnsResources):
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
    ) -> None:
        self.client = ModelClient(chat_model, retry)
        self.tools = [*(source_tools(retriever) if retriever is not None else []), *tools]
        if retriever is not None and read_documents is not False:
            reader = read_documents if isinstance(read_documents, RlmAgent) else RlmAgent(chat_model, retry=retry)
            self.tools.append(read_document_tool(retriever, reader))
        if not self.tools:
            msg = "the ReAct agent has no tools: give it a retriever (one search tool per source) or tools=[...]"
            raise ValueError(msg)
        names = [t.name for t in self.tools]
        if len(set(names)) != len(names):
            msg = f"tool names must be unique, got {names}; rename a tool or a source"
            raise ValueError(msg)
        self.limits = limits or Limits()
        self.max_turns = max_turns
        self.system_prompt = system_prompt
        self.checkpointer = checkpointer
        self._threads = ThreadedGraph(lambda saver: build_react_graph(checkpointer=saver), checkpointer)
        self.graph = self._threads.graph
        self._owned: list[Any] = []

    @classmethod
    def from_settings(
        cls,
        settings: Settings | None = None,
        *,
        chat_model: BaseChatModel | None = None,
        tools: Sequence[BaseTool] = (),
    ) -> ReactAgent:
        settings = settings or Settings()
        model = chat_model if chat_model is not None else build_chat_model(settings)
        if model is None:
            msg = (
                "the ReAct agent needs a tool-calling chat model: set ARAG_CHAT_MODEL (and ARAG_OPENAI_BASE_URL "
                "for a local server), or use RagAgent, which also works without a model"
            )
            raise ValueError(msg)
        store = build_store(settings)
        try:
            retriever = build_retriever(settings, store, build_embeddings(settings))
            agent = cls(
                model,
                retriever=retriever,
                tools=tools,
                limits=limits_from_settings(settings),
                retry=RetryPolicy(max_attempts=settings.model_max_attempts),
                read_documents=RlmAgent.from_settings(settings, chat_model=model),
            )
        except BaseException:
            store.close()
            raise
        agent._owned = [store]
        return agent

    def invoke(
        self, question: str, *, thread_id: str | None = None, history: Sequence[BaseMessage] | None = None
    ) -> ReactResult:
        """Answer one question; ``thread_id`` continues a stored thread, ``history`` is the
        conversation sent whole (as in :meth:`RagAgent.invoke <agents.rag_agent.RagAgent.invoke>`)."""
        result: ReactResult | None = None
        for event in self.stream(question, thread_id=thread_id, history=history):
            if event["event"] == "result":
                result = event["result"]
        assert result is not None  # stream always ends with the result
        return result

    def stream(
        self, question: str, *, thread_id: str | None = None, history: Sequence[BaseMessage] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Progress events (``step_start`` per model turn, ``tool`` per tool call) as they happen,
        then ``{"event": "result", "result": ReactResult}``."""
        if not question.strip():
            msg = "the question is empty"
            raise ValueError(msg)
        budget = Budget(self.limits)
        context = ReactContext(
            client=self.client,
            tools=self.tools,
            limits=self.limits,
            budget=budget,
            max_turns=self.max_turns,
            system_prompt=self.system_prompt,
        )
        graph, thread, config = self._threads.pick(thread_id, history)
        config["recursion_limit"] = 2 * self.max_turns + 6
        start = {
            "messages": [*(history or []), HumanMessage(question)],
            "turns": 0,
            "exit_reason": "",
            "error": None,
            "tool_calls": [RESET],
        }
        state: dict[str, Any] = {}
        for mode, data in graph.stream(start, config, context=context, stream_mode=["custom", "values"]):
            if mode == "custom":
                yield dict(cast(dict[str, Any], data))
            else:
                state = cast(dict[str, Any], data)
        last = state["messages"][-1]
        answer = last.text if isinstance(last, AIMessage) and not last.tool_calls else ""
        result = ReactResult(
            question=question,
            answer=answer if isinstance(answer, str) else str(answer),
            exit_reason=state.get("exit_reason", "error"),
            usage={**budget.usage.as_dict(), "seconds": round(budget.elapsed, 3)},
            tool_calls=list(state.get("tool_calls", [])),
            thread_id=thread,
            error=state.get("error"),
            messages=list(state["messages"]),
        )
        yield {"event": "result", "result": result}
