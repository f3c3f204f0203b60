"""InventoryService: validate, call the store, translate to protobuf.

Every rule about a request's shape is checked here, before the store writes anything; the
store enforces the rules about state (stock short, order released).
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from bookstore.domain import validation as v
from bookstore.domain.errors import InvalidArgument
from bookstore.domain.models import Reservation, ReservationStatus, StockItem
from bookstore.platform.status import translate_errors
from bookstore.rpc.v1 import inventory_pb2, inventory_pb2_grpc
from bookstore.services.inventory.store import MAX_STOCK, InventoryStore

MAX_ITEMS = 50
MAX_QUANTITY = 1000

_STATUS_TO_PB = {
    ReservationStatus.RESERVED: inventory_pb2.RESERVATION_STATUS_RESERVED,
    ReservationStatus.RELEASED: inventory_pb2.RESERVATION_STATUS_RELEASED,
}


def items_from_pb(items: Sequence[inventory_pb2.StockItem]) -> tuple[StockItem, ...]:
    """Validate a request's items: 1-50 of them, positive book ids, quantities 1-1000, distinct books."""
    if not 1 <= len(items) <= MAX_ITEMS:
        raise InvalidArgument(f"must hold between 1 and {MAX_ITEMS} items, got {len(items)}", field="items")
    parsed = tuple(
        StockItem(
            book_id=v.require_id(f"items[{index}].book_id", item.book_id),
            quantity=v.require_int_range(f"items[{index}].quantity", item.quantity, low=1, high=MAX_QUANTITY),
        )
        for index, item in enumerate(items)
    )
    v.require_distinct("items", (item.book_id for item in parsed))
    return parsed


def item_to_pb(item: StockItem) -> inventory_pb2.StockItem:
    return inventory_pb2.StockItem(book_id=item.book_id, quantity=item.quantity)


def reservation_to_pb(reservation: Reservation) -> inventory_pb2.ReserveStockResponse:
    return inventory_pb2.ReserveStockResponse(
        order_id=reservation.order_id,
        items=[item_to_pb(item) for item in reservation.items],
        status=_STATUS_TO_PB[reservation.status],
    )


class InventoryServicer(inventory_pb2_grpc.InventoryServiceServicer):
    def __init__(self, store: InventoryStore) -> None:
        self._store = store

    @translate_errors
    def GetStock(
        self, request: inventory_pb2.GetStockRequest, context: grpc.ServicerContext
    ) -> inventory_pb2.GetStockResponse:
        book_id = v.require_id("book_id", request.book_id)
        return inventory_pb2.GetStockResponse(book_id=book_id, available=self._store.get_stock(book_id))

    @translate_errors
    def ReserveStock(
        self, request: inventory_pb2.ReserveStockRequest, context: grpc.ServicerContext
    ) -> inventory_pb2.ReserveStockResponse:
        order_id = v.require_uuid("order_id", request.order_id)
        items = items_from_pb(request.items)
        return reservation_to_pb(self._store.reserve(order_id, items))

    @translate_errors
    def ReleaseStock(
        self, request: inventory_pb2.ReleaseStockRequest, context: grpc.ServicerContext
    ) -> inventory_pb2.ReleaseStockResponse:
        order_id = v.require_uuid("order_id", request.order_id)
        reservation, released_now = self._store.release(order_id)
        return inventory_pb2.ReleaseStockResponse(
            order_id=reservation.order_id, status=_STATUS_TO_PB[reservation.status], released_now=released_now
        )

    @translate_errors
    def SetStock(
        self, request: inventory_pb2.SetStockRequest, context: grpc.ServicerContext
    ) -> inventory_pb2.SetStockResponse:
        book_id = v.require_id("book_id", request.book_id)
        quantity = v.require_int_range("quantity", request.quantity, low=0, high=MAX_STOCK)
        available = self._store.set_stock(book_id, quantity)
        return inventory_pb2.SetStockResponse(book_id=book_id, available=available)
