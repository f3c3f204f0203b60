"""The gateway's gRPC clients: one stub per backend service, sharing one deadline.

The gateway opens one channel per service at start-up and keeps it for its whole life:
a channel is expensive to open (name resolution, TCP and HTTP/2 handshakes) and cheap to
share, since many calls multiplex over it from many threads. Each channel balances calls
round-robin over the replicas named in the service's target (see
``bookstore.platform.channels``), so scaling a service needs no change here.

The stubs are held in a plain dataclass so that tests can hand the app fake stubs: any
object with the same method names will do.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import grpc

from bookstore.platform.channels import open_channel
from bookstore.platform.settings import Settings
from bookstore.rpc.v1 import catalog_pb2_grpc, order_pb2_grpc, user_pb2_grpc

BACKENDS = ("user", "catalog", "order")


@dataclass
class GatewayClients:
    """The stubs the gateway calls, and the deadline (seconds) every call must carry."""

    user: user_pb2_grpc.UserServiceStub
    catalog: catalog_pb2_grpc.CatalogServiceStub
    order: order_pb2_grpc.OrderServiceStub
    deadline_s: float = 2.0
    channels: tuple[grpc.Channel, ...] = field(default=(), repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> GatewayClients:
        """Open a channel to each backend named in ``settings`` (``BOOKSTORE_<NAME>_TARGET``).

        Opening a channel does not connect yet, so this succeeds while a backend is still
        starting; its first call connects. A missing target raises ``RuntimeError`` naming
        the variable to set, and no channel is left open behind it.
        """
        opened: dict[str, grpc.Channel] = {}
        try:
            for name in BACKENDS:
                opened[name] = open_channel(settings.target(name))
        except Exception:
            for channel in opened.values():
                channel.close()
            raise
        return cls(
            user=user_pb2_grpc.UserServiceStub(opened["user"]),
            catalog=catalog_pb2_grpc.CatalogServiceStub(opened["catalog"]),
            order=order_pb2_grpc.OrderServiceStub(opened["order"]),
            deadline_s=settings.deadline_s,
            channels=tuple(opened.values()),
        )

    def close(self) -> None:
        """Close the channels this object opened; calls still in flight are cancelled."""
        for channel in self.channels:
            # Closing is best effort at shutdown: one failure must not keep the others open.
            with contextlib.suppress(Exception):
                channel.close()
        self.channels = ()
