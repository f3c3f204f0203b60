"""``python -m bookstore.services.catalog``: serve the catalog service."""

from __future__ import annotations

import grpc

from bookstore.observability.runtime import run_service
from bookstore.platform.database import service_engine
from bookstore.platform.server import ServiceDefinition
from bookstore.platform.settings import Settings
from bookstore.rpc.v1 import catalog_pb2, catalog_pb2_grpc
from bookstore.services.catalog.servicer import CatalogServicer
from bookstore.services.catalog.store import CatalogStore


def register(server: grpc.Server, settings: Settings) -> None:
    store = CatalogStore(service_engine(settings))
    catalog_pb2_grpc.add_CatalogServiceServicer_to_server(CatalogServicer(store), server)


DEFINITION = ServiceDefinition(
    name="catalog",
    grpc_service_names=[catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"].full_name],
    register=register,
)

if __name__ == "__main__":
    run_service(DEFINITION)
