"""When placing an order fails after the order was stored: tell the client which order, and where.

**Why.** ``CreateOrder`` stores the order (PENDING) as the saga's first step. If a later step
fails for infrastructure reasons (payment UNAVAILABLE, a Pay past its deadline), the order
service undoes what it may have done and answers UNAVAILABLE or DEADLINE_EXCEEDED, which the
gateway maps to 503 or 504. But the order exists: REJECTED, or still PENDING while its
compensation or the service's recovery runs, and a PENDING order may yet end APPROVED and
charged. A client that got a bare 503, and sent no ``request_id`` to retry with, could never
learn of it, and might well place the same order again.

**What.** The order service names the stored order in its error's trailing metadata
(``bookstore-order-id``). The gateway then looks the order up and answers with it:

| the order now | answer |
|---|---|
| PENDING | ``202 Accepted``, the order as ``GET /orders/{id}`` shows it, ``Location: /orders/{id}`` |
| APPROVED (settled meanwhile) | ``201 Created``, the order, ``Location`` |
| REJECTED, or lookup failed | the 503/504 as before, with ``order_id``, ``location`` and ``Location`` |

A client polls ``Location`` until the status is final. An error that names no order (the
catalog was down before anything was stored) is answered as any other failed call.
"""

from __future__ import annotations

import json
from typing import Any

import grpc
from fastapi.responses import JSONResponse

from bookstore.domain.models import OrderStatus
from bookstore.gateway.errors import rpc_error_response
from bookstore.gateway.schemas import ErrorBody, Order
from bookstore.platform.status import ORDER_ID_METADATA_KEY
from bookstore.rpc.v1 import order_pb2, order_pb2_grpc

_LOCATION_HEADER = {
    "Location": {
        "description": "Where to follow the order: `/orders/{order_id}`.",
        "schema": {"type": "string"},
    },
}


class PlacementFailure(ErrorBody):
    """A failed placement whose order was stored: the error, and where to follow the order."""

    order_id: str | None = None
    location: str | None = None


def placement_responses() -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entries of ``POST /orders`` that this module's answers add."""
    failure = "the order was stored, the body has its `order_id` and `location`"
    return {
        202: {
            "model": Order,
            "headers": _LOCATION_HEADER,
            "description": "A dependency failed and the order is still PENDING: follow `Location`.",
        },
        503: {
            "model": PlacementFailure,
            "description": f"A backend service is unavailable; retry after `Retry-After`. If {failure}.",
        },
        504: {
            "model": PlacementFailure,
            "description": f"A backend service did not answer within the deadline. If {failure}.",
        },
    }


def stored_order_id(error: grpc.RpcError) -> str | None:
    """The id of the order a failed ``CreateOrder`` stored, from its trailing metadata; None if none."""
    trailing = getattr(error, "trailing_metadata", None)
    try:
        pairs = trailing() if callable(trailing) else None
        return next((str(value) for key, value in pairs or () if key == ORDER_ID_METADATA_KEY), None)
    except Exception:  # a call object that cannot say: no order to point at
        return None


def order_location(order_id: str) -> str:
    return f"/orders/{order_id}"


def failed_placement_response(
    error: grpc.RpcError,
    order_id: str,
    *,
    user_id: str,
    orders: order_pb2_grpc.OrderServiceStub,
    deadline_s: float,
) -> JSONResponse:
    """The answer to a ``CreateOrder`` that failed with ``error`` after storing ``order_id``."""
    location = order_location(order_id)
    request = order_pb2.GetOrderRequest(order_id=order_id, user_id=user_id)
    try:
        order = Order.from_pb(orders.GetOrder(request, timeout=deadline_s).order)
    except grpc.RpcError:
        order = None  # the error itself is still the best answer; the order id goes with it
    if order is not None and order.status is not OrderStatus.REJECTED:
        status = 202 if order.status is OrderStatus.PENDING else 201
        return JSONResponse(order.model_dump(mode="json"), status_code=status, headers={"Location": location})
    failed = rpc_error_response(error, where="POST /orders")
    body = {**json.loads(bytes(failed.body)), "order_id": order_id, "location": location}
    headers = {"Location": location}
    if "retry-after" in failed.headers:
        headers["Retry-After"] = failed.headers["retry-after"]
    return JSONResponse(body, status_code=failed.status_code, headers=headers)
