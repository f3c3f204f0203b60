"""The lean OTLP encoder writes exactly what the stock encoder writes."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as stock_encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, TraceState

from bookstore.observability.otlp import SpanEncoder, encode_spans


def varied_spans() -> list:  # type: ignore[type-arg]
    exporter = InMemorySpanExporter()
    spans = []
    for service in ("order", "payment"):
        provider = TracerProvider(resource=Resource.create({"service.name": service, "replica": 0}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("bookstore", "0.1.0")
        remote = trace.SpanContext(
            0x0AF7651916CD43DD8448EB211C80319C,
            0xB7AD6B7169203331,
            is_remote=True,
            trace_flags=trace.TraceFlags(1),
            trace_state=TraceState([("vendor", "value")]),
        )
        parent = trace.set_span_in_context(trace.NonRecordingSpan(remote))
        attributes = {"s": "x", "i": 3, "f": 1.5, "b": True, "list": [1, 2], "strings": ("a", "b")}
        with tracer.start_as_current_span("server", parent, SpanKind.SERVER, attributes) as span:
            span.add_event("circuit_breaker.rejected", {"breaker": "payment", "retry_after_s": 4.5})
            with tracer.start_as_current_span("step", links=[Link(remote, {"why": "batch"})]) as child:
                child.set_status(Status(StatusCode.ERROR, "declined"))
            with tracer.start_as_current_span("ok") as fine:
                fine.set_status(Status(StatusCode.OK))
        spans.extend(exporter.get_finished_spans())
        exporter.clear()
    return spans


def test_the_lean_encoding_equals_the_stock_encoding_byte_for_byte() -> None:
    spans = varied_spans()
    lean, stock = encode_spans(spans), stock_encode_spans(spans)
    assert lean == stock
    assert lean.SerializeToString() == stock.SerializeToString()


def test_an_encoder_reused_across_batches_keeps_encoding_the_same() -> None:
    encoder = SpanEncoder()
    spans = varied_spans()
    assert encoder.encode(spans[:3]) == stock_encode_spans(spans[:3])
    assert encoder.encode(spans) == stock_encode_spans(spans)


def test_spans_of_two_processes_stay_under_their_own_resources() -> None:
    request = encode_spans(varied_spans())
    services = [
        next(a.value.string_value for a in rs.resource.attributes if a.key == "service.name")
        for rs in request.resource_spans
    ]
    assert services == ["order", "payment"]
    assert [len(rs.scope_spans[0].spans) for rs in request.resource_spans] == [3, 3]
