"""Prometheus metrics of ``arag serve`` (``GET /metrics``, behind the API key when one is set).

One registry per app (not the process-wide default), so tests and several apps in one process
count apart; with ``--workers N`` each worker counts its own requests (scrape each, or sum).

- ``arag_requests_total`` (counter; ``model``, ``status``): chat requests by the HTTP status they
  got (``error`` for a stream that failed midway).
- ``arag_rate_limited_total`` (counter): requests refused with 429.
- ``arag_run_duration_seconds`` (histogram; ``model``): admission to the run's end.
- ``arag_time_to_first_event_seconds`` (histogram; ``model``): admission to the run's first event
  (a step or the answer).
- ``arag_runs_in_flight``, ``arag_queue_length`` (gauges): runs holding a slot; admitted requests
  waiting for one.
- ``arag_model_tokens_total`` (counter; ``model``, ``direction``: ``input``, ``output``).
- ``arag_retrieval_duration_seconds`` (histogram; ``model``): each search a run made (RAG retrieve
  steps, ReAct search tools).
- ``arag_exits_total`` (counter; ``model``, ``exit_reason``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

__all__ = ["CONTENT_TYPE_LATEST", "ServerMetrics"]

_RUN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
_FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class ServerMetrics:
    """The server's counters, gauges and histograms, in a registry of their own.

    The ``model`` label takes only the served models' names; any other name a client sends is
    ``unknown``, so a client cannot grow the registry (one series per made-up name) without bound.

    Args:
        running: How many runs hold a slot now (read at scrape time).
        waiting: How many admitted requests wait for a slot now.
        models: The model names the server answers to.
    """

    def __init__(
        self, running: Callable[[], float], waiting: Callable[[], float], models: Collection[str] = ()
    ) -> None:
        self.models = frozenset(models)
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("arag_requests", "Chat requests by model and status", ["model", "status"], registry=r)
        self.rate_limited = Counter("arag_rate_limited", "Requests refused with 429", registry=r)
        self.run_seconds = Histogram(
            "arag_run_duration_seconds", "Admission to the run's end", ["model"], buckets=_RUN_BUCKETS, registry=r
        )
        self.first_event = Histogram(
            "arag_time_to_first_event_seconds",
            "Admission to the run's first event",
            ["model"],
            buckets=(*_FAST_BUCKETS, 10, 30),
            registry=r,
        )
        self.in_flight = Gauge("arag_runs_in_flight", "Runs holding a slot", registry=r)
        self.in_flight.set_function(running)
        self.queue = Gauge("arag_queue_length", "Admitted requests waiting for a slot", registry=r)
        self.queue.set_function(waiting)
        self.tokens = Counter("arag_model_tokens", "Model tokens by direction", ["model", "direction"], registry=r)
        self.retrieval = Histogram(
            "arag_retrieval_duration_seconds", "Each search of a run", ["model"], buckets=_FAST_BUCKETS, registry=r
        )
        self.exits = Counter("arag_exits", "Finished runs by exit reason", ["model", "exit_reason"], registry=r)

    def label(self, model: str) -> str:
        """The ``model`` label of a name a request gave: itself when served, else ``unknown``."""
        return model if model in self.models else "unknown"

    def request(self, model: str, status: int | str) -> None:
        """Count one chat request with the status it got."""
        self.requests.labels(model=self.label(model), status=str(status)).inc()
        if status == 429:
            self.rate_limited.inc()

    def run_item(self, model: str, item: Mapping[str, Any]) -> None:
        """Observe one item of a run: a search step's time, a final's tokens and exit reason."""
        kind = item.get("type")
        if kind == "status":
            if (seconds := _search_seconds(item.get("data") or {})) is not None:
                self.retrieval.labels(model=model).observe(seconds)
        elif kind == "final":
            usage = item.get("usage") or {}
            for direction in ("input", "output"):
                if count := int(usage.get(f"{direction}_tokens") or 0):
                    self.tokens.labels(model=model, direction=direction).inc(count)
            self.exits.labels(model=model, exit_reason=str(item.get("exit_reason"))).inc()

    def render(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)


def _search_seconds(data: Mapping[str, Any]) -> float | None:
    """The time of a search a step event reports: a RAG ``retrieved`` event or a ReAct search tool call."""
    if data.get("event") == "retrieved" and "ms" in data:
        return float(data["ms"]) / 1000
    if data.get("event") == "tool" and str(data.get("tool", "")).startswith("search_") and "ms" in data:
        return float(data["ms"]) / 1000
    return None
