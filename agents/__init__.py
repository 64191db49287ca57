"""The public face: settings, the agents, and the factories that turn settings into a store,
embeddings, a retriever, an ingestor and a chat model. The CLI (``arag``) lives in :mod:`agents.cli`."""

from agents.components import build_embeddings, build_ingestor, build_retriever, build_store
from agents.events import AgentEvent, AgentResult, Citation, describe
from agents.models import build_chat_model
from agents.rag_agent import RagAgent, RagResult
from agents.react_agent import ReactAgent, ReactResult
from agents.rlm_agent import RlmAgent, RlmResult, read_document_tool
from agents.settings import Settings

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
