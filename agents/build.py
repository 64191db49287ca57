"""The one place that turns :class:`~agents.settings.Settings` into agents.

```python
from agents.build import build_agents

with build_agents(Settings()) as agents:          # one store, retriever, model and thread store
    agents.rag.invoke("When did Apollo 11 land?")
    agents.rlm.invoke("What is the magic number?", context=text)
    agents.react                                   # None without ARAG_CHAT_MODEL; why: agents.unavailable
```

The agents' ``from_settings`` class methods, the CLI, the HTTP server, the LangGraph server graphs
and the eval harness all build through these functions, so an agent built anywhere gets the same
limits, retry policy, model and sandbox settings. Parts (store, embeddings, retriever, ingestor,
chat model) come from :mod:`agents.components` and :mod:`agents.models`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool
from langgraph.types import Checkpointer
from pydantic import BaseModel

from agents._owner import OwnsResources
from agents._thread_store import ThreadStore, open_thread_store
from agents.components import build_embeddings, build_retriever, build_store
from agents.models import build_chat_model
from agents.rag_agent import RagAgent
from agents.settings import Settings
from graphs.broker import RlmLimits
from graphs.budget import Limits
from graphs.llm import RetryPolicy
from graphs.react import search_tool_name
from tools.retrieval import Retriever
from tools.store import StoreError

if TYPE_CHECKING:  # the recursive and ReAct agents load when first built: `arag ask` needs neither
    from _typeshed import DataclassInstance

    from agents.react_agent import ReactAgent
    from agents.rlm_agent import RlmAgent

_L = TypeVar("_L", bound="DataclassInstance")

__all__ = [
    "Agents",
    "build_agents",
    "build_rag_agent",
    "build_react_agent",
    "build_rlm_agent",
    "rag_limits",
    "retry_policy",
    "rlm_limits",
]

REACT_NEEDS_A_MODEL = (
    "the ReAct agent needs a tool-calling chat model: set ARAG_CHAT_MODEL (and ARAG_OPENAI_BASE_URL for a "
    "local server), or use the RAG agent, which also works without a model"
)


def rag_limits(settings: Settings) -> Limits:
    """Per-question limits of the RAG and ReAct agents (``settings.limits``)."""
    return _from_group(Limits, settings.limits)


def rlm_limits(settings: Settings) -> RlmLimits:
    """The recursive agent's budget for a whole tree (``settings.rlm``)."""
    return _from_group(RlmLimits, settings.rlm)


def _from_group(limits: type[_L], group: BaseModel) -> _L:
    # Every field of the graphs' limits has the settings field of its name; a graph's deadline is
    # ``deadline_s`` (seconds), the setting's ``deadline``.
    names = {f.name: "deadline" if f.name == "deadline_s" else f.name for f in dataclasses.fields(limits)}
    return limits(**{name: getattr(group, setting) for name, setting in names.items()})


def retry_policy(settings: Settings) -> RetryPolicy:
    """How model calls are retried."""
    return RetryPolicy(max_attempts=settings.model.max_attempts)


def build_rlm_agent(settings: Settings, *, chat_model: BaseChatModel | None = None) -> RlmAgent:
    """The recursive agent: the settings' model (or ``chat_model``) at the root, the sub-call
    model (``ARAG_SUB_CHAT_MODEL``) below it, code mode when ``ARAG_RLM_CODE_MODE`` and a model."""
    from agents.rlm_agent import RlmAgent

    model = chat_model if chat_model is not None else build_chat_model(settings)
    sub = build_chat_model(settings, settings.rlm.sub_model) if settings.rlm.sub_model else None
    return RlmAgent(
        model,
        sub_model=sub,
        limits=rlm_limits(settings),
        code_mode=settings.rlm.code_mode and model is not None,
        code_mode_unsafe=settings.rlm.code_mode_unsafe,
        retry=retry_policy(settings),
    )


def build_rag_agent(
    settings: Settings,
    retriever: Retriever,
    *,
    chat_model: BaseChatModel | None = None,
    checkpointer: Checkpointer = None,
) -> RagAgent:
    """The RAG agent over ``retriever`` with the settings' limits and retry policy."""
    return RagAgent(
        retriever,
        chat_model=chat_model,
        limits=rag_limits(settings),
        checkpointer=checkpointer,
        retry=retry_policy(settings),
    )


def build_react_agent(
    settings: Settings,
    chat_model: BaseChatModel,
    retriever: Retriever | None,
    *,
    tools: Sequence[BaseTool] = (),
    checkpointer: Checkpointer = None,
    reader: RlmAgent | None = None,
) -> ReactAgent:
    """The ReAct agent: a search tool per source of ``retriever``, ``tools``, and ``read_document``
    handing whole documents to ``reader`` (by default the settings' recursive agent on the model)."""
    from agents.react_agent import ReactAgent

    return ReactAgent(
        chat_model,
        retriever=retriever,
        tools=tools,
        limits=rag_limits(settings),
        checkpointer=checkpointer,
        retry=retry_policy(settings),
        read_documents=reader if reader is not None else build_rlm_agent(settings, chat_model=chat_model),
        approve=settings.tools.approve,
    )


@dataclass
class Agents(OwnsResources):
    """The agents of one set of settings, sharing one store, retriever, chat model and thread store.

    ``react`` is ``None`` without a chat model (``unavailable["react"]`` says why). ``rlm`` is built
    on first use (or with ``react``, which reads documents with it). Close it (or use ``with``) to
    release the store's lock, the thread store's connections and the embedding cache.
    """

    settings: Settings
    retriever: Retriever
    chat_model: BaseChatModel | None
    rag: RagAgent
    built_rlm: RlmAgent | None = None
    react: ReactAgent | None = None
    checkpointer: Checkpointer = None
    thread_store: ThreadStore | None = None
    """Where ``checkpointer`` keeps threads (SQLite or Postgres: :mod:`agents._thread_store`)."""
    unavailable: dict[str, str] = field(default_factory=dict)
    owned: list[Any] = field(default_factory=list)
    """What :meth:`close` closes, in order."""

    @property
    def rlm(self) -> RlmAgent:
        """The recursive agent on the shared chat model (built the first time it is asked for)."""
        if self.built_rlm is None:
            self.built_rlm = build_rlm_agent(self.settings, chat_model=self.chat_model)
        return self.built_rlm


def build_agents(
    settings: Settings | None = None,
    *,
    chat_model: BaseChatModel | None = None,
    threads: bool = True,
    sources: Sequence[str] | None = None,
    tools: Sequence[BaseTool] = (),
) -> Agents:
    """Every agent of the settings, built once over shared parts.

    Args:
        settings: Defaults to ``Settings()`` (``ARAG_*`` variables and ``.env``).
        chat_model: Overrides the settings' model (built once, shared by all agents).
        threads: Keep chat threads for ``rag`` and ``react``: in SQLite (``ARAG_THREADS_PATH``), or
            in Postgres when ``ARAG_THREADS_URL`` is set.
        sources: Search only these sources (an unknown name fails at once, listing the sources).
        tools: More tools for the ReAct agent; with ``ARAG_MCP_CONFIG``, the MCP servers' tools
            join them (:mod:`agents.mcp_tools`; a server that fails is in ``unavailable``).
    """
    settings = settings or Settings()
    store = build_store(settings)
    owned: list[Any] = []
    try:
        embeddings = build_embeddings(settings)
        retriever = build_retriever(settings, store, embeddings)
        if sources:
            for name in sources:
                store.get_source(name)
            retriever.sources = list(sources)
        model = chat_model if chat_model is not None else build_chat_model(settings)
        checkpointer, thread_store = None, None
        if threads:
            thread_store = open_thread_store(settings)
            owned.append(thread_store)
            checkpointer = thread_store.checkpointer
        close = getattr(embeddings, "close", None)
        if callable(close):
            owned.append(embeddings)  # the embedding cache's SQLite connections
        owned.append(store)
        agents = Agents(
            settings=settings,
            retriever=retriever,
            chat_model=model,
            rag=build_rag_agent(settings, retriever, chat_model=model, checkpointer=checkpointer),
            checkpointer=checkpointer,
            thread_store=thread_store,
            owned=owned,
        )
        if model is None:
            agents.unavailable["react"] = REACT_NEEDS_A_MODEL
        else:
            if settings.tools.mcp_config is not None:
                tools = [*tools, *_mcp_tools(settings.tools.mcp_config, agents, tools)]
            agents.react = build_react_agent(
                settings, model, retriever, tools=tools, checkpointer=checkpointer, reader=agents.rlm
            )
    except BaseException:
        for resource in reversed(owned):
            resource.close()
        if store not in owned:
            store.close()
        raise
    return agents


def _mcp_tools(config: Path, agents: Agents, tools: Sequence[BaseTool]) -> list[BaseTool]:
    """The tools of the MCP servers in ``config`` (``ARAG_MCP_CONFIG``), closed with ``agents``; a
    server that did not start is logged and listed in ``agents.unavailable`` as ``mcp:<name>``."""
    from agents.mcp_tools import open_mcp_tools  # the MCP SDK loads only when a config is set

    taken = {t.name for t in tools} | {"read_document"}
    with contextlib.suppress(StoreError):  # a store not up yet: the agent lists its sources later
        taken |= {search_tool_name(s.name) for s in agents.retriever.store.list_sources()}
    mcp = open_mcp_tools(config, reserved=taken)
    agents.owned.append(mcp)
    for failure in mcp.failures:
        agents.unavailable[f"mcp:{failure.server}"] = failure.reason
    return mcp.tools
