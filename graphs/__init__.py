"""LangGraph state machines, one graph per module: the agentic RAG graph (:mod:`graphs.rag`) and a
ReAct tool-calling agent (:mod:`graphs.react`), the recursive long-context agent (:mod:`graphs.rlm`),
with the model wrapper, budgets and strategies they
share.

Names are imported on first use (PEP 562), so importing one submodule does not load them all:
`arag --help` must not pay for the model stack."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tools._lazy import lazy_exports

if TYPE_CHECKING:
    from graphs.broker import Broker, RlmLimits
    from graphs.budget import Budget, BudgetExceeded, Limits, Usage
    from graphs.heuristic import heuristic_strategies
    from graphs.llm import ModelClient, ModelError, RetryPolicy
    from graphs.llm_strategies import llm_strategies
    from graphs.rag import RagContext, RagState, build_rag_graph
    from graphs.react import ReactContext, ReactState, build_react_graph, source_tools
    from graphs.rlm import RlmContext, RlmState, build_rlm_graph
    from graphs.strategies import (
        Answerer,
        Draft,
        Grader,
        Grading,
        QueryAnalyzer,
        QueryPlan,
        Refiner,
        Selection,
        SourceSelector,
        Strategies,
        Validator,
        Verdict,
    )

_EXPORTS = {
    "Answerer": "graphs.strategies",
    "Broker": "graphs.broker",
    "Budget": "graphs.budget",
    "BudgetExceeded": "graphs.budget",
    "Draft": "graphs.strategies",
    "Grader": "graphs.strategies",
    "Grading": "graphs.strategies",
    "Limits": "graphs.budget",
    "ModelClient": "graphs.llm",
    "ModelError": "graphs.llm",
    "QueryAnalyzer": "graphs.strategies",
    "QueryPlan": "graphs.strategies",
    "RagContext": "graphs.rag",
    "RagState": "graphs.rag",
    "ReactContext": "graphs.react",
    "ReactState": "graphs.react",
    "Refiner": "graphs.strategies",
    "RetryPolicy": "graphs.llm",
    "RlmContext": "graphs.rlm",
    "RlmLimits": "graphs.broker",
    "RlmState": "graphs.rlm",
    "Selection": "graphs.strategies",
    "SourceSelector": "graphs.strategies",
    "Strategies": "graphs.strategies",
    "Usage": "graphs.budget",
    "Validator": "graphs.strategies",
    "Verdict": "graphs.strategies",
    "build_rag_graph": "graphs.rag",
    "build_react_graph": "graphs.react",
    "build_rlm_graph": "graphs.rlm",
    "heuristic_strategies": "graphs.heuristic",
    "llm_strategies": "graphs.llm_strategies",
    "source_tools": "graphs.react",
}

__all__ = [
    "Answerer",
    "Broker",
    "Budget",
    "BudgetExceeded",
    "Draft",
    "Grader",
    "Grading",
    "Limits",
    "ModelClient",
    "ModelError",
    "QueryAnalyzer",
    "QueryPlan",
    "RagContext",
    "RagState",
    "ReactContext",
    "ReactState",
    "Refiner",
    "RetryPolicy",
    "RlmContext",
    "RlmLimits",
    "RlmState",
    "Selection",
    "SourceSelector",
    "Strategies",
    "Usage",
    "Validator",
    "Verdict",
    "build_rag_graph",
    "build_react_graph",
    "build_rlm_graph",
    "heuristic_strategies",
    "llm_strategies",
    "source_tools",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
