"""OrderService: validate, hand the work to the flow or the store, translate to protobuf.

The servicer stays thin on purpose: CreateOrder turns the request into a ``PlaceOrder``
command and hands it to the flow it was wired with (``OrderFlow``), which is how week 7
swapped week 6's sequential calls for a saga without touching the gRPC edge. The service
picks the flow at start-up: ``flow.SagaFlow`` by default, ``plain_flow.PlainFlow`` with
``BOOKSTORE_ORDER_FLOW=plain`` (the baseline the saga is benchmarked against).
GetOrder and ListOrders read the store as it is, so an order whose saga is still running
shows PENDING: readers see that it is not settled rather than a guess.
"""

from __future__ import annotations

import grpc

from bookstore.domain import validation as v
from bookstore.domain.commands import PlaceOrder
from bookstore.domain.errors import NotFound
from bookstore.domain.models import Order, OrderItem, OrderStatus
from bookstore.platform.status import translate_errors
from bookstore.rpc.v1 import order_pb2, order_pb2_grpc
from bookstore.services.order.flow import OrderFlow
from bookstore.services.order.store import OrderStore

_STATUS_TO_PB = {
    OrderStatus.PENDING: order_pb2.ORDER_STATUS_PENDING,
    OrderStatus.APPROVED: order_pb2.ORDER_STATUS_APPROVED,
    OrderStatus.REJECTED: order_pb2.ORDER_STATUS_REJECTED,
}


def order_to_pb(order: Order) -> order_pb2.Order:
    return order_pb2.Order(
        order_id=order.order_id,
        user_id=order.user_id,
        items=[
            order_pb2.OrderItem(
                book_id=item.book_id, quantity=item.quantity, unit_price_cents=item.unit_price_cents
            )
            for item in order.items
        ],
        total_cents=order.total_cents,
        status=_STATUS_TO_PB[order.status],
        reason=order.reason,
        created_at_unix=order.created_at_unix,
    )


class OrderServicer(order_pb2_grpc.OrderServiceServicer):
    def __init__(self, flow: OrderFlow, store: OrderStore) -> None:
        """``flow`` places orders; ``store`` answers GetOrder and ListOrders."""
        self._flow = flow
        self._store = store

    @translate_errors
    def CreateOrder(
        self, request: order_pb2.CreateOrderRequest, context: grpc.ServicerContext
    ) -> order_pb2.CreateOrderResponse:
        # unit_price_cents is not copied: prices come from the catalog, never from the client.
        items = [OrderItem(book_id=item.book_id, quantity=item.quantity) for item in request.items]
        order = self._flow.place(PlaceOrder.of(request.user_id, items, request.request_id))
        return order_pb2.CreateOrderResponse(order=order_to_pb(order))

    @translate_errors
    def GetOrder(
        self, request: order_pb2.GetOrderRequest, context: grpc.ServicerContext
    ) -> order_pb2.GetOrderResponse:
        order_id = v.require_uuid("order_id", request.order_id)
        owner = v.require_uuid("user_id", request.user_id) if request.user_id else None
        order = self._store.get(order_id)
        if owner is not None and order.user_id != owner:
            # The same answer as for a missing order: a stranger learns not even that it exists.
            raise NotFound(f"no order {order_id}", field="order_id")
        return order_pb2.GetOrderResponse(order=order_to_pb(order))

    @translate_errors
    def ListOrders(
        self, request: order_pb2.ListOrdersRequest, context: grpc.ServicerContext
    ) -> order_pb2.ListOrdersResponse:
        user_id = v.require_uuid("user_id", request.user_id)
        size = v.page_size(request.page_size)
        offset = v.decode_page_token(request.page_token)
        orders, total = self._store.list_for_user(user_id, offset, size)
        return order_pb2.ListOrdersResponse(
            orders=[order_to_pb(order) for order in orders],
            next_page_token=v.encode_page_token(offset + len(orders), total),
        )
