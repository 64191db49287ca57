"""`arag serve`'s Prometheus metrics and trace ids: counts equal to the requests sent, and every
completion carries the ids to match a bug report with its trace."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from agents.serve import create_app
from agents.settings import Settings
from agents.testing import FakeEmbeddings
from tests.serving import offline_agents, running
from tools.store import QdrantStore


def _app(settings: Settings | None = None) -> Any:
    return create_app(settings or Settings(), agents=offline_agents(QdrantStore(":memory:"), FakeEmbeddings()))


def _ask(url: str, text: str, *, model: str = "rag", stream: bool = False, **headers: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": text}], "stream": stream}
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=30)


def _samples(url: str, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(f"{url}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def test_metrics_count_every_request_by_model_and_status() -> None:
    app = _app()
    with running(app) as url:
        for text in ("How tall is the Eiffel Tower?", "When did the Golden Gate Bridge open?"):
            assert _ask(url, text).status_code == 200
        streamed = _ask(url, "What does the waggle dance tell bees?", stream=True)
        assert streamed.status_code == 200
        assert "[DONE]" in streamed.text
        assert _ask(url, "Hi?", model="nope").status_code == 404
        assert httpx.post(f"{url}/v1/chat/completions", content=b"{", timeout=10).status_code == 400
        server = app.state.server
        server.admission.admitted = server.admission.max_runs + server.admission.max_queue  # full
        busy = _ask(url, "How tall?")
        server.admission.admitted = 0
        assert busy.status_code == 429
        samples = _samples(url)
    assert samples[("arag_requests_total", (("model", "rag"), ("status", "200")))] == 3
    # A model name that is not served is "unknown": made-up names cannot grow the registry.
    assert samples[("arag_requests_total", (("model", "unknown"), ("status", "404")))] == 1
    assert samples[("arag_requests_total", (("model", "unknown"), ("status", "400")))] == 1
    assert not any(("model", "nope") in labels for _, labels in samples)
    assert samples[("arag_requests_total", (("model", "rag"), ("status", "429")))] == 1
    assert samples[("arag_rate_limited_total", ())] == 1
    assert samples[("arag_run_duration_seconds_count", (("model", "rag"),))] == 3
    assert samples[("arag_time_to_first_event_seconds_count", (("model", "rag"),))] == 3
    assert samples[("arag_retrieval_duration_seconds_count", (("model", "rag"),))] >= 3
    exits = sum(v for (name, _), v in samples.items() if name == "arag_exits_total")
    assert exits == 3
    assert samples[("arag_runs_in_flight", ())] == 0
    assert samples[("arag_queue_length", ())] == 0


def test_metrics_are_behind_the_api_key() -> None:
    with running(_app(Settings(server={"api_key": "s3cret"}))) as url:
        assert httpx.get(f"{url}/metrics", timeout=10).status_code == 401
        assert httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer wrong"}, timeout=10).status_code == 401
        assert _samples(url, Authorization="Bearer s3cret") is not None


def test_without_tracing_a_completion_still_has_its_request_id() -> None:
    with running(_app()) as url:
        response = _ask(url, "How tall is the Eiffel Tower?")
    assert response.headers["x-request-id"] == response.json()["id"]
    assert response.json()["arag"]["request_id"] == response.json()["id"]
    assert response.json()["arag"]["trace_id"] is None
    assert "x-arag-trace-id" not in response.headers


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace._TRACER_PROVIDER = provider  # type: ignore[attr-defined]  # swapped per test, as OpenTelemetry's tests do
    try:
        yield exporter
    finally:
        trace._TRACER_PROVIDER = None  # type: ignore[attr-defined]
        provider.shutdown()


def test_each_completion_carries_its_trace_id_and_continues_the_callers_trace(spans: InMemorySpanExporter) -> None:
    caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    with running(_app()) as url:
        plain = _ask(url, "How tall is the Eiffel Tower?")
        streamed = _ask(url, "When did the Golden Gate Bridge open?", stream=True)
        continued = _ask(url, "How tall?", traceparent=f"00-{caller_trace}-00f067aa0ba902b7-01")
    trace_id = plain.headers["x-arag-trace-id"]
    assert plain.json()["arag"]["trace_id"] == trace_id
    finished = spans.get_finished_spans()
    in_trace = [s for s in finished if f"{s.context.trace_id:032x}" == trace_id]  # type: ignore[union-attr]
    names = {s.name for s in in_trace}
    assert {"chat rag", "invoke_agent rag", "rag.analyze", "rag.retrieve", "arag.retrieve", "rag.finish"} <= names
    server_span = next(s for s in in_trace if s.name == "chat rag")
    agent_span = next(s for s in in_trace if s.name == "invoke_agent rag")
    assert agent_span.parent is not None
    assert server_span.context is not None
    assert agent_span.parent.span_id == server_span.context.span_id
    assert server_span.kind == trace.SpanKind.SERVER
    assert dict(server_span.attributes or {})["http.response.status_code"] == 200
    assert dict(server_span.attributes or {})["arag.exit_reason"] == "answered"
    # Streamed: the header, the first chunk and the last chunk name the same trace.
    events = [json.loads(line[6:]) for line in streamed.text.splitlines() if line.startswith("data: {")]
    streamed_trace = streamed.headers["x-arag-trace-id"]
    assert events[0]["arag"]["trace_id"] == streamed_trace
    assert [e["arag"]["trace_id"] for e in events if "exit_reason" in (e.get("arag") or {})] == [streamed_trace]
    assert streamed_trace != trace_id
    # A client's traceparent: the server's spans join its trace.
    assert continued.headers["x-arag-trace-id"] == caller_trace
