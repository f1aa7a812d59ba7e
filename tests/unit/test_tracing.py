"""Tracing is off unless configured, and then costs nothing; the spans file's format."""

from __future__ import annotations

import json
from contextlib import nullcontext

from core.settings import Settings
from monitoring import tracing


def test_off_without_an_endpoint_or_a_spans_file() -> None:
    settings = Settings()
    assert not settings.otel_exporter_otlp_endpoint and not settings.otel_spans_file
    assert tracing.configured() is False
    assert tracing.setup_tracing("api") is False
    assert tracing.enabled() is False
    # The helpers the request and task paths call do nothing at all.
    assert isinstance(tracing.span("outbox.dispatch", kind="orders"), nullcontext)
    assert tracing.current_traceparent() is None
    with tracing.order_span("order.resume", "00-" + "a" * 32 + "-" + "b" * 16 + "-01"):
        pass
    tracing.annotate(order_id="x")
    assert tracing.add_trace_ids(None, "info", {"event": "e"}) == {"event": "e"}


def test_trace_id_of_a_stored_traceparent() -> None:
    tid = "4bf92f3577b34da6a3ce929d0e0e4736"
    assert tracing.trace_id_of(f"00-{tid}-00f067aa0ba902b7-01") == tid
    assert tracing.trace_id_of(None) is None
    assert tracing.trace_id_of("garbage") is None


def test_json_lines_exporter_writes_one_line_per_span(tmp_path) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    path = tmp_path / "spans.jsonl"
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(tracing.JsonLinesSpanExporter(str(path))))
    t = provider.get_tracer("t")
    with t.start_as_current_span("parent") as parent, t.start_as_current_span("child") as child:
        child.set_attribute("oms.order_id", "o1")
    provider.shutdown()
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["name"] for r in rows] == ["child", "parent"]
    child_row, parent_row = rows
    assert child_row["trace_id"] == parent_row["trace_id"]
    assert child_row["parent_span_id"] == parent_row["span_id"]
    assert parent_row["parent_span_id"] is None
    assert child_row["attributes"] == {"oms.order_id": "o1"}
    assert parent_row["span_id"] == format(parent.get_span_context().span_id, "016x")
