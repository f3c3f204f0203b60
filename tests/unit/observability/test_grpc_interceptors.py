"""The lean gRPC interceptors: one client and one server span per call, linked across the wire.

A real gRPC server on a loopback port runs a small OrderService double; the spans are kept
in memory. Metrics are read from the process's default Prometheus registry, as differences.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import REGISTRY

from bookstore.observability.grpc_client import TelemetryClientInterceptor
from bookstore.observability.grpc_server import TelemetryServerInterceptor, split_method
from bookstore.rpc.v1 import order_pb2, order_pb2_grpc

from .conftest import Recorded

SERVICE = "bookstore.rpc.v1.OrderService"
USER = str(uuid.UUID(int=7))


class OrdersDouble(order_pb2_grpc.OrderServiceServicer):
    """GetOrder answers by the order id it is asked for: a few ids fail on purpose."""

    def GetOrder(
        self, request: order_pb2.GetOrderRequest, context: grpc.ServicerContext
    ) -> order_pb2.GetOrderResponse:
        if request.order_id == "missing":
            context.abort(grpc.StatusCode.NOT_FOUND, "no order missing")
        if request.order_id == "down":
            context.abort(grpc.StatusCode.UNAVAILABLE, "database down")
        if request.order_id == "bug":
            raise RuntimeError("a bug in the servicer")
        order = order_pb2.Order(order_id=request.order_id, user_id=request.user_id, total_cents=1200)
        return order_pb2.GetOrderResponse(order=order)


@pytest.fixture
def channel(recorded: Recorded) -> Iterator[grpc.Channel]:
    """A channel with the client interceptor to a server with the server interceptor."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        interceptors=[TelemetryServerInterceptor(recorded.tracer, with_metrics=True)],
    )
    order_pb2_grpc.add_OrderServiceServicer_to_server(OrdersDouble(), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.intercept_channel(
        grpc.insecure_channel(f"127.0.0.1:{port}"),
        TelemetryClientInterceptor(recorded.tracer, with_metrics=True),
    )
    try:
        yield channel
    finally:
        channel.close()
        server.stop(None)


@pytest.fixture
def stub(channel: grpc.Channel) -> order_pb2_grpc.OrderServiceStub:
    return order_pb2_grpc.OrderServiceStub(channel)


def spans_by_kind(recorded: Recorded) -> dict[SpanKind, ReadableSpan]:
    spans = recorded.spans()
    by_kind = {span.kind: span for span in spans}
    assert len(by_kind) == len(spans) == 2, [(s.name, s.kind) for s in spans]
    return by_kind


def handled(side: str, method: str, code: str) -> float:
    value = REGISTRY.get_sample_value(
        f"grpc_{side}_handled_total", {"grpc_service": SERVICE, "grpc_method": method, "grpc_code": code}
    )
    return value or 0.0


def test_a_call_makes_a_client_span_and_a_server_span_that_is_its_child(
    recorded: Recorded, stub: order_pb2_grpc.OrderServiceStub
) -> None:
    stub.GetOrder(order_pb2.GetOrderRequest(order_id="o-1", user_id=USER), timeout=5)
    spans = spans_by_kind(recorded)
    client, server = spans[SpanKind.CLIENT], spans[SpanKind.SERVER]
    assert client.name == server.name == f"{SERVICE}/GetOrder"
    assert server.context.trace_id == client.context.trace_id
    assert server.parent is not None and server.parent.span_id == client.context.span_id
    assert server.parent.is_remote
    for span in (client, server):
        assert span.attributes is not None
        assert span.attributes["rpc.system"] == "grpc"
        assert span.attributes["rpc.service"] == SERVICE
        assert span.attributes["rpc.method"] == "GetOrder"
        assert span.attributes["rpc.grpc.status_code"] == 0
        assert span.status.status_code is StatusCode.UNSET


def test_the_client_span_is_a_child_of_the_callers_current_span(
    recorded: Recorded, stub: order_pb2_grpc.OrderServiceStub
) -> None:
    with recorded.tracer.start_as_current_span("POST /orders") as outer:
        stub.GetOrder(order_pb2.GetOrderRequest(order_id="o-1"), timeout=5)
    client = next(s for s in recorded.spans() if s.kind is SpanKind.CLIENT)
    assert client.parent is not None and client.parent.span_id == outer.get_span_context().span_id


def test_user_and_order_ids_from_the_messages_go_on_the_spans(
    recorded: Recorded, stub: order_pb2_grpc.OrderServiceStub
) -> None:
    stub.GetOrder(order_pb2.GetOrderRequest(order_id="o-42", user_id=USER), timeout=5)
    spans = spans_by_kind(recorded)
    for span in spans.values():
        assert span.attributes is not None
        assert span.attributes["user.id"] == USER
        assert span.attributes["order.id"] == "o-42"
    assert spans[SpanKind.SERVER].attributes is not None
    assert spans[SpanKind.SERVER].attributes["order.status"] == "unspecified"


def test_a_refusal_is_an_error_for_the_client_but_a_correct_answer_for_the_server(
    recorded: Recorded, stub: order_pb2_grpc.OrderServiceStub
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetOrder(order_pb2.GetOrderRequest(order_id="missing"), timeout=5)
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    spans = spans_by_kind(recorded)
    client, server = spans[SpanKind.CLIENT], spans[SpanKind.SERVER]
    assert client.status.status_code is StatusCode.ERROR
    assert client.status.description == "NOT_FOUND: no order missing"
    assert server.status.status_code is StatusCode.UNSET
    assert server.attributes is not None and server.attributes["rpc.grpc.status_code"] == 5
    assert [event.name for event in server.events] == ["grpc.abort"]


def test_a_server_failure_is_an_error_on_both_sides(
    recorded: Recorded, stub: order_pb2_grpc.OrderServiceStub
) -> None:
    with pytest.raises(grpc.RpcError):
        stub.GetOrder(order_pb2.GetOrderRequest(order_id="down"), timeout=5)
    spans = spans_by_kind(recorded)
    assert spans[SpanKind.SERVER].status.status_code is StatusCode.ERROR
    assert spans[SpanKind.SERVER].status.description == "UNAVAILABLE: database down"
    assert spans[SpanKind.CLIENT].status.status_code is StatusCode.ERROR


def test_an_exception_in_the_servicer_is_recorded_with_its_type_and_counted_as_unknown(
    recorded: Recorded, stub: order_pb2_grpc.OrderServiceStub
) -> None:
    before = handled("server", "GetOrder", "UNKNOWN")
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetOrder(order_pb2.GetOrderRequest(order_id="bug"), timeout=5)
    assert caught.value.code() is grpc.StatusCode.UNKNOWN
    server = spans_by_kind(recorded)[SpanKind.SERVER]
    assert server.status.status_code is StatusCode.ERROR
    (event,) = server.events
    assert event.name == "exception" and event.attributes is not None
    assert event.attributes["exception.type"] == "RuntimeError"
    assert server.attributes is not None and server.attributes["rpc.grpc.status_code"] == 2
    assert handled("server", "GetOrder", "UNKNOWN") == before + 1


def test_every_call_is_counted_on_both_sides_by_method_and_code(
    recorded: Recorded, stub: order_pb2_grpc.OrderServiceStub
) -> None:
    ok_server, ok_client = handled("server", "GetOrder", "OK"), handled("client", "GetOrder", "OK")
    missing_client = handled("client", "GetOrder", "NOT_FOUND")
    stub.GetOrder(order_pb2.GetOrderRequest(order_id="o-1"), timeout=5)
    stub.GetOrder(order_pb2.GetOrderRequest(order_id="o-2"), timeout=5)
    with pytest.raises(grpc.RpcError):
        stub.GetOrder(order_pb2.GetOrderRequest(order_id="missing"), timeout=5)
    assert handled("server", "GetOrder", "OK") == ok_server + 2
    assert handled("client", "GetOrder", "OK") == ok_client + 2
    assert handled("client", "GetOrder", "NOT_FOUND") == missing_client + 1
    labels = {"grpc_service": SERVICE, "grpc_method": "GetOrder"}
    assert (REGISTRY.get_sample_value("grpc_server_handling_seconds_count", labels) or 0) >= 3


def test_a_future_call_ends_its_span_when_it_finishes(
    recorded: Recorded, stub: order_pb2_grpc.OrderServiceStub
) -> None:
    future = stub.GetOrder.future(order_pb2.GetOrderRequest(order_id="o-9"), timeout=5)
    assert future.result().order.order_id == "o-9"
    client = next(s for s in recorded.spans() if s.kind is SpanKind.CLIENT)
    assert client.end_time is not None


def test_health_checks_are_left_out_of_traces(recorded: Recorded, channel: grpc.Channel) -> None:
    health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert recorded.spans() == []


def test_a_method_name_splits_into_service_and_method() -> None:
    assert split_method("/bookstore.rpc.v1.OrderService/CreateOrder") == (SERVICE, "CreateOrder")
