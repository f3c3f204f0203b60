"""The instrumentation audit measures what a span and a histogram choice produce under a load."""

from __future__ import annotations

from typing import Any

from bookstore.observability.audit import audit_instrumentation, checkout_load


def record_with(labels: tuple[str, ...], *, name_with_id: bool = False, attributes: bool = True) -> Any:
    def record(tracer: Any, latency: Any, order: dict[str, Any], seconds: float) -> None:
        with tracer.start_as_current_span(
            f"checkout {order['order_id']}" if name_with_id else "checkout"
        ) as span:
            if attributes:
                span.set_attribute("order.id", order["order_id"])
                span.set_attribute("user.id", order["user_id"])
        latency.labels(*(order[label] for label in labels)).observe(seconds)

    return record


def test_bounded_labels_give_the_same_series_whatever_the_traffic() -> None:
    labels = ("status", "payment_method")
    small = audit_instrumentation(record_with(labels), labels, checkout_load(18, 5))
    large = audit_instrumentation(record_with(labels), labels, checkout_load(500, 400), track_series=False)
    assert small.series == large.series == 9 * 19  # 3 x 3 combinations, 16 buckets + Inf + sum + count


def test_a_user_id_label_grows_with_the_users() -> None:
    labels = ("status", "user_id")
    small = audit_instrumentation(record_with(labels), labels, checkout_load(18, 5), track_series=False)
    large = audit_instrumentation(record_with(labels), labels, checkout_load(500, 400), track_series=False)
    assert large.series > 10 * small.series


def test_a_series_without_the_status_label_mixes_statuses() -> None:
    pure = audit_instrumentation(
        record_with(("status",)), ("status",), checkout_load(30, 5), purity_field="status"
    )
    mixed = audit_instrumentation(
        record_with(("payment_method",)), ("payment_method",), checkout_load(30, 5), purity_field="status"
    )
    assert not pure.mixed_series() and not pure.miscounted
    assert len(mixed.mixed_series()) == 3


def test_each_checkout_is_found_by_its_order_id_only_when_it_is_an_attribute() -> None:
    load = checkout_load(20, 4)
    found = audit_instrumentation(record_with(("status",)), ("status",), load)
    hidden = audit_instrumentation(record_with(("status",), attributes=False), ("status",), load)
    for (order, _), traces, missing in zip(load, found.traces_per_call, hidden.traces_per_call, strict=True):
        assert found.traces_with_attribute_value(order["order_id"]) == traces != set()
        assert hidden.traces_with_attribute_value(order["order_id"]) == set() != missing


def test_an_id_in_the_span_name_makes_one_name_per_checkout() -> None:
    audit = audit_instrumentation(
        record_with(("status",), name_with_id=True), ("status",), checkout_load(40, 4)
    )
    assert len(audit.span_names) == 40


def test_an_observation_recorded_twice_is_reported() -> None:
    def twice(tracer: Any, latency: Any, order: dict[str, Any], seconds: float) -> None:
        latency.labels(order["status"]).observe(seconds)
        latency.labels(order["status"]).observe(seconds)

    audit = audit_instrumentation(twice, ("status",), checkout_load(5, 2))
    assert audit.miscounted == [0, 1, 2, 3, 4]
