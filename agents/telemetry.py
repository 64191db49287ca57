"""Turning OpenTelemetry on from the standard environment variables (the CLI and ``arag serve``
call :func:`configure_tracing` at start).

Tracing is off unless configured: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) sends spans over OTLP/HTTP to a collector (Jaeger, Tempo,
Honeycomb, an OpenTelemetry Collector), ``OTEL_TRACES_EXPORTER=console`` prints them, and
``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none`` keeps them off. ``OTEL_SERVICE_NAME``
(default ``arag``), ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_EXPORTER_OTLP_HEADERS`` and the other
standard variables are read by the SDK itself. Prompts, answers and document text stay out of the
spans unless ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``.

A library user who sets a tracer provider of their own (``trace.set_tracer_provider(...)``) needs
none of this: the agents' spans go to whatever provider is set (:mod:`tools.tracing`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from tools import tracing

__all__ = ["configure_tracing", "tracing_wanted"]

logger = logging.getLogger("arag.telemetry")


def tracing_wanted(env: Mapping[str, str] | None = None) -> str | None:
    """The exporter the environment asks for (``otlp`` or ``console``), or ``None`` (tracing off)."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter in ("none", ""):
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        return "otlp" if endpoint and exporter != "none" else None
    if exporter in ("otlp", "console"):
        return exporter
    logger.warning("OTEL_TRACES_EXPORTER=%s is not supported here (otlp, console, none): tracing stays off", exporter)
    return None


def configure_tracing(env: Mapping[str, str] | None = None) -> bool:
    """Set up an SDK tracer provider when the environment asks for one; whether tracing is on.

    Does nothing when a provider is set already (by the application, or an earlier call), so it
    is safe to call from every entry point.
    """
    env = os.environ if env is None else env
    tracing.capture_content = env.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "").lower() == "true"
    if tracing.enabled():
        return True
    exporter = tracing_wanted(env)
    if exporter is None:
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
    except ImportError as exc:
        msg = f"tracing needs the OpenTelemetry SDK ({exc}): pip install 'agentic-rag[otel]'"
        raise RuntimeError(msg) from exc
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME") or "arag"})
    provider = TracerProvider(resource=resource)
    chosen: SpanExporter
    if exporter == "console":
        chosen = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        chosen = OTLPSpanExporter()  # endpoint, headers, timeout: the OTEL_EXPORTER_OTLP_* variables
    provider.add_span_processor(BatchSpanProcessor(chosen))
    trace.set_tracer_provider(provider)
    logger.info("tracing on: %s exporter", exporter)
    return True
