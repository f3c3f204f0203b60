"""The metrics every process exposes: names, types, labels, and the helpers that feed them."""

from __future__ import annotations

import urllib.request

import grpc
import pytest
from prometheus_client import REGISTRY

from bookstore.gateway.admission import Admission
from bookstore.observability import metrics
from bookstore.observability.business import CreateOrderObserver, message_attributes
from bookstore.observability.prometheus import metric_types, parse_samples
from bookstore.resilience import BreakerRegistry, BreakerSettings
from bookstore.resilience.timeline import ManualClock
from bookstore.rpc.v1 import order_pb2

# Family name (as Prometheus's text parser names it: a counter without ``_total``) -> type.
EXPECTED = {
    "http_requests": "counter",
    "http_request_duration_seconds": "histogram",
    "http_requests_in_progress": "gauge",
    "orders_created": "counter",
    "orders_failed": "counter",
    "order_creation_duration_seconds": "histogram",
    "orders_in_progress": "gauge",
    "order_value_cents": "summary",
    "circuit_breaker_state": "gauge",
    "circuit_breaker_requests": "counter",
    "gateway_order_admission_bound": "gauge",
    "gateway_order_admission_cuts": "counter",
    "saga_executions": "counter",
    "saga_execution_duration_seconds": "histogram",
    "saga_compensations": "counter",
    "messages_published": "counter",
    "messages_consumed": "counter",
    "message_processing_duration_seconds": "histogram",
    "message_queue_depth": "gauge",
    "outbox_pending_events": "gauge",
    "grpc_server_handled": "counter",
    "grpc_server_handling_seconds": "histogram",
    "grpc_client_handled": "counter",
    "grpc_client_handling_seconds": "histogram",
}


def test_every_metric_is_exposed_under_its_name_with_its_type() -> None:
    body, content_type = metrics.render_metrics()
    assert content_type.startswith("text/plain")
    types = metric_types(body.decode())
    assert {name: types.get(name) for name in EXPECTED} == EXPECTED


def test_counters_are_exposed_with_the_total_suffix_prometheus_queries_use() -> None:
    names = metrics.exported_series_names()
    assert {"http_requests_total", "orders_created_total", "circuit_breaker_requests_total"} <= names
    assert {
        "http_request_duration_seconds_bucket",
        "order_value_cents_sum",
        "order_value_cents_count",
    } <= names


def test_latency_buckets_start_below_a_loopback_call_and_end_beyond_any_deadline() -> None:
    assert metrics.LATENCY_BUCKETS[0] <= 0.0001
    assert metrics.LATENCY_BUCKETS[-1] >= 10.0
    assert list(metrics.LATENCY_BUCKETS) == sorted(metrics.LATENCY_BUCKETS)


def test_every_label_is_one_of_a_short_fixed_list() -> None:
    allowed = {
        "method", "route", "status", "grpc_service", "grpc_method", "grpc_code", "reason", "saga",
        "outcome", "step", "exchange", "routing_key", "queue", "breaker",
    }  # fmt: skip
    for family in REGISTRY.collect():
        if family.name.split("_")[0] in ("python", "process"):
            continue
        for sample in family.samples:
            assert set(sample.labels) - {"le", "quantile"} <= allowed, (family.name, sample.labels)


def test_publishing_and_consuming_helpers_count_and_time_messages() -> None:
    published = {"exchange": "bookstore.events", "routing_key": "order.created"}
    before = REGISTRY.get_sample_value("messages_published_total", published) or 0.0
    metrics.record_published("bookstore.events", "order.created", 3)
    assert REGISTRY.get_sample_value("messages_published_total", published) == before + 3

    consumed = {"queue": "notification", "outcome": "acked"}
    before = REGISTRY.get_sample_value("messages_consumed_total", consumed) or 0.0
    count = (
        REGISTRY.get_sample_value("message_processing_duration_seconds_count", {"queue": "notification"}) or 0
    )
    metrics.record_consumed("notification", "acked", 0.002)
    assert REGISTRY.get_sample_value("messages_consumed_total", consumed) == before + 1
    assert REGISTRY.get_sample_value(
        "message_processing_duration_seconds_count", {"queue": "notification"}
    ) == (count + 1)


def test_backlog_gauges_hold_the_last_value_they_were_given() -> None:
    metrics.set_queue_depth("analytics", 42)
    metrics.set_outbox_pending(5)
    assert REGISTRY.get_sample_value("message_queue_depth", {"queue": "analytics"}) == 42
    assert REGISTRY.get_sample_value("outbox_pending_events") == 5



def test_watched_breakers_are_exported_with_their_state_and_their_calls_by_outcome() -> None:
    registry = BreakerRegistry(BreakerSettings(window_size=4, minimum_calls=2), clock=ManualClock())
    metrics.watch_breakers(registry.snapshots)
    breaker = registry.breaker("payment-under-test")
    breaker.call(lambda: None)
    breaker.force_open()
    with pytest.raises(Exception, match="open"):
        breaker.call(lambda: None)
    assert REGISTRY.get_sample_value("circuit_breaker_state", {"breaker": "payment-under-test"}) == 2
    labels = {"breaker": "payment-under-test"}
    assert REGISTRY.get_sample_value("circuit_breaker_requests_total", {**labels, "outcome": "success"}) == 1
    assert REGISTRY.get_sample_value("circuit_breaker_requests_total", {**labels, "outcome": "rejected"}) == 1
    breaker.reset()
    assert REGISTRY.get_sample_value("circuit_breaker_state", labels) == 0


def test_the_watched_order_admission_exports_its_bound_and_its_cuts() -> None:
    clock = ManualClock()
    admission = Admission(limit=8, wait_s=1, target_s=1.0, clock=clock)
    metrics.watch_admission(admission)
    with admission.slot():
        clock.advance(2.0)  # slower than the target: the bound halves
    assert REGISTRY.get_sample_value("gateway_order_admission_bound") == 4
    assert REGISTRY.get_sample_value("gateway_order_admission_cuts_total") == 1
    del admission  # held weakly: a gateway that is gone leaves no figures behind
    assert REGISTRY.get_sample_value("gateway_order_admission_bound") is None


def test_a_breaker_registry_that_is_gone_disappears_from_the_metrics() -> None:
    registry = BreakerRegistry(clock=ManualClock())
    metrics.watch_breakers(registry.snapshots)
    registry.breaker("short-lived")
    assert REGISTRY.get_sample_value("circuit_breaker_state", {"breaker": "short-lived"}) == 0
    del registry
    assert REGISTRY.get_sample_value("circuit_breaker_state", {"breaker": "short-lived"}) is None


def test_the_metrics_server_binds_a_free_port_and_serves_the_registry() -> None:
    port = metrics.start_metrics_server(0)
    assert port > 0
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        samples = parse_samples(answer.read().decode())
    assert any(sample.name == "process_cpu_seconds_total" for sample in samples)
    assert metrics.metrics_enabled()


# ----------------------------------------------------------------------------- orders


def created(status: str) -> float:
    return REGISTRY.get_sample_value("orders_created_total", {"status": status}) or 0.0


def test_the_create_order_observer_counts_orders_by_status_and_failures_by_code() -> None:
    observer = CreateOrderObserver()
    approved, failed = (
        created("approved"),
        REGISTRY.get_sample_value("orders_failed_total", {"reason": "unavailable"}),
    )
    value_count = REGISTRY.get_sample_value("order_value_cents_count") or 0.0
    observer.begin()
    assert REGISTRY.get_sample_value("orders_in_progress") == 1
    order = order_pb2.Order(order_id="o", status=order_pb2.ORDER_STATUS_APPROVED, total_cents=2500)
    observer.end(order_pb2.CreateOrderResponse(order=order), grpc.StatusCode.OK, 0.01)
    observer.begin()
    observer.end(None, grpc.StatusCode.UNAVAILABLE, 0.02)
    assert REGISTRY.get_sample_value("orders_in_progress") == 0
    assert created("approved") == approved + 1
    assert REGISTRY.get_sample_value("orders_failed_total", {"reason": "unavailable"}) == (failed or 0.0) + 1
    assert REGISTRY.get_sample_value("order_value_cents_count") == value_count + 1


def test_business_attributes_are_read_from_requests_and_from_the_order_in_a_response() -> None:
    request = order_pb2.CreateOrderRequest(user_id="u-1")
    assert message_attributes(request) == {"user.id": "u-1"}
    response = order_pb2.CreateOrderResponse(
        order=order_pb2.Order(order_id="o-1", user_id="u-1", status=order_pb2.ORDER_STATUS_REJECTED)
    )
    assert message_attributes(response) == {"order.id": "o-1", "user.id": "u-1", "order.status": "rejected"}
    assert message_attributes(order_pb2.ListOrdersRequest()) == {}
    assert message_attributes(object()) == {}
