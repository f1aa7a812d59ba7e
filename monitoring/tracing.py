"""OpenTelemetry traces: one order is one trace, from ``POST /api/orders`` to ``shipped``.

Off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` (OTLP over HTTP, e.g. Jaeger or Tempo on
:4318) or ``OTEL_SPANS_FILE`` (JSON lines, one finished span a line: tests and debugging)
is set; off means no provider, no instrumentation and no span helpers doing anything.

When on, each process (the API, every worker pool child, beat) gets a tracer provider and
the official instrumentations: FastAPI (the HTTP server spans), Celery (the trace context
travels in each task message's headers, beside ``oms_correlation_id``, so every chain step
is a child of the step that queued it), requests (the Stripe SDK's HTTP client), httpx,
pymongo and redis. Every span carries ``oms.correlation_id`` and, where known,
``oms.order_id``. An order stores the ``traceparent`` of the request that created it, so
work that starts elsewhere for that order — a Stripe webhook, a resume by the stuck-order
sweep or an admin — joins the order's trace (with a link to the trace it came from).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import structlog
from opentelemetry import trace
from opentelemetry.trace import Link, format_span_id, format_trace_id
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from core.context import correlation_id_var
from core.settings import get_settings

ATTR_CORRELATION = "oms.correlation_id"
ATTR_ORDER = "oms.order_id"
_PROPAGATOR = TraceContextTextMapPropagator()
_lock = threading.Lock()
_state: dict[str, Any] = {"pid": None, "provider": None, "instrumentors": []}


def enabled() -> bool:
    """True once this process has set tracing up (cheap: a dict lookup)."""
    return _state["pid"] == os.getpid()


def configured() -> bool:
    """True if the settings ask for traces (an OTLP endpoint or a spans file)."""
    s = get_settings()
    return bool(s.otel_exporter_otlp_endpoint or s.otel_spans_file)


class JsonLinesSpanExporter:
    """Appends each finished span as one JSON line (OTLP-like fields) to a file.

    Several processes may share the file: each line is written with one ``O_APPEND``
    write, which POSIX keeps whole for a regular file.
    """

    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        lines = "".join(json.dumps(span_record(s), default=str) + "\n" for s in spans)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, lines.encode())
        finally:
            os.close(fd)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def span_record(span: Any) -> dict[str, Any]:
    """A finished SDK span as a flat dict (the spans file's line format)."""
    ctx = span.get_span_context()
    parent = span.parent
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": format_trace_id(ctx.trace_id),
        "span_id": format_span_id(ctx.span_id),
        "parent_span_id": format_span_id(parent.span_id) if parent else None,
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
        "links": [
            {"trace_id": format_trace_id(link.context.trace_id)} for link in span.links or ()
        ],
        "service": (span.resource.attributes or {}).get("service.name"),
        "pid": os.getpid(),
    }


def _context_processor():
    from opentelemetry.sdk.trace import SpanProcessor

    class OrderContextProcessor(SpanProcessor):
        """Stamps the correlation id and order id of the running request/task on each span."""

        def on_start(self, span: Any, parent_context: Any = None) -> None:
            cid = correlation_id_var.get()
            if cid:
                span.set_attribute(ATTR_CORRELATION, cid)
            order_id = structlog.contextvars.get_contextvars().get("order_id")
            if order_id:
                span.set_attribute(ATTR_ORDER, str(order_id))

    return OrderContextProcessor()


def setup_tracing(component: str, *, exporter: Any = None) -> bool:
    """Set tracing up in this process if configured (or if ``exporter`` is given).

    Idempotent per process; call it again after a fork (worker pool children do, from
    ``worker_process_init``). Returns whether tracing is on.
    """
    if enabled():
        return True
    settings = get_settings()
    if exporter is None and not configured():
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    with _lock:
        if enabled():
            return True
        resource = Resource.create(
            {
                "service.name": f"{settings.otel_service_name}-{component}",
                "service.namespace": settings.otel_service_name,
                "deployment.environment": settings.app_env,
            }
        )
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(_context_processor())
        if exporter is not None:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        if settings.otel_spans_file:
            # Written as each span ends: the file is for tests and debugging, not volume.
            provider.add_span_processor(
                SimpleSpanProcessor(JsonLinesSpanExporter(settings.otel_spans_file))
            )
        if settings.otel_exporter_otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        _install_global(provider)
        _instrument(provider)
        _state["provider"] = provider
        _state["pid"] = os.getpid()
    return True


def _install_global(provider: Any) -> None:
    # The API allows one global provider per process; after a fork (or a test's second
    # setup) the instrumentations below get theirs explicitly, so spans still go to it.
    current = trace.get_tracer_provider()
    if isinstance(current, trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)


def _instrument(provider: Any) -> None:
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    done = []
    for instrumentor in (
        CeleryInstrumentor(),
        RequestsInstrumentor(),
        HTTPXClientInstrumentor(),
        PymongoInstrumentor(),
        RedisInstrumentor(),
    ):
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()  # a fork's copy points at the parent's provider
        instrumentor.instrument(tracer_provider=provider)
        done.append(instrumentor)
    _state["instrumentors"] = done


def instrument_app(app: Any) -> None:
    """FastAPI server spans for ``app`` (no-op when tracing is off)."""
    if not enabled():
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=_state["provider"], excluded_urls="/metrics,/health/live"
    )


def shutdown_tracing() -> None:
    """Flush, stop the instrumentations and switch tracing off in this process (tests)."""
    with _lock:
        for instrumentor in _state["instrumentors"]:
            instrumentor.uninstrument()
        provider = _state["provider"]
        if provider is not None:
            provider.force_flush()
            provider.shutdown()
        _state.update(pid=None, provider=None, instrumentors=[])


def tracer() -> trace.Tracer:
    return _state["provider"].get_tracer("oms")


def span(name: str, **attributes: Any):
    """A child span of the current one; a null context when tracing is off."""
    if not enabled():
        return nullcontext()
    attrs = {f"oms.{k}": v for k, v in attributes.items() if v is not None}
    return tracer().start_as_current_span(name, attributes=attrs)


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span (None when off or outside a span)."""
    if not enabled():
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def trace_id_of(traceparent: str | None) -> str | None:
    """The 32-hex trace id inside a stored ``traceparent``."""
    parts = (traceparent or "").split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


@contextmanager
def order_span(name: str, traceparent: str | None, **attributes: Any) -> Iterator[None]:
    """Work done for an order from another trace (webhook, sweep, admin resume).

    The span is a child of the order's own trace (its stored ``traceparent``), linked to
    the trace of the request or job that does the work; tasks queued inside it carry the
    order's trace on.
    """
    if not enabled():
        yield
        return
    here = trace.get_current_span().get_span_context()
    links = [Link(here)] if here.is_valid else []
    parent = _PROPAGATOR.extract({"traceparent": traceparent}) if traceparent else None
    attrs = {f"oms.{k}": v for k, v in attributes.items() if v is not None}
    with tracer().start_as_current_span(name, context=parent, links=links, attributes=attrs):
        yield


def annotate(**attributes: Any) -> None:
    """Set ``oms.<key>`` attributes on the current span (no-op when off)."""
    if not enabled():
        return
    current = trace.get_current_span()
    for key, value in attributes.items():
        if value is not None:
            current.set_attribute(f"oms.{key}", value)


def add_trace_ids(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: ``trace_id``/``span_id`` of the current span on every line."""
    if _state["pid"] is not None:
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            event_dict.setdefault("trace_id", format_trace_id(ctx.trace_id))
            event_dict.setdefault("span_id", format_span_id(ctx.span_id))
    return event_dict
