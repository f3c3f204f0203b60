"""``python -m bookstore.services.inventory``: serve the inventory service.

An empty database is seeded with ``BOOKSTORE_INITIAL_STOCK`` copies (default 100) of every
book in the catalog.
"""

from __future__ import annotations

import grpc

from bookstore.observability.runtime import run_service
from bookstore.platform.database import service_engine
from bookstore.platform.server import ServiceDefinition
from bookstore.platform.settings import Settings
from bookstore.rpc.v1 import inventory_pb2, inventory_pb2_grpc
from bookstore.services.inventory.servicer import InventoryServicer
from bookstore.services.inventory.store import InventoryStore


def register(server: grpc.Server, settings: Settings) -> None:
    store = InventoryStore(service_engine(settings))
    inventory_pb2_grpc.add_InventoryServiceServicer_to_server(InventoryServicer(store), server)


DEFINITION = ServiceDefinition(
    name="inventory",
    grpc_service_names=[inventory_pb2.DESCRIPTOR.services_by_name["InventoryService"].full_name],
    register=register,
)

if __name__ == "__main__":
    run_service(DEFINITION)
