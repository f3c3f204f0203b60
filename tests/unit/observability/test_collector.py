"""The embedded collector: receives OTLP like Jaeger would, answers queries by id, service, operation."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from bookstore.observability.collector import CollectorClient, EmbeddedCollector, SpanStore
from bookstore.observability.otlp import LeanOTLPSpanExporter, encode_spans


@pytest.fixture
def collector() -> Iterator[EmbeddedCollector]:
    with EmbeddedCollector() as running:
        yield running


class Tee(SpanExporter):
    """Hands every span to two exporters: what was sent, and a copy to compare with."""

    def __init__(self, first: SpanExporter, second: SpanExporter) -> None:
        self.exporters = (first, second)

    def export(self, spans):  # type: ignore[no-untyped-def]
        results = [exporter.export(spans) for exporter in self.exporters]
        return results[0]

    def shutdown(self) -> None:
        for exporter in self.exporters:
            exporter.shutdown()


def make_trace(exporter: SpanExporter, service: str = "order") -> str:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("bookstore")
    with tracer.start_as_current_span(
        "POST /orders", kind=SpanKind.SERVER, attributes={"user.id": "u-1"}
    ) as root:
        with tracer.start_as_current_span("saga place_order") as saga:
            saga.add_event("circuit_breaker.rejected", {"breaker": "payment", "retry_after_s": 2.5})
            saga.set_status(Status(StatusCode.ERROR, "step pay failed"))
        with tracer.start_as_current_span("bookstore.rpc.v1.PaymentService/Pay", kind=SpanKind.CLIENT):
            pass
    provider.shutdown()
    return f"{root.get_span_context().trace_id:032x}"


def as_record_fields(span: ReadableSpan) -> tuple:  # type: ignore[type-arg]
    context = span.get_span_context()
    return (
        f"{context.trace_id:032x}",
        f"{context.span_id:016x}",
        f"{span.parent.span_id:016x}" if span.parent else None,
        span.name,
        span.kind.name,
        span.start_time,
        span.end_time,
        dict(span.attributes or {}),
        span.status.status_code.name,
        span.status.description or "",
        tuple((e.name, e.timestamp, dict(e.attributes or {})) for e in span.events),
    )


@pytest.mark.parametrize("exporter_class", [OTLPSpanExporter, LeanOTLPSpanExporter])
def test_what_the_otlp_exporter_sends_is_what_the_collector_gives_back(
    collector: EmbeddedCollector, exporter_class: type[OTLPSpanExporter]
) -> None:
    copy = InMemorySpanExporter()
    sent = exporter_class(endpoint=collector.otlp_endpoint, insecure=True)
    trace_id = make_trace(Tee(sent, copy))
    stored = CollectorClient(collector.query_url).trace(trace_id)
    expected = sorted((as_record_fields(s) for s in copy.get_finished_spans()), key=lambda f: f[5])
    got = [
        (
            s.trace_id, s.span_id, s.parent_id, s.name, s.kind, s.start_ns, s.end_ns, s.attributes, s.status,
            s.status_message, tuple((e.name, e.time_ns, e.attributes) for e in s.events),
        )
        for s in stored
    ]  # fmt: skip
    assert got == expected
    assert {s.service for s in stored} == {"order"}


def test_traces_are_found_by_service_and_operation_newest_first(collector: EmbeddedCollector) -> None:
    client = CollectorClient(collector.query_url)
    exporter = LeanOTLPSpanExporter(endpoint=collector.otlp_endpoint, insecure=True)
    first = make_trace(exporter, "order")
    exporter = LeanOTLPSpanExporter(endpoint=collector.otlp_endpoint, insecure=True)
    second = make_trace(exporter, "gateway")
    assert [t.trace_id for t in client.traces()] == [second, first]
    (summary,) = client.traces(service="order", operation="POST /orders")
    assert summary.trace_id == first
    assert summary.root_name == "POST /orders" and summary.span_count == 3 and summary.error
    assert summary.duration_s >= 0
    assert client.traces(service="inventory") == []
    assert [s.name for s in client.spans(service="gateway", operation="saga place_order")] == [
        "saga place_order"
    ]
    assert client.services() == ["gateway", "order"]
    assert client.stats()["spans"] == 6


def test_an_unknown_trace_is_an_empty_list_and_waiting_for_it_times_out_saying_so(
    collector: EmbeddedCollector,
) -> None:
    client = CollectorClient(collector.query_url)
    assert client.trace("0" * 32) == []
    assert client.trace("not-hex") == []
    with pytest.raises(TimeoutError, match="0 spans"):
        client.wait_for_trace("1" * 32, timeout_s=0.2, poll_s=0.05)


def test_waiting_for_a_trace_returns_once_its_services_have_reported(collector: EmbeddedCollector) -> None:
    trace_id = make_trace(LeanOTLPSpanExporter(endpoint=collector.otlp_endpoint, insecure=True))
    spans = CollectorClient(collector.query_url).wait_for_trace(trace_id, min_spans=3, services=["order"])
    assert len(spans) == 3
    (root,) = [s for s in spans if s.parent_id is None]
    assert all(s.parent_id == root.span_id for s in spans if s is not root)


class HoldingBack(SpanExporter):
    """Exports every span at once except those named ``held``, which wait for ``release()``:
    a parent that ends after its children and leaves in a later batch."""

    def __init__(self, exporter: SpanExporter, held: str) -> None:
        self.exporter, self.held = exporter, held
        self.waiting: list[ReadableSpan] = []

    def export(self, spans):  # type: ignore[no-untyped-def]
        self.waiting += [s for s in spans if s.name == self.held]
        return self.exporter.export([s for s in spans if s.name != self.held])

    def release(self) -> None:
        self.exporter.export(self.waiting)

    def shutdown(self) -> None:
        pass


def test_waiting_for_named_spans_returns_only_once_a_late_parent_has_arrived(
    collector: EmbeddedCollector,
) -> None:
    exporter = HoldingBack(
        LeanOTLPSpanExporter(endpoint=collector.otlp_endpoint, insecure=True), "POST /orders"
    )
    trace_id = make_trace(exporter)
    client = CollectorClient(collector.query_url)
    assert len(client.wait_for_trace(trace_id, min_spans=2)) == 2  # a count is satisfied without the root
    released = threading.Thread(target=exporter.release)
    released.start()
    try:
        spans = client.wait_for_trace(
            trace_id, min_spans=2, span_names={("order", "POST /orders")}, timeout_s=30
        )
    finally:
        released.join()
    assert "POST /orders" in {s.name for s in spans}
    with pytest.raises(TimeoutError, match="still missing"):
        client.wait_for_trace(trace_id, span_names={("order", "never sent")}, timeout_s=0.2, poll_s=0.05)


def test_clearing_forgets_every_span(collector: EmbeddedCollector) -> None:
    client = CollectorClient(collector.query_url)
    make_trace(LeanOTLPSpanExporter(endpoint=collector.otlp_endpoint, insecure=True))
    client.clear()
    assert client.traces() == [] and client.stats()["spans"] == 0


def test_the_store_forgets_the_oldest_traces_first_when_full() -> None:
    store = SpanStore(max_spans=5)
    ids = []
    for _ in range(3):  # three spans each
        copies = InMemorySpanExporter()
        ids.append(make_trace(copies))
        store.add(encode_spans(copies.get_finished_spans()))
    assert store.trace(ids[0]) == [] and store.trace(ids[1]) == []
    assert len(store.trace(ids[2])) == 3
    assert store.stats() == {"spans": 3, "traces": 1, "received": 9, "dropped": 6}


def test_the_collector_answers_gRPC_health_so_a_launcher_can_wait_for_it(
    collector: EmbeddedCollector,
) -> None:
    from bookstore.observability.collector import wait_until_ready

    wait_until_ready(collector.otlp_endpoint, collector.query_url, timeout_s=5)
