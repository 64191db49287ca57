"""The root span of an agent's run (OpenTelemetry, through :mod:`tools.tracing`): one per
``stream()``, its steps' spans nested under it, its outcome as attributes."""

from __future__ import annotations

from typing import Any

from agents.events import AgentResult
from graphs.budget import Budget
from tools import tracing

__all__ = ["end_run_span", "run_span"]


def run_span(agent: str, question: str, thread: str) -> Any:
    """The root span of one run (``None`` when tracing is off), started, not current: the run's
    steps take it as their parent through :func:`tools.tracing.stepped`."""
    attributes = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": agent,
        "gen_ai.conversation.id": thread or None,
        "arag.question_chars": len(question),
        "arag.question": question[:2000] if tracing.capture_content else None,
    }
    return tracing.start_span(f"invoke_agent {agent}", attributes)


def end_run_span(root: Any, result: AgentResult | None, budget: Budget) -> None:
    """End a run's root span with what the run came to (a run that raised is an error)."""
    if root is None:
        return
    usage = budget.usage
    tracing.set_attributes(
        root,
        {
            "arag.exit_reason": result.exit_reason if result is not None else "error",
            "gen_ai.usage.input_tokens": usage.input_tokens,
            "gen_ai.usage.output_tokens": usage.output_tokens,
            "arag.model_calls": usage.model_calls,
            "arag.retries": usage.retries,
            "arag.fallbacks": len(budget.fallbacks),
        },
    )
    root.end()
