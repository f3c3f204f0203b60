"""``python -m bookstore.services.order``: serve the order service.

Needs the targets of its peers: BOOKSTORE_CATALOG_TARGET, BOOKSTORE_INVENTORY_TARGET and
BOOKSTORE_PAYMENT_TARGET (the launcher sets them). Reads BOOKSTORE_SAGA_DEADLINE_S, the
BOOKSTORE_BREAKER_* settings of the circuit breakers in front of those peers (their state is
in the AdminService's ``GetStats``), and BOOKSTORE_CRASH_AT in crash tests
(``bookstore.services.order.crash``).

BOOKSTORE_ORDER_FLOW picks how orders are placed, once, at start-up: ``saga`` (the default)
or ``plain``, week 6's sequential flow (``plain_flow``), kept as the benchmark baseline. A
plain service keeps no saga log and runs no recovery, so it also leaves alone any saga an
earlier run on the same database left in flight; start it as ``saga`` again to finish those.

Events: every order change writes its event into the outbox table. When BOOKSTORE_RABBITMQ_URL
is set, replica 0 runs the outbox relay that publishes them (to the exchange named with
BOOKSTORE_MESSAGING_PREFIX); without it, events wait in the table until a relay runs.
"""

from __future__ import annotations

import logging

import grpc
from sqlalchemy import Engine

from bookstore.messaging.outbox import Outbox, OutboxRelay
from bookstore.observability.runtime import run_service
from bookstore.platform.admin import BreakerSnapshots
from bookstore.platform.database import service_engine
from bookstore.platform.server import ServiceDefinition
from bookstore.platform.settings import Settings
from bookstore.rpc.v1 import order_pb2, order_pb2_grpc
from bookstore.saga import SagaLog
from bookstore.services.order.crash import CrashPoint
from bookstore.services.order.flow import OrderDependencies, SagaFlow
from bookstore.services.order.plain_flow import PlainFlow
from bookstore.services.order.saga import OrderSaga, start_recovery
from bookstore.services.order.servicer import OrderServicer
from bookstore.services.order.store import OrderStore

log = logging.getLogger(__name__)


def register(server: grpc.Server, settings: Settings) -> BreakerSnapshots | None:
    # Channels are opened once, here, and shared by every request: a channel per call would
    # pay a TCP (and HTTP/2) handshake on each order and defeat round-robin balancing. So are
    # their circuit breakers: every request must share one judgement of each peer.
    deps = OrderDependencies.from_settings(settings)
    # One database for the orders and the saga log: each saga move is a local commit next
    # to the order it concerns. The owner name is stable across restarts of this replica,
    # so a restarted replica takes its own sagas back at once instead of waiting for a lease.
    engine = service_engine(settings)
    store = OrderStore(engine)
    start_outbox_relay(settings, engine, store)
    snapshots = deps.breakers.snapshots if deps.breakers is not None else None
    if settings.order_flow == "plain":
        log.warning(
            "BOOKSTORE_ORDER_FLOW=plain: orders use week 6's sequential flow; no saga log, no crash recovery"
        )
        if settings.crash_at:
            log.warning("BOOKSTORE_CRASH_AT=%s is ignored: it names a saga step", settings.crash_at)
        order_pb2_grpc.add_OrderServiceServicer_to_server(
            OrderServicer(PlainFlow(deps, store), store), server
        )
        return snapshots
    saga = OrderSaga(
        deps,
        store,
        SagaLog(engine, owner=f"order-{settings.replica}"),
        deadline_s=settings.saga_deadline_s,
        crash_at=CrashPoint.parse(settings.crash_at),
    )
    order_pb2_grpc.add_OrderServiceServicer_to_server(
        OrderServicer(SagaFlow(deps, store, saga), store), server
    )
    # Sagas this process left in flight when it died are finished in the background: start-up
    # must not wait for a payment service that is down, and new orders need not wait either.
    start_recovery(saga)
    return snapshots


def start_outbox_relay(settings: Settings, engine: Engine, store: OrderStore) -> OutboxRelay | None:
    """Publish the outbox from replica 0, if a broker is configured; the relay is a daemon thread."""
    if not settings.rabbitmq_url:
        log.info("BOOKSTORE_RABBITMQ_URL is not set: order events wait in the outbox, unpublished")
        return None
    if settings.replica != 0:
        return None  # one relay per database keeps the events in order
    from bookstore.messaging.publisher import Publisher
    from bookstore.messaging.topology import Topology

    topology = Topology(settings.messaging_prefix)

    def publisher() -> Publisher:
        return Publisher(settings.rabbitmq_url, topology, name=f"order-{settings.replica}-outbox")

    relay = OutboxRelay(Outbox(engine), publisher, poll_s=settings.outbox_poll_s, exchange=topology.exchange)
    store.on_event = relay.wake
    return relay.start()


DEFINITION = ServiceDefinition(
    name="order",
    grpc_service_names=[order_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name],
    register=register,
)

if __name__ == "__main__":
    run_service(DEFINITION)
