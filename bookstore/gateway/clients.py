"""The gateway's gRPC clients: one stub per backend service, sharing one deadline.

The gateway opens one channel per service at start-up and keeps it for its whole life:
a channel is expensive to open (name resolution, TCP and HTTP/2 handshakes) and cheap to
share, since many calls multiplex over it from many threads. Each channel balances calls
round-robin over the replicas named in the service's target (see
``bookstore.platform.channels``), so scaling a service needs no change here.

Each channel is also a *protected* one (``bookstore.resilience.interceptor``): its calls pass
a circuit breaker for that service, all kept in one ``BreakerRegistry``. When the catalog
fails, its breaker opens and the gateway stops calling it for a while: requests get 503 in
microseconds instead of waiting out the deadline, or an answer from ``catalog_cache`` (see
``bookstore.gateway.fallback``). ``BOOKSTORE_BREAKER_ENABLED=0`` builds plain channels instead,
to show what happens without.

The order service gets two breakers, ``order/reads`` and ``order/writes``
(``ORDER_OPERATION_CLASSES``). Its reads are a lookup in its own database; its writes run a
saga through inventory and payment, and fail in ways reads cannot (a slow saga, the order
service's threads busy with placements). With one breaker for both, failing creates once
opened it and ``GET /orders`` answered 503 while the order service read orders perfectly well.
The failures a breaker counts are the order service's own: when payment fails and the order
service cleanly rejects the order, its answer says so (``bookstore-dependency`` trailing
metadata) and no breaker here counts it.

The stubs are held in a plain dataclass so that tests can hand the app fake stubs: any
object with the same method names will do.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import grpc

from bookstore.gateway.admission import Admission
from bookstore.gateway.fallback import LastKnownGood
from bookstore.platform import service_catalog
from bookstore.platform.channels import open_channel
from bookstore.platform.settings import Settings
from bookstore.resilience import BreakerRegistry, log_state_change, protected_channel
from bookstore.rpc.v1 import catalog_pb2_grpc, order_pb2_grpc, user_pb2_grpc

# Whom the gateway calls: its catalog entry says so, and names each backend's stub class.
BACKENDS = service_catalog.entry("gateway").peers
ORDER_OPERATION_CLASSES: dict[str, dict[str, str]] = {
    "order": {"GetOrder": "reads", "ListOrders": "reads", "CreateOrder": "writes"}
}
"""The order service's methods by the breaker that guards them (see the module docstring)."""


@dataclass
class GatewayClients:
    """The stubs the gateway calls, the deadline (seconds) every call must carry, the breakers
    guarding the stubs' channels (``None`` when there are none), and the catalog's fallback.

    ``order_deadline_s`` is the one exception to ``deadline_s``: CreateOrder runs a whole saga,
    whose forward path may take up to ``BOOKSTORE_SAGA_DEADLINE_S``. A gateway that gave up
    sooner would answer 504 for an order the saga then approves, and a burst of such
    "failures" would open the order breaker in front of a healthy service.
    """

    user: user_pb2_grpc.UserServiceStub
    catalog: catalog_pb2_grpc.CatalogServiceStub
    order: order_pb2_grpc.OrderServiceStub
    deadline_s: float = field(default_factory=lambda: Settings().deadline_s)
    # The saga's budget and one ordinary deadline, from the settings' defaults (order_deadline).
    order_deadline_s: float = field(default_factory=lambda: order_deadline(Settings()))
    channels: tuple[grpc.Channel, ...] = field(default=(), repr=False)
    breakers: BreakerRegistry | None = field(default=None, repr=False)
    catalog_cache: LastKnownGood = field(default_factory=LastKnownGood, repr=False)
    # CreateOrder calls in flight at once; the others wait (``bookstore.gateway.admission``).
    order_admission: Admission = field(default_factory=lambda: order_admission(Settings()), repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> GatewayClients:
        """Open a channel to each backend named in ``settings`` (``BOOKSTORE_<NAME>_TARGET``).

        Opening a channel does not connect yet, so this succeeds while a backend is still
        starting; its first call connects. A missing target raises ``RuntimeError`` naming
        the variable to set, and no channel is left open behind it.
        """
        breakers = (
            BreakerRegistry.from_settings(
                settings, operation_classes=ORDER_OPERATION_CLASSES, listeners=[log_state_change]
            )
            if settings.breaker_enabled
            else None
        )
        opened: dict[str, grpc.Channel] = {}
        try:
            for name in BACKENDS:
                target = settings.target(name)
                if breakers is None:
                    opened[name] = open_channel(target)
                    continue
                opened[name] = protected_channel(
                    target, name, breakers, default_timeout_s=settings.deadline_s
                )
                # Made now, so /internal/breakers lists them before any call.
                if name not in breakers.per_method:
                    for method in ORDER_OPERATION_CLASSES.get(name) or (None,):
                        breakers.breaker(name, method)
        except Exception:
            for channel in opened.values():
                channel.close()
            raise
        return cls(
            **service_catalog.stubs(opened),  # one field per backend, holding its generated stub
            deadline_s=settings.deadline_s,
            order_deadline_s=order_deadline(settings),
            channels=tuple(opened.values()),
            order_admission=order_admission(settings),
            breakers=breakers,
        )

    def close(self) -> None:
        """Close the channels this object opened; calls still in flight are cancelled."""
        for channel in self.channels:
            # Closing is best effort at shutdown: one failure must not keep the others open.
            with contextlib.suppress(Exception):
                channel.close()
        self.channels = ()


def order_deadline(settings: Settings) -> float:
    """The deadline of CreateOrder: the saga's budget, plus one ordinary deadline for the
    compensation or the answer that follows it."""
    return settings.saga_deadline_s + settings.deadline_s


def order_admission(settings: Settings) -> Admission:
    """How many CreateOrder calls are in flight: at most ``order_concurrency``, halved while
    calls take more than half their deadline (``bookstore.gateway.admission``)."""
    target_s = order_deadline(settings) / 2
    return Admission(settings.order_concurrency, settings.order_queue_s, target_s=target_s)
