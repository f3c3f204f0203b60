"""Topology: the exchanges, queues and bindings the bookstore's events travel through.

What. The order service publishes every event once, to the durable *topic* exchange
``bookstore.events``, with the event's type as routing key (``order.approved``). Each consumer
owns a durable queue, bound to the exchange by the patterns it cares about (``QUEUE_BINDINGS``):

| queue | binding keys | why |
|---|---|---|
| order.notification | ``order.*`` | tells the customer about every step of an order |
| order.analytics | ``order.approved``, ``order.rejected`` | counts outcomes only |
| order.inventory | ``order.approved``, ``order.rejected`` | releases or commits stock on the outcome |

The publisher never names a queue: adding a consumer is adding a queue and a binding.

Every queue has a dead-letter queue ``<queue>.dead``. A message the consumer rejects, or that
was delivered more than ``delivery_limit`` times without an ack, goes there instead of being
lost or looping forever. The dead-letter exchange ``bookstore.dead-letters`` is a *direct*
exchange, and each queue dead-letters with its own name as routing key: a dead letter belongs
to the one queue that failed it. Had we kept the original routing key on a topic exchange, a
message that only the notification consumer choked on would also land in ``order.analytics.dead``
and ``order.inventory.dead``, which bind the same keys. The original key is not lost: the broker
records it, the queue and the reason in the message's ``x-death`` header.

Why quorum queues rather than classic durable queues. A quorum queue (``x-queue-type:
quorum``) is a Raft log: replicated over the cluster's nodes when there are several, every
message persistent, and it counts deliveries. ``x-delivery-limit`` bounds redeliveries, also
those caused by a consumer that crashes mid-message (its channel closes, the message is
requeued and counted), so a poison message is dead-lettered after a few attempts instead of
crashing every consumer forever. The broker counts *deliveries*, not failures: each time a
consumer's channel dies (a crash, a reconnect), every message it had prefetched and not acked
counts one more. So the limit is kept high (``DELIVERY_LIMIT``, 50) as a backstop, and the
consumers count their handlers' failures themselves (``bookstore.messaging.consumer``, an
``x-attempts`` header, 5 by default): a handler that fails is decided by the consumer, with
the reason; only a message that never lets a consumer finish is left to the broker. With a
limit of 10, eleven crashes of a consumer during a backlog parked 75 healthy events of 300;
with 50, a crash loop has to go on five times longer before anything parks, which a
supervisor's restart alarm notices first. What parks anyway is replayed with
``bookstore.messaging.dead_letters`` (``bookstore dlq``).

Classic queues are a little faster and lighter and support priorities, but they cannot count
redeliveries (a consumer would have to track attempts itself, and a crash before it records one
loops forever) and are not replicated. Dead-lettering uses the ``at-least-once`` strategy
(RabbitMQ 3.10+): the broker keeps a dead letter in the source queue until the dead-letter queue
has confirmed it, instead of dropping it if that fails; the strategy requires ``x-overflow:
reject-publish``.

Names derive from a ``prefix`` (``BOOKSTORE_MESSAGING_PREFIX``), so concurrent test runs and
notebooks on one broker never collide; ``temporary_topology`` makes a random one and deletes
everything afterwards. Binding keys are never prefixed: they are event types.

``declare`` is idempotent and every process calls it at start, whichever starts first: a
publisher that starts before its consumers must not publish into an exchange with no queues
(the messages would be dropped, or returned as unroutable). Declaring an existing queue with
*different* arguments fails (``PRECONDITION_FAILED``): change arguments with a new queue or
with a policy, never by redeclaring.

When not to use this: for a throw-away demo queue that nobody depends on, a classic,
auto-delete queue is simpler; ``declare_queue_for`` is there for teaching queues that should
still behave like the real ones.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from bookstore.messaging.broker import connect
from bookstore.messaging.events import ORDER_APPROVED, ORDER_REJECTED

logger = logging.getLogger(__name__)

EXCHANGE = "bookstore.events"
EXCHANGE_TYPE = "topic"
DEAD_LETTER_EXCHANGE = "bookstore.dead-letters"
DEAD_LETTER_EXCHANGE_TYPE = "direct"
DEAD_LETTER_SUFFIX = ".dead"

NOTIFICATION = "order.notification"
ANALYTICS = "order.analytics"
INVENTORY = "order.inventory"

# queue (unprefixed) -> binding keys on the events exchange (event types or patterns)
QUEUE_BINDINGS: Mapping[str, tuple[str, ...]] = {
    NOTIFICATION: ("order.*",),
    ANALYTICS: (ORDER_APPROVED, ORDER_REJECTED),
    INVENTORY: (ORDER_APPROVED, ORDER_REJECTED),
}

DELIVERY_LIMIT = 50  # redeliveries after the first: the backstop for crash loops, see the module docstring


@dataclass(frozen=True)
class Topology:
    """The bookstore's exchanges and queues, every name starting with ``prefix``."""

    prefix: str = ""
    delivery_limit: int = DELIVERY_LIMIT
    # Ad-hoc queues this object declared, so ``delete`` removes them too (this process only).
    _ad_hoc: set[str] = field(default_factory=set, init=False, repr=False, compare=False, hash=False)

    @property
    def exchange(self) -> str:
        return f"{self.prefix}{EXCHANGE}"

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.prefix}{DEAD_LETTER_EXCHANGE}"

    def queue(self, name: str) -> str:
        """The full name of queue ``name`` (``order.notification`` -> ``<prefix>order.notification``)."""
        return f"{self.prefix}{name}"

    def dead_letter_queue(self, name: str) -> str:
        """The full name of the dead-letter queue of queue ``name``."""
        return f"{self.queue(name)}{DEAD_LETTER_SUFFIX}"

    @property
    def queues(self) -> tuple[str, ...]:
        """Full names of the bookstore's queues (not their dead-letter queues)."""
        return tuple(self.queue(name) for name in QUEUE_BINDINGS)

    def bindings(self) -> list[tuple[str, str]]:
        """(full queue name, binding key) pairs, as ``declare`` binds them."""
        return [(self.queue(name), key) for name, keys in QUEUE_BINDINGS.items() for key in keys]

    def queue_arguments(self, name: str) -> dict[str, Any]:
        """The ``x-`` arguments of queue ``name``: quorum, bounded redeliveries, its own dead letters."""
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": self.delivery_limit,
            "x-dead-letter-exchange": self.dead_letter_exchange,
            "x-dead-letter-routing-key": self.queue(name),
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",  # required by at-least-once dead-lettering
        }

    @staticmethod
    def dead_letter_queue_arguments() -> dict[str, Any]:
        # A dead-letter queue is read by humans and repair scripts, not retried: no limit, no DLX.
        return {"x-queue-type": "quorum"}

    def declare(self, channel: BlockingChannel) -> None:
        """Create the exchanges, queues and bindings that do not exist yet; a no-op for those that do."""
        channel.exchange_declare(self.exchange, exchange_type=EXCHANGE_TYPE, durable=True)
        channel.exchange_declare(
            self.dead_letter_exchange, exchange_type=DEAD_LETTER_EXCHANGE_TYPE, durable=True
        )
        for name, keys in QUEUE_BINDINGS.items():
            self._declare_queue(channel, name, keys)

    def declare_queue_for(self, channel: BlockingChannel, name: str, binding_keys: Sequence[str]) -> str:
        """Declare queue ``name`` (and its dead-letter queue) bound by ``binding_keys``, like the
        bookstore's own; returns its full name. The exchanges must exist (``declare``)."""
        self._ad_hoc.add(name)
        return self._declare_queue(channel, name, binding_keys)

    def _declare_queue(self, channel: BlockingChannel, name: str, keys: Iterable[str]) -> str:
        # The dead-letter queue first, so nothing the new queue dead-letters can go unrouted.
        dead = self.dead_letter_queue(name)
        channel.queue_declare(dead, durable=True, arguments=self.dead_letter_queue_arguments())
        channel.queue_bind(dead, self.dead_letter_exchange, routing_key=self.queue(name))
        queue = self.queue(name)
        channel.queue_declare(queue, durable=True, arguments=self.queue_arguments(name))
        for key in keys:
            channel.queue_bind(queue, self.exchange, routing_key=key)
        return queue

    def delete(self, channel: BlockingChannel) -> None:
        """Delete every queue (with its messages) and both exchanges; for tests and notebooks."""
        for name in (*QUEUE_BINDINGS, *sorted(self._ad_hoc)):
            channel.queue_delete(self.queue(name))
            channel.queue_delete(self.dead_letter_queue(name))
        channel.exchange_delete(self.exchange)
        channel.exchange_delete(self.dead_letter_exchange)
        self._ad_hoc.clear()


def random_prefix() -> str:
    """A prefix no other run will choose: ``tmp-<8 hex digits>.``."""
    return f"tmp-{secrets.token_hex(4)}."


@contextlib.contextmanager
def temporary_topology(url: str, *, delivery_limit: int = DELIVERY_LIMIT) -> Iterator[Topology]:
    """A declared ``Topology`` with a random prefix, deleted (queues, messages and exchanges) on exit."""
    topology = Topology(prefix=random_prefix(), delivery_limit=delivery_limit)
    try:
        with connect(url, f"{topology.prefix}topology") as connection:
            topology.declare(connection.channel())
        yield topology
    finally:
        try:
            with connect(url, f"{topology.prefix}cleanup") as connection:
                topology.delete(connection.channel())
        except pika.exceptions.AMQPError as error:  # cleanup must not hide the body's own exception
            logger.warning("could not delete temporary topology %s: %r", topology.prefix, error)


def keys_routed(url: str, binding_keys: Sequence[str], routing_keys: Sequence[str]) -> list[str]:
    """Which of ``routing_keys`` a queue bound by ``binding_keys`` receives, as RabbitMQ itself routes.

    Asks the broker, not a reimplementation of its matching: a throw-away topic exchange, one
    exclusive queue bound by every binding key, and each routing key published with confirms
    and ``mandatory``, so the broker answers each at once (routed, or returned as unroutable).
    Everything it declares is deleted on return.
    """
    exchange = f"{random_prefix()}keys-routed"
    taken: list[str] = []
    with connect(url, "keys-routed") as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.exchange_declare(exchange, exchange_type=EXCHANGE_TYPE, auto_delete=False)
        try:
            queue = channel.queue_declare("", exclusive=True).method.queue
            for key in binding_keys:
                channel.queue_bind(queue, exchange, routing_key=key)
            for key in routing_keys:
                try:
                    channel.basic_publish(exchange, key, b"", mandatory=True)
                except pika.exceptions.UnroutableError:
                    continue
                taken.append(key)
        finally:
            channel.exchange_delete(exchange)
    return taken
