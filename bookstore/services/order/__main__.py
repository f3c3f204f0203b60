"""``python -m bookstore.services.order``: serve the order service.

Needs the targets of its peers: BOOKSTORE_CATALOG_TARGET, BOOKSTORE_INVENTORY_TARGET and
BOOKSTORE_PAYMENT_TARGET (the launcher sets them).
"""

from __future__ import annotations

import grpc

from bookstore.platform.database import make_engine
from bookstore.platform.server import ServiceDefinition, run_service
from bookstore.platform.settings import Settings
from bookstore.rpc.v1 import order_pb2, order_pb2_grpc
from bookstore.services.order.flow import OrderDependencies
from bookstore.services.order.servicer import OrderServicer
from bookstore.services.order.store import OrderStore


def register(server: grpc.Server, settings: Settings) -> None:
    # Channels are opened once, here, and shared by every request: a channel per call would
    # pay a TCP (and HTTP/2) handshake on each order and defeat round-robin balancing.
    deps = OrderDependencies.from_settings(settings)
    store = OrderStore(make_engine(settings.database_url("order")))
    order_pb2_grpc.add_OrderServiceServicer_to_server(OrderServicer(deps, store), server)


DEFINITION = ServiceDefinition(
    name="order",
    grpc_service_names=[order_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name],
    register=register,
)

if __name__ == "__main__":
    run_service(DEFINITION)
