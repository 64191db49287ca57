"""The LangGraph server graphs where ``langgraph.json`` files written before the serving stack
moved name them (``agents.langgraph_app:rag``); they live in :mod:`agents.serve.langgraph_app`."""

from agents.serve.langgraph_app import ChatState, answer_rag, answer_rlm, rag, react, rlm

__all__ = ["ChatState", "answer_rag", "answer_rlm", "rag", "react", "rlm"]
