"""Where a question's conversation lives, shared by the agents that keep chat threads: a thread
in the checkpointer (``thread_id``), or the conversation sent whole (``history``, stored nowhere)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Checkpointer

Graph = CompiledStateGraph[Any, Any, Any, Any]


class ThreadedGraph:
    """One graph compiled with the checkpointer (threads) and, when there is one, once without it
    (for conversations sent whole, which need no thread store)."""

    def __init__(self, build: Callable[[Checkpointer], Graph], checkpointer: Checkpointer) -> None:
        self.checkpointer = checkpointer
        self.graph = build(checkpointer)
        self._stateless = build(None) if checkpointer is not None else self.graph

    def pick(self, thread_id: str | None, history: Sequence[BaseMessage] | None) -> tuple[Graph, str, RunnableConfig]:
        """The graph to run, the thread id it stores the run under (``""`` when none), and the
        config that names that thread.

        Raises:
            ValueError: Both ``thread_id`` and ``history`` given.
        """
        if history is not None and thread_id is not None:
            msg = "give either thread_id (the thread store keeps the conversation) or history (sent whole), not both"
            raise ValueError(msg)
        if self.checkpointer is None or history is not None:
            return self._stateless, "", {}
        thread = thread_id or uuid.uuid4().hex
        return self.graph, thread, {"configurable": {"thread_id": thread}}
