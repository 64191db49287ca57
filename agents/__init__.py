"""The public face: settings, the agents, and the factories that turn settings into a store,
embeddings, a retriever, an ingestor and a chat model. The CLI (``arag``) lives in :mod:`agents.cli`.

Names are imported on first use (PEP 562), so importing one submodule does not load them all:
`arag --help` must not pay for the model stack."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tools._lazy import lazy_exports

if TYPE_CHECKING:
    from agents.components import build_embeddings, build_ingestor, build_retriever, build_store
    from agents.events import AgentEvent, AgentResult, Citation, describe
    from agents.models import build_chat_model
    from agents.rag_agent import RagAgent, RagResult
    from agents.react_agent import ReactAgent, ReactResult
    from agents.rlm_agent import RlmAgent, RlmResult, read_document_tool
    from agents.settings import Settings

_EXPORTS = {
    "AgentEvent": "agents.events",
    "AgentResult": "agents.events",
    "Citation": "agents.events",
    "RagAgent": "agents.rag_agent",
    "RagResult": "agents.rag_agent",
    "ReactAgent": "agents.react_agent",
    "ReactResult": "agents.react_agent",
    "RlmAgent": "agents.rlm_agent",
    "RlmResult": "agents.rlm_agent",
    "Settings": "agents.settings",
    "build_chat_model": "agents.models",
    "build_embeddings": "agents.components",
    "build_ingestor": "agents.components",
    "build_retriever": "agents.components",
    "build_store": "agents.components",
    "describe": "agents.events",
    "read_document_tool": "agents.rlm_agent",
}

__all__ = [
    "AgentEvent",
    "AgentResult",
    "Citation",
    "RagAgent",
    "RagResult",
    "ReactAgent",
    "ReactResult",
    "RlmAgent",
    "RlmResult",
    "Settings",
    "build_chat_model",
    "build_embeddings",
    "build_ingestor",
    "build_retriever",
    "build_store",
    "describe",
    "read_document_tool",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
