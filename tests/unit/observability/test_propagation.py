"""Trace context through message headers: what the publisher writes, the consumer reads back."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from bookstore.observability.propagation import consumer_span, extract_context, inject_headers, producer_span

from .conftest import Recorded


def test_with_tracing_off_injecting_leaves_the_headers_as_they_were() -> None:
    headers = {"content-type": "json"}
    assert inject_headers(headers) is headers
    assert headers == {"content-type": "json"}
    assert inject_headers() == {}


def test_with_tracing_off_the_message_spans_do_nothing() -> None:
    with producer_span("OrderCreated", {"a": 1}) as out:
        assert out == {"a": 1}
    with consumer_span("OrderCreated", out) as span:
        assert span is None


def test_injecting_writes_the_current_span_as_a_w3c_traceparent(recorded: Recorded) -> None:
    with recorded.tracer.start_as_current_span("publish") as span:
        headers = inject_headers({})
    context = span.get_span_context()
    version, trace_id, span_id, flags = headers["traceparent"].split("-")
    assert (version, trace_id, span_id) == ("00", f"{context.trace_id:032x}", f"{context.span_id:016x}")
    assert int(flags, 16) & 0x01, "the sampled flag"


def test_without_a_current_span_nothing_is_injected(recorded: Recorded) -> None:
    assert inject_headers({}) == {}


def test_extracting_gives_back_the_context_that_was_injected(recorded: Recorded) -> None:
    with recorded.tracer.start_as_current_span("publish") as span:
        headers = inject_headers({})
    extracted = extract_context(headers)
    assert extracted is not None
    remote = trace.get_current_span(extracted).get_span_context()
    assert remote.trace_id == span.get_span_context().trace_id
    assert remote.span_id == span.get_span_context().span_id
    assert remote.is_remote


def test_header_values_that_arrive_as_bytes_are_read_too(recorded: Recorded) -> None:
    headers = {"traceparent": b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    extracted = extract_context(headers)
    assert extracted is not None
    assert trace.get_current_span(extracted).get_span_context().trace_id == 0x0AF7651916CD43DD8448EB211C80319C


@pytest.mark.parametrize("headers", [None, {}, {"traceparent": "garbage"}, {"tracestate": "a=b"}])
def test_headers_without_a_valid_context_extract_to_none(headers: dict[str, str] | None) -> None:
    assert extract_context(headers) is None


def test_the_consumer_span_is_a_child_of_the_producer_span_which_is_a_child_of_the_stored_context(
    recorded: Recorded,
) -> None:
    with recorded.tracer.start_as_current_span("CreateOrder"):
        stored = inject_headers({})  # written to the outbox with the order
    with producer_span(
        "OrderCreated", stored, exchange="bookstore.events", routing_key="order.created"
    ) as sent:
        pass
    with consumer_span("OrderCreated", sent, queue="notification"):
        pass
    create, publish, process = (
        recorded.named(n) for n in ("CreateOrder", "publish OrderCreated", "process OrderCreated")
    )
    assert publish.kind is SpanKind.PRODUCER and process.kind is SpanKind.CONSUMER
    assert publish.parent is not None and publish.parent.span_id == create.context.span_id
    assert process.parent is not None and process.parent.span_id == publish.context.span_id
    assert {create.context.trace_id, publish.context.trace_id, process.context.trace_id} == {
        create.context.trace_id
    }
    assert publish.attributes is not None
    assert publish.attributes["messaging.rabbitmq.destination.routing_key"] == "order.created"
    assert stored["traceparent"] != sent["traceparent"]


def test_a_handler_that_raises_marks_the_consumer_span_failed_and_the_error_goes_on(
    recorded: Recorded,
) -> None:
    with pytest.raises(RuntimeError, match="boom"), consumer_span("OrderCreated", {}, queue="analytics"):
        raise RuntimeError("boom")
    span = recorded.named("process OrderCreated")
    assert span.status.status_code is StatusCode.ERROR
    assert [event.name for event in span.events] == ["exception"]


def test_a_consumer_span_is_current_while_the_message_is_handled(recorded: Recorded) -> None:
    with consumer_span("OrderCreated", {}, queue="analytics") as span:
        assert trace.get_current_span() is span
    assert trace.get_current_span() is not span
