"""What every consumer process shares: its queue, its database, its gRPC face, its life cycle.

A consumer application is a ``ConsumerApp``: a name, the queue it reads (a key of
``Topology``'s queues), the tables of its read model, a handler that applies one event
inside the transaction the framework opens (``bookstore.messaging.consumer``), and a way to
list its read model. ``run_consumer`` turns one into a process that

* declares the topology (idempotently: whoever starts first creates it),
* consumes with manual acks, bounded retries, dead-lettering and dedupe, and
* serves gRPC health (SERVING once it consumes) and ``ConsumerService`` (counters and the
  read model) on ``BOOKSTORE_PORT``, so the launcher, tests and notebooks can watch it;

and that, on SIGTERM, stops taking messages, finishes the one in hand, and exits.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from sqlalchemy import Engine, MetaData
from sqlalchemy.orm import Session

from bookstore.messaging.broker import connect, resolve_rabbitmq_url
from bookstore.messaging.consumer import Consumer, Handler
from bookstore.messaging.topology import Topology
from bookstore.observability.runtime import run_service
from bookstore.platform.database import initialize, read_session_factory, service_engine
from bookstore.platform.server import ServiceDefinition
from bookstore.platform.settings import Settings
from bookstore.rpc.v1 import consumer_pb2, consumer_pb2_grpc

log = logging.getLogger(__name__)

STARTUP_WAIT_S = 10.0
MAX_RECORDS = 10_000
DEFAULT_RECORDS = 1000


@dataclass(frozen=True)
class ConsumerApp:
    """One consumer: ``queue`` is its queue's unprefixed name in the topology (``order.notification``).

    ``list_records(session, limit)`` returns up to ``limit`` rows of the read model as JSON-ready
    dicts, and how many rows there are in all.
    """

    name: str
    queue: str
    metadata: MetaData
    make_handler: Callable[[Settings], Handler]
    list_records: Callable[[Session, int], tuple[Sequence[dict[str, Any]], int]]


class ConsumerServicer(consumer_pb2_grpc.ConsumerServiceServicer):
    def __init__(self, app: ConsumerApp, queue: str, consumer: Consumer, engine: Engine) -> None:
        self.app = app
        self.queue = queue
        self.consumer = consumer
        self._reads = read_session_factory(engine)

    def GetConsumerStats(
        self, request: consumer_pb2.GetConsumerStatsRequest, context: grpc.ServicerContext
    ) -> consumer_pb2.GetConsumerStatsResponse:
        stats = self.consumer.stats()
        return consumer_pb2.GetConsumerStatsResponse(
            consumer=self.app.name,
            queue=self.queue,
            received=stats.received,
            applied=stats.applied,
            duplicates=stats.duplicates,
            retried=stats.retried,
            dead_lettered=stats.dead_lettered,
            last_applied_at=stats.last_applied_at or 0.0,
        )

    def ListRecords(
        self, request: consumer_pb2.ListRecordsRequest, context: grpc.ServicerContext
    ) -> consumer_pb2.ListRecordsResponse:
        if not 0 <= request.limit <= MAX_RECORDS:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"limit must be 0-{MAX_RECORDS}, got {request.limit}"
            )
        with self._reads() as session:
            rows, total = self.app.list_records(session, request.limit or DEFAULT_RECORDS)
        return consumer_pb2.ListRecordsResponse(
            records=[json.dumps(row, separators=(",", ":")) for row in rows], total=total
        )


def definition(app: ConsumerApp, started: list[Consumer]) -> ServiceDefinition:
    """The gRPC side of a consumer process; the consumer it starts is appended to ``started``."""

    def register(server: grpc.Server, settings: Settings) -> None:
        engine = service_engine(settings, app.name)
        initialize(engine, app.metadata)
        url = resolve_rabbitmq_url(settings)
        topology = Topology(settings.messaging_prefix)
        with connect(url, f"{app.name}-declare") as connection:
            topology.declare(connection.channel())
        queue = topology.queue(app.queue)
        consumer = Consumer(
            url,
            queue,
            app.make_handler(settings),
            engine=engine,
            name=app.name,
            dead_letter_exchange=topology.dead_letter_exchange,
        )
        consumer.start()
        started.append(consumer)
        # SERVING should mean "consuming": give the first connection a moment. A broker that is
        # down does not stop the process; it keeps trying, and health says SERVING regardless.
        if not consumer.wait_consuming(timeout=STARTUP_WAIT_S):
            log.warning("%s is not consuming yet; it keeps reconnecting in the background", app.name)
        consumer_pb2_grpc.add_ConsumerServiceServicer_to_server(
            ConsumerServicer(app, queue, consumer, engine), server
        )
        return None

    return ServiceDefinition(
        name=app.name,
        grpc_service_names=[consumer_pb2.DESCRIPTOR.services_by_name["ConsumerService"].full_name],
        register=register,
    )


def run_consumer(app: ConsumerApp) -> None:
    """The ``main`` of a consumer process: serve until SIGTERM, then stop consuming cleanly."""
    started: list[Consumer] = []
    try:
        run_service(definition(app, started))
    finally:
        for consumer in started:
            consumer.stop()
        log.info("consumer stopped")
