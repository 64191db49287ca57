"""Run limits and the budget that enforces them across every node (and every thread) of a run.

:class:`Limits` is the policy a user sets; :class:`Budget` is one run's meter. Nodes call
:meth:`Budget.check` before spending, and the model wrapper charges every call to it. When a limit
is hit, :class:`BudgetExceeded` says which one; graphs catch it and end the run with
``exit_reason="budget"`` and the best answer so far.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Budget", "BudgetExceeded", "Limits", "Usage"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Limits of one run. ``None`` means unlimited."""

    max_iterations: int = 3
    """Retrieval rounds (the first one plus refinements)."""
    max_answer_attempts: int = 2
    """Answers drafted; a draft that fails validation is corrected while attempts remain."""
    max_model_calls: int | None = 30
    """Chat model calls (retries of one call count once)."""
    max_tokens: int | None = 100_000
    """Prompt plus completion tokens over all model calls."""
    deadline_s: float | None = 120.0
    """Wall-clock seconds for the whole run."""

    def __post_init__(self) -> None:
        for name in ("max_iterations", "max_answer_attempts"):
            if getattr(self, name) < 1:
                msg = f"Limits.{name} must be >= 1, got {getattr(self, name)}"
                raise ValueError(msg)
        for name in ("max_model_calls", "max_tokens", "deadline_s"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                msg = f"Limits.{name} must be positive or None (unlimited), got {value}"
                raise ValueError(msg)


@dataclass(slots=True)
class Usage:
    """What a run spent."""

    model_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    retries: int = 0
    """Transient failures retried (429, 5xx, timeouts, connection errors)."""
    estimated: bool = False
    """True when some call reported no usage and its tokens were estimated from the text."""

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total_tokens": self.total_tokens}


class BudgetExceeded(RuntimeError):  # noqa: N818 - reads as what happened, like UsageLimitExceeded
    """A run limit was hit. ``limit`` names it: ``model_calls``, ``tokens`` or ``deadline``."""

    def __init__(self, limit: str, detail: str) -> None:
        super().__init__(detail)
        self.limit = limit


@dataclass
class Budget:
    """One run's meter: thread-safe, shared by the concurrent branches of the run."""

    limits: Limits = field(default_factory=Limits)
    usage: Usage = field(default_factory=Usage)
    started: float = field(default_factory=lambda: time.monotonic())
    model_paths: dict[str, str] = field(default_factory=dict)
    """How this run's model calls were sent, by feature (``cap``, ``tool_choice``, ``structured``):
    what :class:`~graphs.llm.ModelClient` settled on for the server (see its compatibility notes)."""
    fallbacks: list[dict[str, Any]] = field(default_factory=list)
    """Each time a server refused or ignored a feature and the call fell back: feature, refused,
    chosen, reason. Agents show them as ``model_fallback`` steps."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def remaining_s(self) -> float | None:
        """Seconds left before the deadline (``None``: no deadline)."""
        if self.limits.deadline_s is None:
            return None
        return max(0.0, self.limits.deadline_s - self.elapsed)

    def check(self) -> None:
        """Raise :class:`BudgetExceeded` if a limit is already used up."""
        limits, usage = self.limits, self.usage
        if limits.deadline_s is not None and self.elapsed >= limits.deadline_s:
            raise BudgetExceeded("deadline", f"the run's deadline of {limits.deadline_s:g} s passed")
        if limits.max_model_calls is not None and usage.model_calls >= limits.max_model_calls:
            raise BudgetExceeded("model_calls", f"the run used its {limits.max_model_calls} model calls")
        if limits.max_tokens is not None and usage.total_tokens >= limits.max_tokens:
            raise BudgetExceeded("tokens", f"the run used {usage.total_tokens} of its {limits.max_tokens} tokens")

    def start_call(self) -> None:
        """Reserve one model call (raises if none is left)."""
        with self._lock:
            self.check()
            self.usage.model_calls += 1

    def charge(self, input_tokens: int, output_tokens: int, *, estimated: bool = False) -> None:
        with self._lock:
            self.usage.input_tokens += input_tokens
            self.usage.output_tokens += output_tokens
            self.usage.estimated = self.usage.estimated or estimated

    def count_retry(self) -> None:
        with self._lock:
            self.usage.retries += 1

    def record_path(self, feature: str, path: str, fallback: dict[str, Any] | None = None) -> None:
        """Note how a model call was sent (``feature`` -> ``path``), and a fallback if there was one."""
        with self._lock:
            self.model_paths[feature] = path
            if fallback is not None:
                self.fallbacks.append(fallback)

    def report(self) -> dict[str, Any]:
        """The run's usage as agents report it: counts, tokens, ``seconds``, and ``model_paths``
        when a model call recorded any."""
        report: dict[str, Any] = {**self.usage.as_dict(), "seconds": round(self.elapsed, 3)}
        if self.model_paths:
            report["model_paths"] = dict(self.model_paths)
        return report

    def fallback_steps(self) -> list[dict[str, Any]]:
        """The fallbacks as trace steps (``event: model_fallback``, ``node: model``)."""
        return [
            {
                "event": "model_fallback",
                "node": "model",
                "ms": 0.0,
                "detail": f"{f['feature']}: {f['refused']} -> {f['chosen']} ({f['reason']})",
                **f,
            }
            for f in self.fallbacks
        ]
