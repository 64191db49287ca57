"""LangGraph state machines, one graph per module: the agentic RAG graph (:mod:`graphs.rag`) and a
ReAct tool-calling agent (:mod:`graphs.react`), the recursive long-context agent (:mod:`graphs.rlm`),
with the model wrapper, budgets and strategies they
share."""

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
