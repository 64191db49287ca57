"""OpenTelemetry spans of the three agents (the SDK's in-memory exporter), the OTLP/HTTP export
to a loopback receiver, and tracing that is off unless configured."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from agents import RagAgent, ReactAgent, RlmAgent
from agents.telemetry import configure_tracing, tracing_wanted
from agents.testing import ChatReply, FakeEmbeddings, OpenAIStub, scripted
from tools import Document, Ingestor, QdrantStore, Retriever, tracing


def _install(provider: Any) -> None:
    # The global provider can be set once per process; tests swap it (as OpenTelemetry's own do).
    trace._TRACER_PROVIDER = provider  # type: ignore[attr-defined]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _install(provider)
    try:
        yield exporter
    finally:
        _install(None)
        provider.shutdown()
        tracing.capture_content = False


def _tree(finished: tuple[ReadableSpan, ...]) -> tuple[ReadableSpan, dict[int, list[ReadableSpan]]]:
    """The one root, and each span's children in start order."""
    children: dict[int, list[ReadableSpan]] = {}
    roots = []
    for s in sorted(finished, key=lambda s: s.start_time or 0):
        if s.parent is None:
            roots.append(s)
        else:
            children.setdefault(s.parent.span_id, []).append(s)
    assert len(roots) == 1, [r.name for r in roots]
    assert len({s.context.trace_id for s in finished if s.context}) == 1  # one trace per run
    return roots[0], children


def _kids(span: ReadableSpan, children: dict[int, list[ReadableSpan]]) -> list[ReadableSpan]:
    assert span.context is not None
    return children.get(span.context.span_id, [])


def _retriever() -> Retriever:
    store, embeddings = QdrantStore(":memory:"), FakeEmbeddings()
    apollo = Document(doc_id="apollo", title="Apollo 11", path="/a.txt", text="Apollo 11 landed on 20 July 1969.")
    Ingestor(store, embeddings).ingest_documents([apollo], "space", description="Space flight")
    return Retriever(store=store, embeddings=embeddings)


def test_a_rag_run_is_one_trace_a_span_per_step(spans: InMemorySpanExporter) -> None:
    plan = {"standalone": "When did Apollo 11 land?", "queries": [], "sub_questions": [], "hypothetical_passage": ""}
    model = scripted(
        plan,
        {"relevant": [1], "missing": []},
        "Apollo 11 landed on 20 July 1969 [1].",
        {"supported": True, "addresses_question": True, "problems": []},
    )
    result = RagAgent(_retriever(), chat_model=model).invoke("When did Apollo 11 land?")
    assert result.exit_reason == "answered"
    root, children = _tree(spans.get_finished_spans())
    assert root.name == "invoke_agent rag"
    assert result.trace_id == f"{root.context.trace_id:032x}"  # type: ignore[union-attr]
    attributes = dict(root.attributes or {})
    assert attributes["gen_ai.operation.name"] == "invoke_agent"
    assert attributes["arag.exit_reason"] == "answered"
    assert attributes["arag.model_calls"] == result.usage["model_calls"] == 4
    # The node spans are the run's steps, in order.
    nodes = _kids(root, children)
    assert [n.name for n in nodes] == [f"rag.{s['node']}" for s in result.steps]
    by_node = {n.name: n for n in nodes}
    assert [c.name for c in _kids(by_node["rag.retrieve"], children)] == ["arag.retrieve"]
    search = dict(_kids(by_node["rag.retrieve"], children)[0].attributes or {})
    assert search["arag.retrieval.sources"] == ("space",)
    assert search["arag.retrieval.hits"] == 1
    assert search["arag.retrieval.mode"] == "hybrid"
    for name in ("rag.analyze", "rag.grade", "rag.answer", "rag.validate"):
        [call] = _kids(by_node[name], children)
        assert call.name == "chat ScriptedChatModel"
        assert call.kind == trace.SpanKind.CLIENT
        assert dict(call.attributes or {})["arag.tags"] == (name.removeprefix("rag."),)
    # No question, prompt or passage text on any span unless asked for.
    texts = [v for s in spans.get_finished_spans() for v in (s.attributes or {}).values() if isinstance(v, str)]
    assert not any("Apollo" in t or "1969" in t for t in texts)


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def broken(x: int) -> int:
    """Always fails."""
    raise RuntimeError("the tool broke")


def test_a_react_run_has_model_and_tool_spans_with_tokens(spans: InMemorySpanExporter) -> None:
    with OpenAIStub() as stub:
        stub.reply(
            ChatReply(tool_calls=[("add", '{"a": 2, "b": 3}'), ("broken", '{"x": 1}')], usage=(40, 9)),
            ChatReply("It is 5.", usage=(60, 4)),
        )
        model = ChatOpenAI(model="stub-model", base_url=stub.base_url, api_key="k", max_retries=0, max_tokens=99)  # type: ignore[call-arg]
        result = ReactAgent(model, tools=[add, broken]).invoke("What is 2 + 3?")
    assert result.exit_reason == "answered"
    root, children = _tree(spans.get_finished_spans())
    assert root.name == "invoke_agent react"
    nodes = [n.name for n in _kids(root, children)]
    assert nodes == ["react.agent", "react.tool", "react.tool", "react.agent", "react.finish"]
    first_turn = _kids(root, children)[0]
    [chat] = _kids(first_turn, children)
    attributes = dict(chat.attributes or {})
    assert chat.name == "chat stub-model"
    assert attributes["gen_ai.request.model"] == "stub-model"
    assert attributes["gen_ai.request.max_tokens"] == 99
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (40, 9)
    assert attributes["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert attributes["arag.tool_calls"] == 2
    tools = {
        dict(t.attributes or {})["gen_ai.tool.name"]: t
        for node in _kids(root, children)
        if node.name == "react.tool"
        for t in _kids(node, children)
    }
    assert set(tools) == {"add", "broken"}
    assert dict(tools["add"].attributes or {})["arag.tool.status"] == "success"
    assert dict(tools["add"].attributes or {})["arag.tool.args_bytes"] == len('{"a": 2, "b": 3}')
    failed = dict(tools["broken"].attributes or {})
    assert (failed["arag.tool.status"], failed["error.type"]) == ("error", "RuntimeError")
    totals = dict(root.attributes or {})
    assert (totals["gen_ai.usage.input_tokens"], totals["gen_ai.usage.output_tokens"]) == (100, 13)


def test_an_rlm_run_has_its_sub_calls_under_the_map_steps(spans: InMemorySpanExporter) -> None:
    filler = "\n\n".join(f"Paragraph {i}: filler text for the reader, nothing else." for i in range(3000))
    result = RlmAgent(None).invoke("What is the magic number?", context=filler + "\n\nThe magic number is 4721.\n")
    assert "4721" in result.answer
    root, children = _tree(spans.get_finished_spans())
    assert root.name == "invoke_agent rlm"
    assert dict(root.attributes or {})["arag.rlm.context_chars"] == result.chars
    nodes = _kids(root, children)
    maps = [n for n in nodes if n.name == "rlm.map_chunk"]
    sub_calls = [c for m in maps for c in _kids(m, children)]
    assert len(maps) == len(sub_calls) >= 2
    assert {c.name for c in sub_calls} == {"rlm.map"}
    first = dict(sub_calls[0].attributes or {})
    assert first["arag.rlm.depth"] == 1  # the root reads at depth 0; its sub-calls are one below
    assert first["arag.rlm.chars"] > 0
    assert isinstance(first["arag.rlm.chunk"], str)
    assert len(sub_calls) + 1 == result.usage["sub_calls"]  # and the reduce step's one
    assert [n.name for n in nodes][-1] == "rlm.finish"


def test_an_approval_pause_is_not_an_error(spans: InMemorySpanExporter) -> None:
    call = {"name": "add", "args": {"a": 1, "b": 1}, "id": "c1", "type": "tool_call"}
    agent = ReactAgent(scripted(AIMessage("", tool_calls=[call]), "2"), tools=[add], approve=["add"])
    assert agent.invoke("1 + 1?", thread_id="t").exit_reason == "awaiting_approval"
    paused = [s for s in spans.get_finished_spans() if s.name == "react.tool"]
    assert paused
    assert dict(paused[0].attributes or {})["arag.interrupted"] is True
    assert all(s.status.status_code != StatusCode.ERROR for s in spans.get_finished_spans())


def test_content_is_recorded_only_when_asked(spans: InMemorySpanExporter) -> None:
    assert configure_tracing({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"})
    ReactAgent(scripted("Four."), tools=[add]).invoke("What is 2 + 2?")
    root = next(s for s in spans.get_finished_spans() if s.parent is None)
    assert dict(root.attributes or {})["arag.question"] == "What is 2 + 2?"
    chat = next(s for s in spans.get_finished_spans() if s.name.startswith("chat "))
    assert dict(chat.attributes or {})["gen_ai.output.text"] == "Four."


def test_tracing_is_off_unless_configured() -> None:
    assert not tracing.enabled()
    result = ReactAgent(scripted("Four."), tools=[add]).invoke("What is 2 + 2?")
    assert result.trace_id == ""
    assert tracing_wanted({}) is None
    assert tracing_wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}) == "otlp"
    assert tracing_wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}) is None
    assert tracing_wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}) is None
    assert tracing_wanted({"OTEL_TRACES_EXPORTER": "console"}) == "console"
    assert tracing_wanted({"OTEL_TRACES_EXPORTER": "zipkin"}) is None
    assert not configure_tracing({})
    assert not tracing.enabled()


class _Collector(BaseHTTPRequestHandler):
    bodies: list[bytes] = []  # noqa: RUF012 - one receiver per test

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_POST(self) -> None:
        type(self).bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()


def test_spans_export_over_otlp_http_to_a_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    _Collector.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "arag-test")
    try:
        assert configure_tracing()
        provider = trace.get_tracer_provider()
        result = ReactAgent(scripted("Four."), tools=[add]).invoke("What is 2 + 2?")
        provider.force_flush()  # type: ignore[attr-defined]
        provider.shutdown()  # type: ignore[attr-defined]
    finally:
        _install(None)
        server.shutdown()
    requests = [ExportTraceServiceRequest.FromString(b) for b in _Collector.bodies]
    exported = [
        (resource.resource, s)
        for r in requests
        for resource in r.resource_spans
        for scope in resource.scope_spans
        for s in scope.spans
    ]
    names = {s.name for _, s in exported}
    assert {"invoke_agent react", "react.agent", "react.finish", "chat ScriptedChatModel"} <= names
    assert {s.trace_id.hex() for _, s in exported} == {result.trace_id}
    service = {a.value.string_value for r, _ in exported for a in r.attributes if a.key == "service.name"}
    assert service == {"arag-test"}


# -- LangSmith -----------------------------------------------------------------------------------


class _LangSmith(BaseHTTPRequestHandler):
    """A stand-in LangSmith endpoint: answers ``/info`` and keeps every run upload."""

    uploads: list[tuple[str, bytes]] = []  # noqa: RUF012 - one endpoint per test

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def _reply(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def do_GET(self) -> None:
        self._reply()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).uploads.append((str(self.headers.get("Content-Type")), body))
        self._reply()

    do_PATCH = do_POST  # noqa: N815 - http.server's method naming


def _langsmith_runs(uploads: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
    """The runs of LangSmith's multipart uploads (a ``post.<id>`` part per new run)."""
    import email.parser
    import json

    runs = []
    for content_type, body in uploads:
        message = email.parser.BytesParser().parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
        for part in message.walk():
            name = part.get_param("name", header="content-disposition")
            if isinstance(name, str) and name.startswith("post.") and name.count(".") == 1:
                payload = part.get_payload(decode=True)
                assert isinstance(payload, bytes)
                runs.append(json.loads(payload))
    return runs


def _reset_langsmith() -> None:
    from langchain_core.tracers import langchain as tracer
    from langsmith import run_trees, utils

    utils.get_env_var.cache_clear()
    utils.get_tracer_project.cache_clear()
    run_trees._CLIENT = None  # type: ignore[attr-defined]
    tracer.rt._CLIENT = None  # type: ignore[attr-defined]


def test_langsmith_sees_the_react_run_as_a_tree_of_langchain_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """LANGSMITH_TRACING with a key: the agent's graph, its nodes, the model and the tool arrive
    as one trace, nested as LangGraph's own runs are (the project's wrappers keep LangChain's
    callback propagation)."""
    from langchain_core.tracers.langchain import wait_for_all_tracers

    _LangSmith.uploads = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LangSmith)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("LANGSMITH_TRACING", "true")
    monkeypatch.setenv("LANGSMITH_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("LANGSMITH_API_KEY", "test-key")
    monkeypatch.setenv("LANGSMITH_PROJECT", "arag-test")
    _reset_langsmith()
    try:
        call = {"name": "add", "args": {"a": 1, "b": 2}, "id": "c1", "type": "tool_call"}
        result = ReactAgent(scripted(AIMessage("", tool_calls=[call]), "It is 3."), tools=[add]).invoke("1 + 2?")
        wait_for_all_tracers()
    finally:
        monkeypatch.undo()
        _reset_langsmith()
        server.shutdown()
    assert result.exit_reason == "answered"
    runs = _langsmith_runs(_LangSmith.uploads)
    by_name: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        by_name.setdefault(run["name"], []).append(run)
    assert {"react", "agent", "tool", "finish", "ScriptedChatModel", "add"} <= set(by_name)
    assert len({r["trace_id"] for r in runs}) == 1
    ids = {r["id"]: r for r in runs}
    [graph] = by_name["react"]
    assert graph.get("parent_run_id") is None
    for model_run in by_name["ScriptedChatModel"]:
        assert model_run["run_type"] == "llm"
        assert ids[model_run["parent_run_id"]]["name"] == "agent"  # the model call inside its node
    [tool_run] = by_name["add"]
    assert tool_run["run_type"] == "tool"
    assert ids[tool_run["parent_run_id"]]["name"] == "tool"
