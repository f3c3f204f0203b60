"""Trace context across a message broker: W3C ``traceparent`` in AMQP message headers.

**What.** A gRPC call carries its trace context in metadata; a RabbitMQ message carries it
in its headers, the same one-line ``traceparent`` (and ``tracestate`` when there is one).
The publisher writes the current span's context into the headers; the consumer, perhaps
minutes later and in another process, reads it back and starts its span as a child. The
trace then runs on through the queue::

    order: CreateOrder  ->  order: publish OrderCreated  ->  notification: process OrderCreated

**With an outbox** the event is written in the order's transaction and published later by
a relay thread, whose current span has nothing to do with the order. So capture the
context *when the event is written* (``inject_headers({})``, stored with the event), and
let the relay publish inside ``producer_span(event_type, stored_headers, ...)``: its span is
a child of the stored context, and the headers it yields carry the producer span onward.

The calls the messaging code makes::

    headers = inject_headers({})                         # when writing to the outbox
    with producer_span("OrderCreated", headers, exchange=x, routing_key=k) as out:
        channel.basic_publish(x, k, body, pika.BasicProperties(headers=out))
    with consumer_span("OrderCreated", properties.headers, queue="notification"):
        handle(event)                                    # an exception marks the span failed

**Off costs nothing.** With tracing off each of these returns at once: the headers as they
were, a context manager that does nothing.

**When not to.** Batch consumers that fold many messages into one unit of work should link
the messages' contexts to one span rather than parent it to one of them (span links); the
course's consumers handle one message at a time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from bookstore.observability import tracing
from bookstore.observability.grpc_client import traceparent

TRACE_HEADERS = ("traceparent", "tracestate")
MESSAGING_SYSTEM = "rabbitmq"
_W3C = TraceContextTextMapPropagator()


def inject_headers(headers: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the current span's context into ``headers`` (a new dict if None) and return them.

    Unchanged when tracing is off or no span is current.
    """
    if headers is None:
        headers = {}
    if tracing.tracer() is None:
        return headers
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        _write(headers, span_context)
    return headers


def _write(headers: MutableMapping[str, Any], span_context: trace.SpanContext) -> None:
    headers["traceparent"] = traceparent(span_context)
    if span_context.trace_state:
        headers["tracestate"] = span_context.trace_state.to_header()


def extract_context(headers: Mapping[str, Any] | None) -> otel_context.Context | None:
    """The trace context carried by message ``headers``, or None when they carry none."""
    if not headers:
        return None
    carrier = {}
    for key in TRACE_HEADERS:
        value = headers.get(key)
        if value is not None:
            # pika may hand header values back as bytes.
            carrier[key] = value.decode("ascii", errors="replace") if isinstance(value, bytes) else str(value)
    if "traceparent" not in carrier:
        return None
    extracted = _W3C.extract(carrier)
    return extracted if trace.get_current_span(extracted).get_span_context().is_valid else None


@contextlib.contextmanager
def producer_span(
    event_type: str,
    headers: Mapping[str, Any] | None = None,
    *,
    exchange: str = "",
    routing_key: str = "",
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[dict[str, Any]]:
    """A PRODUCER span around one publish; yields the headers to publish with.

    Its parent is the context in ``headers`` (captured when the event was written to the
    outbox) or, without one, the current span. The yielded headers are a copy of ``headers``
    carrying this span's context, so the consumer's span becomes its child.
    """
    out = dict(headers or {})
    tracer = tracing.tracer()
    if tracer is None:
        yield out
        return
    parent = extract_context(headers)
    span = tracer.start_span(
        f"publish {event_type}",
        parent,
        SpanKind.PRODUCER,
        {
            "messaging.system": MESSAGING_SYSTEM,
            "messaging.operation.type": "publish",
            "messaging.destination.name": exchange,
            "messaging.rabbitmq.destination.routing_key": routing_key,
            "bookstore.event_type": event_type,
            **(attributes or {}),
        },
    )
    _write(out, span.get_span_context())
    with _current(span, parent):
        yield out


@contextlib.contextmanager
def consumer_span(
    event_type: str,
    headers: Mapping[str, Any] | None,
    *,
    queue: str = "",
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[trace.Span | None]:
    """A CONSUMER span around handling one message, child of the span that published it.

    Yields the span (None with tracing off). An exception leaving the block is recorded on
    the span, which is marked failed, and goes on to the caller.
    """
    tracer = tracing.tracer()
    if tracer is None:
        yield None
        return
    parent = extract_context(headers)
    span = tracer.start_span(
        f"process {event_type}",
        parent,
        SpanKind.CONSUMER,
        {
            "messaging.system": MESSAGING_SYSTEM,
            "messaging.operation.type": "process",
            "messaging.destination.name": queue,
            "bookstore.event_type": event_type,
            **(attributes or {}),
        },
    )
    with _current(span, parent):
        yield span


@contextlib.contextmanager
def _current(span: trace.Span, parent: otel_context.Context | None) -> Iterator[None]:
    token = otel_context.attach(trace.set_span_in_context(span, parent))
    try:
        yield
    except BaseException as error:
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        raise
    finally:
        span.end()
        otel_context.detach(token)
