"""``python -m bookstore.services.user``: serve the user service."""

from __future__ import annotations

import grpc

from bookstore.observability.runtime import run_service
from bookstore.platform.database import service_engine
from bookstore.platform.server import ServiceDefinition
from bookstore.platform.settings import Settings
from bookstore.rpc.v1 import user_pb2, user_pb2_grpc
from bookstore.services.user.servicer import UserServicer
from bookstore.services.user.store import UserStore


def register(server: grpc.Server, settings: Settings) -> None:
    settings.warn_if_development_secret()
    store = UserStore(service_engine(settings))
    servicer = UserServicer(store, jwt_secret=settings.jwt_secret, jwt_ttl_s=settings.jwt_ttl_s)
    user_pb2_grpc.add_UserServiceServicer_to_server(servicer, server)


DEFINITION = ServiceDefinition(
    name="user",
    grpc_service_names=[user_pb2.DESCRIPTOR.services_by_name["UserService"].full_name],
    register=register,
)

if __name__ == "__main__":
    run_service(DEFINITION)
