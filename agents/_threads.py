"""Where a question's conversation lives, shared by the agents that keep chat threads: a thread
in the checkpointer (``thread_id``), or the conversation sent whole (``history``, stored nowhere).

Several agents may keep their threads in one checkpointer (``arag serve`` gives the RAG and the
ReAct agent one SQLite thread store), and a client may use one thread id with both: each agent's
graph then needs a thread of its own shape. Every checkpointer keys a checkpoint by ``thread_id``,
``checkpoint_ns`` and ``checkpoint_id``, but LangGraph resets ``checkpoint_ns`` to ``""`` for a
root graph (the namespace is where a *subgraph* keeps its checkpoints), so it cannot be set in the
run config. :class:`NamespacedSaver` is a view of the shared checkpointer that stores one graph's
checkpoints under a namespace of its own and shows them to the graph as the root namespace.
Thread ids stay as the client sent them.

Each graph's threads live in the namespace of its name (``react``), except ``rag``'s, which stay
in the root namespace, where they were kept before namespaces: stored RAG threads read as before,
and tools that read a thread's root namespace see them. ReAct threads stored before namespaces
(under ``react:<id>`` in the root namespace) are not migrated.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Sequence
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Checkpointer

__all__ = ["ROOT_NAMESPACE_GRAPHS", "KeepsThreads", "NamespacedSaver", "ThreadedGraph", "thread_namespace"]

Graph = CompiledStateGraph[Any, Any, Any, Any]

ROOT_NAMESPACE_GRAPHS = frozenset({"rag"})
"""Graphs whose threads stay in the checkpointer's root namespace (see the module docstring)."""

_SEP = "|"  # LangGraph's separator of nested namespaces


class NamespacedSaver(BaseCheckpointSaver[Any]):
    """``saver`` as one graph sees it: its checkpoints kept under ``checkpoint_ns = namespace``
    (a subgraph's ``child`` under ``namespace|child``), shown to the graph as the root namespace.

    Deleting, copying or pruning a thread acts on every namespace of the thread: do it on ``saver``.
    """

    def __init__(self, saver: BaseCheckpointSaver[Any], namespace: str) -> None:
        if not namespace or _SEP in namespace:
            msg = f"a thread namespace is a non-empty name without {_SEP!r}, got {namespace!r}"
            raise ValueError(msg)
        super().__init__(serde=saver.serde)
        self.saver = saver
        self.namespace = namespace

    # -- the graph's namespaces <-> the stored ones ----------------------------------------------

    def _stored(self, config: RunnableConfig) -> RunnableConfig:
        configurable = dict(config.get("configurable") or {})
        ns = str(configurable.get("checkpoint_ns") or "")
        configurable["checkpoint_ns"] = f"{self.namespace}{_SEP}{ns}" if ns else self.namespace
        return {**config, "configurable": configurable}

    def _shown(self, config: RunnableConfig) -> RunnableConfig | None:
        """``config`` as the graph sees it; ``None`` when it is another namespace's."""
        configurable = dict(config.get("configurable") or {})
        ns = str(configurable.get("checkpoint_ns") or "")
        if ns == self.namespace:
            configurable["checkpoint_ns"] = ""
        elif ns.startswith(self.namespace + _SEP):
            configurable["checkpoint_ns"] = ns[len(self.namespace) + 1 :]
        else:
            return None
        return {**config, "configurable": configurable}

    def _tuple(self, found: CheckpointTuple | None) -> CheckpointTuple | None:
        if found is None or (config := self._shown(found.config)) is None:
            return None
        parent = self._shown(found.parent_config) if found.parent_config is not None else None
        return found._replace(config=config, parent_config=parent)

    def _where(self, config: RunnableConfig | None) -> RunnableConfig | None:
        """What to list: ``config`` in our namespace; a config naming no namespace (every
        namespace of a thread) or none (every thread) as it is, its results filtered to ours."""
        if config is None or "checkpoint_ns" not in (config.get("configurable") or {}):
            return config
        return self._stored(config)

    # -- BaseCheckpointSaver ---------------------------------------------------------------------

    @property
    def config_specs(self) -> list[Any]:
        return list(self.saver.config_specs)

    def get_next_version(self, current: Any, channel: None) -> Any:
        return self.saver.get_next_version(current, channel)

    def with_allowlist(self, extra_allowlist: Collection[tuple[str, ...]]) -> NamespacedSaver:
        inner = self.saver.with_allowlist(extra_allowlist)
        return self if inner is self.saver else NamespacedSaver(inner, self.namespace)

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self._tuple(self.saver.get_tuple(self._stored(config)))

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        until = None if before is None else self._stored(before)
        listed = self.saver.list(self._where(config), filter=filter, before=until)
        return itertools.islice((t for found in listed if (t := self._tuple(found)) is not None), limit)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        stored = self.saver.put(self._stored(config), checkpoint, metadata, new_versions)
        return self._shown(stored) or stored

    def put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        self.saver.put_writes(self._stored(config), writes, task_id, task_path)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self._tuple(await self.saver.aget_tuple(self._stored(config)))

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        until = None if before is None else self._stored(before)
        count = 0
        async for found in self.saver.alist(self._where(config), filter=filter, before=until):
            if limit is not None and count >= limit:
                return
            if (shown := self._tuple(found)) is not None:
                count += 1
                yield shown

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        stored = await self.saver.aput(self._stored(config), checkpoint, metadata, new_versions)
        return self._shown(stored) or stored

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        await self.saver.aput_writes(self._stored(config), writes, task_id, task_path)


def thread_namespace(graph_name: str) -> str:
    """The checkpoint namespace of a graph's threads: ``""`` (the root) for
    :data:`ROOT_NAMESPACE_GRAPHS`, else the graph's name."""
    return "" if graph_name in ROOT_NAMESPACE_GRAPHS else graph_name


class ThreadedGraph:
    """One graph compiled with the checkpointer (threads, in the graph's namespace: see the module
    docstring) and, when there is one, once without it (for conversations sent whole, which need
    no thread store)."""

    def __init__(self, build: Callable[[Checkpointer], Graph], checkpointer: Checkpointer) -> None:
        self.checkpointer = checkpointer
        self._stateless = build(None)
        namespace = thread_namespace(self._stateless.name)
        if isinstance(checkpointer, BaseCheckpointSaver) and namespace:
            self.graph = build(NamespacedSaver(checkpointer, namespace))
        else:
            self.graph = build(checkpointer) if checkpointer is not None else self._stateless

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


class KeepsThreads:
    """An agent whose graph keeps chat threads (the RAG and the ReAct agent): it sets
    ``self._threads`` and has the graph and the checkpointer from it."""

    _threads: ThreadedGraph

    @property
    def graph(self) -> Graph:
        """The graph, compiled with the checkpointer when there is one."""
        return self._threads.graph

    @property
    def checkpointer(self) -> Checkpointer:
        """Where the threads are kept (``None``: nowhere; a conversation is then sent whole)."""
        return self._threads.checkpointer
