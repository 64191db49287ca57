"""OpenTelemetry spans for the agents' work, off (and nearly free) unless a tracer provider is set.

The agents, graphs and tools call :func:`span` around what an operator wants to see: a run, a
graph node, a model call, a tool call, a retrieval, a recursive sub-call. Nothing here configures
OpenTelemetry or imports it: while no application has set an SDK tracer provider (the CLI and
``arag serve`` do when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_TRACES_EXPORTER`` is set, see
:mod:`agents.telemetry`; a library user sets their own), every call is a dictionary look-up and a
no-op context manager. Attribute names follow OpenTelemetry's GenAI semantic conventions where
they exist (``gen_ai.operation.name``, ``gen_ai.request.model``, ``gen_ai.usage.input_tokens``,
``gen_ai.tool.name``, ...); the rest are ``arag.*``.

Prompts, answers and document text are never recorded unless :data:`capture_content` is on
(``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``): spans carry sizes and counts.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

__all__ = [
    "TRACER",
    "capture_content",
    "enabled",
    "node",
    "set_attributes",
    "span",
    "start_span",
    "stepped",
    "trace_id_of",
]

TRACER = "arag"
"""The instrumentation scope of every span."""

capture_content = False
"""Record prompt, answer and document text on spans (set by :func:`agents.telemetry.configure_tracing`)."""

T = TypeVar("T")
AttributeValue = str | bool | int | float | list[str] | list[int] | list[float]


def _api() -> Any | None:
    """``opentelemetry.trace`` when an SDK tracer provider is set, else ``None`` (tracing off)."""
    module = sys.modules.get("opentelemetry.trace")
    if module is None:
        return None
    provider = module.get_tracer_provider()
    if isinstance(provider, module.ProxyTracerProvider | module.NoOpTracerProvider):
        return None
    return module


def enabled() -> bool:
    """Whether spans are being recorded (an SDK tracer provider is set)."""
    return _api() is not None


def _clean(attributes: Mapping[str, Any] | None) -> dict[str, AttributeValue]:
    """Attributes OpenTelemetry takes: ``None`` dropped, other non-primitive values as text."""
    clean: dict[str, AttributeValue] = {}
    for key, value in (attributes or {}).items():
        if value is None:
            continue
        if isinstance(value, str | bool | int | float):
            clean[key] = value
        elif isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            clean[key] = [str(v) for v in value]
        else:
            clean[key] = str(value)
    return clean


@contextlib.contextmanager
def span(name: str, attributes: Mapping[str, Any] | None = None, *, kind: str = "internal") -> Iterator[Any]:
    """A span around the block, the current span inside it (children nest under it); yields the
    span (``None`` when tracing is off). An exception leaving the block is recorded on it and
    marks it as an error.

    Args:
        kind: ``internal``, ``client`` (a model call) or ``server``.
    """
    api = _api()
    if api is None:
        yield None
        return
    tracer = api.get_tracer(TRACER)
    with tracer.start_as_current_span(
        name,
        attributes=_clean(attributes),
        kind=_kind(api, kind),
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except BaseException as exc:
            _failed(api, current, exc)
            raise


def start_span(
    name: str,
    attributes: Mapping[str, Any] | None = None,
    *,
    kind: str = "internal",
    parent_headers: Mapping[str, str] | None = None,
) -> Any | None:
    """A span started but not made current (for work spread over a generator's steps: see
    :func:`stepped`); ``None`` when tracing is off. End it with ``span.end()``.

    Args:
        parent_headers: A request's headers: a W3C ``traceparent`` in them makes the span a child
            of the caller's (the trace continues across the HTTP call).
    """
    api = _api()
    if api is None:
        return None
    context = None
    if parent_headers is not None:
        from opentelemetry.propagate import extract

        context = extract({k.lower(): v for k, v in parent_headers.items()})
    tracer = api.get_tracer(TRACER)
    return tracer.start_span(name, context=context, attributes=_clean(attributes), kind=_kind(api, kind))


def stepped(items: Iterator[T], parent: Any | None) -> Iterator[T]:
    """``items``, each step taken with ``parent`` as the current span: what a graph's nodes do
    inside one ``next()`` nests under ``parent``, and between steps the caller's context is its
    own again (a generator must not leave a context attached across a ``yield``)."""
    if parent is None:
        yield from items
        return
    from opentelemetry import context

    api = _api()
    assert api is not None  # a span exists, so tracing is on
    where = api.set_span_in_context(parent)
    while True:
        token = context.attach(where)
        try:
            item = next(items)
        except StopIteration:
            return
        finally:
            context.detach(token)
        yield item


def node(graph: str, name: str, function: Callable[[Any, Any], Any]) -> Any:  # Any: LangGraph types nodes by protocols
    """A graph node (``function(state, runtime)``) run inside a span ``{graph}.{name}``."""
    attributes = {"arag.graph": graph, "arag.node": name}
    label = f"{graph}.{name}"

    def run(state: Any, runtime: Any) -> Any:
        with span(label, attributes):
            return function(state, runtime)

    run.__name__ = getattr(function, "__name__", name)
    run.__doc__ = function.__doc__
    return run


def set_attributes(target: Any | None, attributes: Mapping[str, Any]) -> None:
    """Add attributes to a span (nothing when ``target`` is ``None``: tracing off)."""
    if target is not None:
        target.set_attributes(_clean(attributes))


def trace_id_of(target: Any | None) -> str | None:
    """The trace id of a span as 32 hex digits, or ``None``."""
    if target is None:
        return None
    context = target.get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else None


def _failed(api: Any, target: Any, exc: BaseException) -> None:
    """Mark a span as failed by ``exc``, unless it is LangGraph's control flow (an interrupt that
    pauses the run for a person, a command to a parent graph): that is recorded, not an error."""
    if type(exc).__module__.startswith("langgraph.") and type(exc).__name__ in (
        "GraphInterrupt",
        "GraphBubbleUp",
        "ParentCommand",
    ):
        target.set_attribute("arag.interrupted", True)
        return
    target.record_exception(exc)
    target.set_status(api.Status(api.StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:500]))
    target.set_attribute("error.type", type(exc).__name__)


def _kind(api: Any, kind: str) -> Any:
    return {"client": api.SpanKind.CLIENT, "server": api.SpanKind.SERVER}.get(kind, api.SpanKind.INTERNAL)
