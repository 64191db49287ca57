"""The broker of a recursive (RLM) run: one budget for the whole tree of sub-calls.

Every level of a recursive run shares one :class:`Broker`. It counts sub-calls against
``max_sub_calls``, charges tokens and the deadline to one :class:`~graphs.budget.Budget`, caps how
many sub-calls run at once (``max_concurrency``), and records the trace tree: each run (the root
and every recursive sub-run) and each sub-call, with its depth, chunk, tokens and time.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from graphs.budget import Budget, BudgetExceeded, Limits
from tools import tracing

__all__ = ["Broker", "RlmLimits", "SubResult"]


@dataclass(frozen=True, slots=True)
class RlmLimits:
    """Limits of one recursive run, shared by every level of its tree. ``None`` means unlimited."""

    max_iterations: int = 12
    """Root-model turns per run (each recursive sub-run has its own turns, within the shared budget)."""
    max_depth: int = 2
    """Levels of recursion below the root run; at the cap a piece is read by one plain call."""
    max_sub_calls: int | None = 5_000
    """Sub-calls over the whole tree (map items, reduces, ``llm_query`` calls)."""
    max_tokens: int | None = 2_000_000
    """Prompt plus completion tokens over every model call of the tree."""
    deadline_s: float | None = 600.0
    """Wall-clock seconds for the whole tree."""
    max_concurrency: int = 16
    """Sub-calls running at the same time."""
    sub_context_chars: int = 40_000
    """The longest piece one sub-call reads; a longer piece is split again one level deeper."""

    def __post_init__(self) -> None:
        for name in ("max_iterations", "max_concurrency", "sub_context_chars"):
            if getattr(self, name) < 1:
                msg = f"RlmLimits.{name} must be >= 1, got {getattr(self, name)}"
                raise ValueError(msg)
        if self.max_depth < 0:
            msg = f"RlmLimits.max_depth must be >= 0, got {self.max_depth}"
            raise ValueError(msg)
        for name in ("max_sub_calls", "max_tokens", "deadline_s"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                msg = f"RlmLimits.{name} must be positive or None (unlimited), got {value}"
                raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class SubResult:
    """What one sub-call returned."""

    result: str
    score: float | None = None
    """How well the piece answered (extractive readers); ``None`` for model answers."""
    tokens: int = 0


_NO_SLOT = contextlib.nullcontext()


class Broker:
    """Enforces :class:`RlmLimits` across a recursive run and records its trace tree (thread-safe)."""

    def __init__(self, limits: RlmLimits | None = None) -> None:
        self.limits = limits or RlmLimits()
        self.budget = Budget(
            Limits(
                max_iterations=1,
                max_answer_attempts=1,
                max_model_calls=None,
                max_tokens=self.limits.max_tokens,
                deadline_s=self.limits.deadline_s,
            )
        )
        self.sub_calls = 0
        self.limits_hit: set[str] = set()
        self.trace: list[dict[str, Any]] = []
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.limits.max_concurrency)
        self._running = 0
        self.peak_concurrency = 0
        self._t0 = time.perf_counter()

    def check(self) -> None:
        """Raise :class:`BudgetExceeded` if the tree's sub-calls, tokens or time are used up."""
        try:
            self.budget.check()
        except BudgetExceeded as exc:
            self.limits_hit.add(exc.limit)
            raise
        limit = self.limits.max_sub_calls
        if limit is not None and self.sub_calls >= limit:
            self.limits_hit.add("sub_calls")
            raise BudgetExceeded("sub_calls", f"the run used its {limit} sub-calls")

    @property
    def exhausted(self) -> bool:
        try:
            self.check()
        except BudgetExceeded:
            return True
        return False

    def open_run(self, *, parent: str | None, depth: int, chunk: str | None, chars: int) -> str:
        """Add a (sub-)run node to the trace; returns its id."""
        with self._lock:
            node = f"run{next(self._ids)}"
            at = round((time.perf_counter() - self._t0) * 1000, 1)
            self.trace.append(
                {"id": node, "parent": parent, "kind": "run", "depth": depth, "chunk": chunk, "chars": chars, "at": at}
            )
        return node

    def close_run(self, node: str, **data: Any) -> None:
        with self._lock:
            for item in self.trace:
                if item["id"] == node:
                    item.update(data, ms=round((time.perf_counter() - self._t0) * 1000 - item["at"], 1))
                    break

    def note_depth_cap(self) -> None:
        self.limits_hit.add("max_depth")

    def record(self, *, parent: str, depth: int, kind: str, started: float, **data: Any) -> None:
        """Record a call that did not go through :meth:`sub_call` (a root-model turn)."""
        ms, at = round((time.perf_counter() - started) * 1000, 1), round((started - self._t0) * 1000, 1)
        with self._lock:
            self.trace.append(
                {"id": f"call{next(self._ids)}", "parent": parent, "kind": kind, "depth": depth, "at": at, "ms": ms}
                | data
            )

    def sub_call(
        self,
        work: Callable[[], SubResult],
        *,
        parent: str,
        depth: int,
        kind: str,
        chunk: str | None = None,
        chars: int = 0,
        hold_slot: bool = True,
        trace: bool = True,
    ) -> SubResult:
        """Run one sub-call within the budget and the concurrency cap, and trace it.

        A recursive sub-run passes ``hold_slot=False``: it counts as a sub-call, but its own
        sub-calls take the slots (holding one while waiting for them could deadlock the tree),
        and ``trace=False``: its run node stands for it in the trace.

        Raises:
            BudgetExceeded: The tree's budget is spent (the call is not made).
        """
        with self._lock:
            self.check()
            self.sub_calls += 1
        started = time.perf_counter()
        status, detail, result = "ok", "", SubResult("")
        with self._slots if hold_slot else _NO_SLOT:
            running = 1 if hold_slot else 0
            with self._lock:
                self._running += running
                self.peak_concurrency = max(self.peak_concurrency, self._running)
            attributes = {
                "arag.rlm.kind": kind,
                "arag.rlm.depth": depth,
                "arag.rlm.chunk": chunk,
                "arag.rlm.chars": chars,
            }
            try:
                with tracing.span(f"rlm.{kind}", attributes) as span:
                    result = work()
                    tracing.set_attributes(span, {"arag.rlm.tokens": result.tokens})
            except Exception as exc:
                status, detail = "error", f"{type(exc).__name__}: {exc}"
                raise
            finally:
                with self._lock:
                    self._running -= running
                if trace or status == "error":
                    extra = {"error": detail} if detail else {}
                    self.record(
                        parent=parent,
                        depth=depth,
                        kind=kind,
                        started=started,
                        chunk=chunk,
                        chars=chars,
                        tokens=result.tokens,
                        status=status,
                        **extra,
                    )
        return result

    def final_budget(self, seconds: float = 60.0) -> Budget:
        """A budget for the one last call that asks for the answer after the tree's budget ran out:
        one call, a short deadline; its usage is merged back with :meth:`merge`."""
        return Budget(
            Limits(max_iterations=1, max_answer_attempts=1, max_model_calls=1, max_tokens=None, deadline_s=seconds)
        )

    def merge(self, budget: Budget) -> None:
        usage = budget.usage
        self.budget.charge(usage.input_tokens, usage.output_tokens, estimated=usage.estimated)
        with self._lock:
            self.budget.usage.model_calls += usage.model_calls
            self.budget.usage.retries += usage.retries
        for feature, path in budget.model_paths.items():
            self.budget.record_path(feature, path)
        for fallback in budget.fallbacks:
            self.budget.record_path(fallback["feature"], fallback["chosen"], fallback)

    def usage(self) -> dict[str, Any]:
        return {**self.budget.report(), "sub_calls": self.sub_calls, "peak_concurrency": self.peak_concurrency}
