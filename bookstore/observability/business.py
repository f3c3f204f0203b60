"""Business context on telemetry: which user, which order, and what became of orders.

Spans answer "what happened to *this* order?" only if they carry its id. The gRPC hooks
read two well-known fields off every request and response (``user_id``, ``order_id``, and
``order.order_id`` of a response that holds an order) and put them on the span as
``user.id`` and ``order.id``. Which fields a message type has is looked up once per type,
so a message without them costs one dictionary lookup.

Ids go on spans, never on metrics: a label per order id would make a time series per order.
The order metrics (``orders_*``) are counted here too, from the outside of the order
service's ``CreateOrder``: the observer sees each call's start, its answer (the order's
status and total) or its error code, and its duration, and the service's code stays as it
was.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from opentelemetry import trace

from bookstore.observability import metrics

USER_ID = "user.id"
ORDER_ID = "order.id"
ORDER_STATUS = "order.status"

Extractor = Callable[[Any], dict[str, Any]]

_NOTHING: dict[str, Any] = {}
_extractors: dict[type, Extractor] = {}


def message_attributes(message: Any) -> dict[str, Any]:
    """``user.id`` / ``order.id`` (and an order's status) found on ``message``; ``{}`` when none."""
    kind = type(message)
    extract = _extractors.get(kind)
    if extract is None:
        extract = _extractors[kind] = _extractor_for(kind)
    return extract(message)


def _extractor_for(kind: type) -> Extractor:
    descriptor = getattr(kind, "DESCRIPTOR", None)
    fields = getattr(descriptor, "fields_by_name", None)
    if fields is None:
        return lambda _message: _NOTHING
    direct = [
        (attribute, name)
        for attribute, name in ((USER_ID, "user_id"), (ORDER_ID, "order_id"))
        if name in fields
    ]
    order_field = fields.get("order")
    nested = (
        order_field is not None
        and order_field.message_type is not None
        and ("order_id" in order_field.message_type.fields_by_name)
    )
    if not direct and not nested:
        return lambda _message: _NOTHING

    def extract(message: Any) -> dict[str, Any]:
        found = {attribute: value for attribute, name in direct if (value := getattr(message, name))}
        if nested and message.HasField("order"):
            order = message.order
            if order.order_id:
                found[ORDER_ID] = order.order_id
            if order.user_id:
                found[USER_ID] = order.user_id
            found[ORDER_STATUS] = _order_status_name(order.status)
        return found

    return extract


def _order_status_name(status: int) -> str:
    from bookstore.rpc.v1 import order_pb2

    return str(order_pb2.OrderStatus.Name(status)).removeprefix("ORDER_STATUS_").lower()


def annotate(**attributes: Any) -> None:
    """Put attributes on the current span, if one is recording: ``annotate(**{"user.id": uid})``.

    Costs a context lookup when nothing records. ``None`` values are skipped.
    """
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes({key: value for key, value in attributes.items() if value is not None})


def annotate_user(user_id: str | None = None, order_id: str | None = None) -> None:
    """``user.id`` and ``order.id`` on the current span (the gateway's routes know them first)."""
    span = trace.get_current_span()
    if span.is_recording():
        if user_id:
            span.set_attribute(USER_ID, user_id)
        if order_id:
            span.set_attribute(ORDER_ID, order_id)


# ----------------------------------------------------------------------------- method observers

CREATE_ORDER = "/bookstore.rpc.v1.OrderService/CreateOrder"


class MethodObserver:
    """Told about every call of one gRPC method a server handles: its start and its end."""

    def begin(self) -> None:
        pass

    def end(self, response: Any, code: grpc.StatusCode, seconds: float) -> None:
        pass


class CreateOrderObserver(MethodObserver):
    """The ``orders_*`` metrics, counted around the order service's ``CreateOrder``."""

    def __init__(self) -> None:
        self._by_status: dict[str, Any] = {}
        self._by_reason: dict[str, Any] = {}

    def begin(self) -> None:
        metrics.ORDERS_IN_PROGRESS.inc()

    def end(self, response: Any, code: grpc.StatusCode, seconds: float) -> None:
        metrics.ORDERS_IN_PROGRESS.dec()
        metrics.ORDER_DURATION.observe(seconds)
        if code is grpc.StatusCode.OK and response is not None and response.HasField("order"):
            status = _order_status_name(response.order.status)
            counter = self._by_status.get(status)
            if counter is None:
                counter = self._by_status[status] = metrics.ORDERS_CREATED.labels(status)
            counter.inc()
            metrics.ORDER_VALUE.observe(response.order.total_cents)
            return
        reason = code.name.lower()
        counter = self._by_reason.get(reason)
        if counter is None:
            counter = self._by_reason[reason] = metrics.ORDERS_FAILED.labels(reason)
        counter.inc()


def observer_for(full_method: str) -> MethodObserver | None:
    """The observer of a gRPC method (``/package.Service/Method``), if it has one."""
    if full_method == CREATE_ORDER:
        return CreateOrderObserver()
    return None
