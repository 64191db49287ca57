"""The public face: settings, the agents, and the factories that turn settings into a store,
embeddings, a retriever, an ingestor and a chat model. The CLI (``arag``) lives in :mod:`agents.cli`."""

from agents.components import build_embeddings, build_ingestor, build_retriever, build_store
from agents.models import build_chat_model
from agents.rag_agent import AgentEvent, Citation, RagAgent, RagResult
from agents.react_agent import ReactAgent, ReactResult
from agents.rlm_agent import RlmAgent, RlmResult, read_document_tool
from agents.settings import Settings

__all__ = [
    "AgentEvent",
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
    "read_document_tool",
]
