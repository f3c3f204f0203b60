"""A reliable consumer: one handler over one queue, each message applied effectively once.

What it does. RabbitMQ pushes messages to the consumer (up to ``prefetch`` unacknowledged at a
time); for each, the consumer opens a transaction on its own database, records the message id
(``bookstore.messaging.dedupe``), lets the handler do its work through the same session,
commits, and only then acks. The broker forgets a message only when it is acked.

Why in that order. *Ack after the work, never before*: a consumer that acks first and then
crashes has lost the message for good. Acking after the commit has the opposite failure: a
crash between commit and ack makes the broker deliver the message again (at-least-once
delivery). That one is repairable: the dedupe row committed with the work, so the redelivery
finds it, is acked, and is not applied twice. At-least-once delivery plus an idempotent
consumer is what "exactly once" means in practice: *effectively once*.

When a handler fails, the message is not lost and not retried forever:

* it is rejected with ``requeue=True`` while its attempt (counted by the quorum queue in the
  ``x-delivery-count`` header) is below ``max_attempts``: transient trouble gets retried;
* on the last attempt the consumer publishes a copy to the dead-letter exchange, with headers
  saying why (``x-error``, ``x-attempts``, ``x-consumer``, ``x-original-routing-key``), waits
  for the broker's confirm, and only then acks the original: a dead-letter queue that says why
  each message is there is one a human can triage and replay;
* a message that cannot be read (``MalformedEvent``) goes there at once: retrying cannot fix it.

The queue's own ``x-delivery-limit`` stays the safety net for the one case the consumer cannot
handle: a message that kills the process before any decision is made. Note that the broker
counts *deliveries*, not failures: a message that was prefetched when a consumer crashed,
reconnected or stopped counts one more attempt. Give the queue a delivery limit well above
``max_attempts`` (twice is plenty), so the consumer, which knows the reason, decides first.

The consumer reconnects by itself, with capped exponential backoff, when the broker goes
away; what was unacked at that moment is redelivered, which the dedupe table makes harmless.

Throughput. The acks of committed messages go out as one ``multiple`` ack every half prefetch
window (never before their commits): one round trip through pika for many messages.
``batch_size`` > 1 shares the commit too: up to that many already-prefetched messages are
applied in one transaction. Same guarantees: all of the batch commits or none of it, and if
anything in it fails, the batch is rolled back and applied again one message at a time, so a
failing message is retried alone. A handler must then have no effect outside its session,
because a batch that rolls back runs it again.

When not to use it. Retries are immediate: an outage longer than a few attempts (the database
down for a minute) sends healthy messages to the dead-letter queue, to be replayed later; a
service that must ride out long outages wants delayed retries (a retry queue with a TTL) or a
circuit breaker in front of its handler. And a handler whose effect leaves the database
(sending an e-mail) cannot be made effectively-once by a database transaction: make that
effect idempotent on its own (an idempotency key at the e-mail provider) or accept duplicates.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from bookstore.messaging import dedupe
from bookstore.messaging.events import Event, MalformedEvent
from bookstore.observability import consumer_span, record_consumed, set_queue_depth
from bookstore.platform.database import retry_on_lock, session_factory

log = logging.getLogger(__name__)

Handler = Callable[[Event, Session], None]

DELIVERY_COUNT_HEADER = "x-delivery-count"
ERROR_HEADER = "x-error"
ATTEMPTS_HEADER = "x-attempts"
CONSUMER_HEADER = "x-consumer"
ORIGINAL_ROUTING_KEY_HEADER = "x-original-routing-key"
ORIGINAL_EXCHANGE_HEADER = "x-original-exchange"

MAX_ERROR_LENGTH = 1000  # an x-error header is for a human; a whole traceback belongs in the logs
INITIAL_BACKOFF_S = 0.1
POLL_S = 0.5  # the longest the loop waits for the broker before looking at the stop flag again
DEPTH_EVERY_S = 1.0  # how often the queue-depth gauge is refreshed
LOCAL_ATTEMPTS_REMEMBERED = 10_000


class Decision(enum.Enum):
    """What becomes of one delivery once the consumer has tried it."""

    ACK = "ack"  # applied now, or already applied before: the broker may forget it
    RETRY = "retry"  # basic_nack(requeue=True): the broker delivers it again
    DEAD_LETTER = "dead-letter"  # a confirmed copy to the dead-letter exchange, then ack


def delivery_attempt(headers: Mapping[str, Any] | None, redelivered: bool, failures_seen: int = 0) -> int:
    """Which attempt this delivery is, counting from 1.

    A quorum queue says it in ``x-delivery-count``: how often the message was delivered and
    returned before (0, or absent, the first time). A classic queue only says ``redelivered``;
    then ``failures_seen``, what this consumer process remembers, is the best we know.
    """
    count = (headers or {}).get(DELIVERY_COUNT_HEADER)
    if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
        return count + 1
    return max(failures_seen + 1, 2 if redelivered else 1)


def decide(error: BaseException | None, attempt: int, max_attempts: int) -> Decision:
    """Ack what succeeded; dead-letter what cannot succeed or has had its last attempt; retry the rest."""
    if error is None:
        return Decision.ACK
    if isinstance(error, MalformedEvent) or attempt >= max_attempts:
        return Decision.DEAD_LETTER
    return Decision.RETRY


def describe_error(error: BaseException) -> str:
    """``"ValueError: stock must be positive"``: what an ``x-error`` header carries."""
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= MAX_ERROR_LENGTH else text[: MAX_ERROR_LENGTH - 3] + "..."


def dead_letter_headers(
    original: Mapping[str, Any] | None,
    *,
    error: BaseException,
    routing_key: str,
    exchange: str,
    attempts: int,
    consumer: str,
) -> dict[str, Any]:
    """The original headers plus why the message is dead; the broker's delivery count is dropped
    (it describes the old queue, and would confuse the dead-letter queue's own count on a replay)."""
    headers = {k: v for k, v in (original or {}).items() if k != DELIVERY_COUNT_HEADER}
    headers.update(
        {
            ERROR_HEADER: describe_error(error),
            ORIGINAL_ROUTING_KEY_HEADER: routing_key,
            ORIGINAL_EXCHANGE_HEADER: exchange,
            ATTEMPTS_HEADER: attempts,
            CONSUMER_HEADER: consumer,
        }
    )
    return headers


@dataclass(frozen=True)
class ConsumerStats:
    """Counters since the consumer was made.

    ``received`` counts deliveries, redeliveries too. ``applied`` counts messages whose work
    committed (it always matches the handler's committed rows); it is counted at the commit,
    so a message whose ack was lost on the way (a crash, a dropped connection) comes back and
    is counted once more under ``duplicates``.
    """

    received: int = 0
    applied: int = 0
    duplicates: int = 0
    retried: int = 0
    dead_lettered: int = 0
    reconnects: int = 0
    last_applied_at: float | None = None  # time.time() of the latest commit that applied something

    @property
    def settled(self) -> int:
        """Deliveries the consumer has answered (acked, rejected or dead-lettered)."""
        return self.applied + self.duplicates + self.retried + self.dead_lettered


@dataclass(frozen=True)
class _Delivery:
    tag: int
    exchange: str
    routing_key: str
    redelivered: bool
    properties: pika.BasicProperties
    body: bytes


class Consumer:
    """Runs ``handler`` over every message of ``queue``; see the module docstring for the guarantees.

    ``name`` identifies the consumer in the dedupe table, in the logs and in dead-letter headers:
    keep it stable across restarts (``"analytics"``), or redeliveries look new. The consumer
    creates the dedupe table in ``engine`` when it starts, if it is missing.
    """

    def __init__(
        self,
        url: str,
        queue: str,
        handler: Handler,
        *,
        engine: Engine,
        name: str,
        dead_letter_exchange: str,
        prefetch: int = 100,
        max_attempts: int = 5,
        reconnect_max_s: float = 5.0,
        batch_size: int = 1,
    ) -> None:
        if prefetch < 1 or max_attempts < 1 or batch_size < 1:
            raise ValueError("prefetch, max_attempts and batch_size must be at least 1")
        if not dead_letter_exchange:
            # The default exchange routes by queue name: the dead letter would go straight back.
            raise ValueError("dead_letter_exchange must name an exchange, not the default one")
        if len(name) > dedupe.CONSUMER_LENGTH:
            raise ValueError(f"a consumer name has at most {dedupe.CONSUMER_LENGTH} characters")
        self.url = url
        self.queue = queue
        self.name = name
        self.dead_letter_exchange = dead_letter_exchange
        self.prefetch = prefetch
        self.max_attempts = max_attempts
        self.reconnect_max_s = reconnect_max_s
        self.batch_size = batch_size
        self._handler = handler
        self._engine = engine
        self._sessions = session_factory(engine)
        self._tables_ready = False

        self._lock = threading.Lock()  # guards _stats, _connection and _thread
        self._stats = ConsumerStats()
        self._stop_requested = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

        # Touched only by the thread that runs the loop (pika objects are not thread-safe).
        self._connection: BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self._dead_letter_channel: BlockingChannel | None = None
        self._received: list[_Delivery] = []
        self._ack_upto = 0  # the highest committed delivery tag not acked yet; 0: none
        self._acks_pending = 0
        self._ack_every = max(1, prefetch // 2)
        self._cancelled_by_broker = False
        self._ever_connected = False
        self._consuming = threading.Event()  # subscribed to the queue right now
        # Failures per message id, only for queues that do not count deliveries themselves.
        self._failures: OrderedDict[str, int] = OrderedDict()

    # -- running and stopping --------------------------------------------------------------

    def run(self) -> None:
        """Consume until ``stop()``; reconnects with capped exponential backoff when the broker goes."""
        self._ensure_tables()
        delay = INITIAL_BACKOFF_S
        while not self._stop_requested.is_set():
            try:
                self._connect()
                delay = INITIAL_BACKOFF_S
                self._consume_until_stopped()
            except pika.exceptions.AMQPError as error:
                self._drop_connection()
                if self._stop_requested.is_set():
                    break
                log.warning(
                    "consumer %s lost the broker (%s); reconnecting in %.1f s",
                    self.name,
                    type(error).__name__ + (f": {error}" if str(error) else ""),
                    delay,
                )
                self._stop_requested.wait(delay)
                delay = min(delay * 2, self.reconnect_max_s)
        self._drop_connection()

    def start(self) -> Consumer:
        """Run in a daemon thread; returns at once (after creating the dedupe table, so a database
        that cannot be reached fails here, in the caller's thread)."""
        self._ensure_tables()
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                raise RuntimeError(f"consumer {self.name} is already running")
            self._stop_requested.clear()
            self._failure = None
            self._thread = threading.Thread(
                target=self._run_in_thread, name=f"consumer-{self.name}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop cleanly: cancel the subscription, finish and settle what was received, close.

        Safe from any thread. Returns False if the loop was still busy after ``timeout`` s
        (a handler that hangs); the loop then still stops once that handler returns.
        """
        self._stop_requested.set()
        with self._lock:
            connection, thread = self._connection, self._thread
        if connection is not None:
            # Wakes process_data_events at once instead of after POLL_S. If the connection is
            # already closing, the loop notices the stop flag by itself.
            with contextlib.suppress(pika.exceptions.AMQPError, RuntimeError):
                connection.add_callback_threadsafe(lambda: None)
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        if thread.is_alive():
            log.warning("consumer %s did not stop within %.1f s", self.name, timeout)
            return False
        return True

    def __enter__(self) -> Consumer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        with self._lock:
            return self._thread is not None and self._thread.is_alive()

    # -- observing -------------------------------------------------------------------------

    def wait_consuming(self, timeout: float = 10.0) -> bool:
        """Wait until the consumer is subscribed to its queue; False if it was not within ``timeout``."""
        return self._consuming.wait(timeout)

    def stats(self) -> ConsumerStats:
        with self._lock:
            return self._stats

    def wait_until(
        self, predicate: Callable[[ConsumerStats], bool], timeout: float = 10.0, poll_s: float = 0.01
    ) -> ConsumerStats:
        """Poll ``stats()`` until ``predicate`` holds; ``TimeoutError`` (with the stats) otherwise.

        Raises at once if the consumer's thread died of an error it could not handle.
        """
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if predicate(stats):
                return stats
            if self._failure is not None:
                raise RuntimeError(f"consumer {self.name} stopped on an error") from self._failure
            if time.monotonic() >= deadline:
                raise TimeoutError(f"consumer {self.name}: condition not met within {timeout} s; {stats}")
            time.sleep(poll_s)

    def _count(self, **increments: int) -> None:
        with self._lock:
            current = self._stats
            changes: dict[str, Any] = {k: getattr(current, k) + n for k, n in increments.items()}
            if increments.get("applied"):
                changes["last_applied_at"] = time.time()
            self._stats = replace(current, **changes)

    # -- the loop --------------------------------------------------------------------------

    def _run_in_thread(self) -> None:
        try:
            self.run()
        except BaseException as error:
            self._failure = error
            log.exception("consumer %s stopped on an error", self.name)

    def _ensure_tables(self) -> None:
        if not self._tables_ready:
            dedupe.create_tables(self._engine)
            self._tables_ready = True

    def _connect(self) -> None:
        parameters = pika.URLParameters(self.url)
        # Shown by `rabbitmqctl list_connections client_properties`: who is this connection?
        parameters.client_properties = {"connection_name": f"bookstore consumer {self.name}"}
        connection = pika.BlockingConnection(parameters)
        with self._lock:
            self._connection = connection
        channel = connection.channel()
        channel.basic_qos(prefetch_count=self.prefetch)
        channel.add_on_cancel_callback(self._on_cancelled_by_broker)
        self._channel = channel
        self._cancelled_by_broker = False
        channel.basic_consume(self.queue, self._on_message, auto_ack=False)
        self._consuming.set()
        if self._ever_connected:
            self._count(reconnects=1)
            log.info("consumer %s reconnected to %s", self.name, self.queue)
        else:
            log.info("consumer %s consuming %s (prefetch %d)", self.name, self.queue, self.prefetch)
        self._ever_connected = True

    def _consume_until_stopped(self) -> None:
        connection, channel = self._connection, self._channel
        assert connection is not None and channel is not None
        depth_read_at = 0.0
        while not self._stop_requested.is_set():
            connection.process_data_events(time_limit=POLL_S)
            self._settle_received()
            if time.monotonic() - depth_read_at >= DEPTH_EVERY_S:
                depth_read_at = time.monotonic()
                # The backlog gauge (messages ready in our queue) behind the dashboards' queue panel.
                set_queue_depth(
                    self.queue, channel.queue_declare(self.queue, passive=True).method.message_count
                )
            if self._cancelled_by_broker:
                # The queue was deleted, or its leader moved: subscribe again from scratch.
                raise pika.exceptions.ConsumerCancelled(f"the broker cancelled the consumer on {self.queue}")
        # A clean stop: no new deliveries (pika rejects, with requeue, those not yet handed
        # to us), then finish what was handed to us, so nothing is left half-done or unacked.
        for tag in list(channel.consumer_tags):
            channel.basic_cancel(tag)
        self._settle_received()
        connection.close()
        log.info("consumer %s stopped cleanly", self.name)

    def _drop_connection(self) -> None:
        self._consuming.clear()
        with self._lock:
            connection, self._connection = self._connection, None
        self._channel = self._dead_letter_channel = None
        # Unacked deliveries die with the channel: the broker redelivers them.
        self._received.clear()
        self._ack_upto = self._acks_pending = 0
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except Exception as error:  # the connection is going away anyway
                log.debug("closing a broken connection: %s", error)

    def _on_message(
        self,
        _channel: BlockingChannel,
        method: pika.spec.Basic.Deliver,
        properties: pika.BasicProperties,
        body: bytes,
    ) -> None:
        # Only collect here: handling inside pika's dispatch would forbid batching.
        self._received.append(
            _Delivery(
                tag=method.delivery_tag,
                exchange=method.exchange or "",
                routing_key=method.routing_key or "",
                redelivered=bool(method.redelivered),
                properties=properties,
                body=body,
            )
        )
        self._count(received=1)

    def _on_cancelled_by_broker(self, _method: object) -> None:
        self._cancelled_by_broker = True

    # -- settling deliveries ---------------------------------------------------------------

    def _settle_received(self) -> None:
        while self._received:
            batch = self._received[: self.batch_size]
            del self._received[: len(batch)]
            self._settle(batch)
        self._flush_acks()

    def _ack_later(self, tag: int, count: int = 1) -> None:
        """Ack ``tag`` (committed) with the next ``multiple`` ack: one round trip for many messages.

        Deliveries are settled in tag order, so a ``multiple`` ack up to ``tag`` only covers
        messages already committed (or rejected or dead-lettered, which are no longer ours).
        Acks go out every half prefetch window, so the broker refills the window while we work,
        and whenever the messages in hand are done.
        """
        self._ack_upto = tag
        self._acks_pending += count
        if self._acks_pending >= self._ack_every:
            self._flush_acks()

    def _flush_acks(self) -> None:
        if self._ack_upto:
            self._require_channel().basic_ack(self._ack_upto, multiple=True)
            self._ack_upto = self._acks_pending = 0

    def _settle(self, batch: Sequence[_Delivery]) -> None:
        readable: list[tuple[_Delivery, Event]] = []
        for delivery in batch:
            began = time.perf_counter()
            try:
                readable.append((delivery, Event.from_message(delivery.properties, delivery.body)))
            except MalformedEvent as error:
                self._dead_letter(delivery, error, self._attempt(delivery, None), began)
        if len(readable) > 1 and self._apply_batch(readable):
            return
        for delivery, event in readable:
            self._settle_one(delivery, event)

    def _settle_one(self, delivery: _Delivery, event: Event) -> None:
        attempt = self._attempt(delivery, event.message_id)
        began = time.perf_counter()
        try:
            # A child of the span that published the message: the trace goes on through the queue.
            with consumer_span(event.type, delivery.properties.headers, queue=self.queue):
                applied = bool(retry_on_lock(lambda: self._commit_one(event)))
        except Exception as error:
            decision = decide(error, attempt, self.max_attempts)
            if decision is Decision.RETRY:
                log.warning(
                    "consumer %s: message %s failed (attempt %d of %d), requeued: %s",
                    self.name,
                    event.message_id,
                    attempt,
                    self.max_attempts,
                    describe_error(error),
                )
                self._remember_failure(event.message_id)
                self._require_channel().basic_nack(delivery.tag, requeue=True)
                self._count(retried=1)
                record_consumed(self.queue, "retried", time.perf_counter() - began)
            else:
                self._dead_letter(delivery, error, attempt, began)
            return
        # Counted at the commit, before the ack: ``applied`` always equals the rows the handler
        # committed, even when the ack is then lost (the redelivery counts as a duplicate).
        self._failures.pop(event.message_id, None)
        if applied:
            self._count(applied=1)
        else:
            log.info("consumer %s: message %s applied before; acked only", self.name, event.message_id)
            self._count(duplicates=1)
        record_consumed(self.queue, "acked" if applied else "duplicate", time.perf_counter() - began)
        self._ack_later(delivery.tag)

    def _commit_one(self, event: Event) -> bool:
        """Claim and apply ``event`` in one transaction; False if it was applied before."""
        with self._sessions() as session:
            try:
                with session.begin():
                    dedupe.claim(session, self.name, event.message_id)
                    self._handler(event, session)
            except dedupe.AlreadyProcessed:
                return False
        return True

    def _apply_batch(self, readable: Sequence[tuple[_Delivery, Event]]) -> bool:
        """Apply every event in one transaction; their acks join the next ``multiple`` ack.

        False (nothing committed, nothing acked) if anything failed; the caller then goes one
        message at a time, so only the failing message is retried or dead-lettered.
        """
        try:
            applied = cast(int, retry_on_lock(lambda: self._commit_batch([e for _, e in readable])))
        except Exception as error:
            log.debug("consumer %s: batch of %d failed (%s); one at a time", self.name, len(readable), error)
            return False
        for _, event in readable:
            self._failures.pop(event.message_id, None)
        self._count(applied=applied, duplicates=len(readable) - applied)
        self._ack_later(max(d.tag for d, _ in readable), len(readable))
        return True

    def _commit_batch(self, events: Sequence[Event]) -> int:
        """Claim and apply the events not applied before, in one transaction; how many were applied."""
        with self._sessions() as session, session.begin():
            fresh = set(dedupe.claim_new(session, self.name, [e.message_id for e in events]))
            applied = 0
            for event in events:
                if event.message_id in fresh:
                    fresh.discard(event.message_id)  # a second copy inside the batch is a duplicate
                    self._handler(event, session)
                    applied += 1
            return applied

    def _dead_letter(self, delivery: _Delivery, error: BaseException, attempt: int, began: float) -> None:
        """Publish a copy that says why, wait for the broker's confirm, then ack the original.

        The metric is counted here, by what really happened, for every dead letter (a message
        that cannot be read included): ``dead_lettered`` once the broker confirmed the copy,
        ``retried`` when it refused it and the original went back to the queue.
        """
        source = delivery.properties
        properties = pika.BasicProperties(
            content_type=source.content_type,
            content_encoding=source.content_encoding,
            headers=dead_letter_headers(
                source.headers,
                error=error,
                routing_key=delivery.routing_key,
                exchange=delivery.exchange,
                attempts=attempt,
                consumer=self.name,
            ),
            delivery_mode=pika.DeliveryMode.Persistent,
            priority=source.priority,
            correlation_id=source.correlation_id,
            reply_to=source.reply_to,
            message_id=source.message_id,
            timestamp=source.timestamp,
            type=source.type,
            app_id=source.app_id,
            # No expiration: a dead letter waits for a human. No user_id: the broker checks it
            # against this connection's user.
        )
        try:
            self._require_dead_letter_channel().basic_publish(
                self.dead_letter_exchange, self.queue, delivery.body, properties, mandatory=True
            )
        except (
            pika.exceptions.UnroutableError,
            pika.exceptions.NackError,
            pika.exceptions.ChannelClosed,
        ) as failure:
            # Acking now would lose the message. Requeue it: the queue's delivery limit ends the loop.
            self._dead_letter_channel = None
            log.error(
                "consumer %s could not dead-letter message %s to %r (%s); requeued",
                self.name,
                source.message_id,
                self.dead_letter_exchange,
                failure,
            )
            self._require_channel().basic_nack(delivery.tag, requeue=True)
            self._count(retried=1)
            record_consumed(self.queue, "retried", time.perf_counter() - began)
            return
        # At once and alone: a redelivery would be dead-lettered twice; and ``multiple`` could
        # cover a message of the same batch that is not committed yet.
        self._require_channel().basic_ack(delivery.tag)
        if source.message_id:
            self._failures.pop(source.message_id, None)
        self._count(dead_lettered=1)
        record_consumed(self.queue, "dead_lettered", time.perf_counter() - began)
        log.error(
            "consumer %s dead-lettered message %s after %d attempt(s): %s",
            self.name,
            source.message_id,
            attempt,
            describe_error(error),
        )

    # -- helpers ---------------------------------------------------------------------------

    def _attempt(self, delivery: _Delivery, message_id: str | None) -> int:
        seen = self._failures.get(message_id, 0) if message_id else 0
        return delivery_attempt(delivery.properties.headers, delivery.redelivered, seen)

    def _remember_failure(self, message_id: str) -> None:
        self._failures[message_id] = self._failures.get(message_id, 0) + 1
        self._failures.move_to_end(message_id)
        while len(self._failures) > LOCAL_ATTEMPTS_REMEMBERED:
            self._failures.popitem(last=False)

    def _require_channel(self) -> BlockingChannel:
        if self._channel is None:
            raise pika.exceptions.ChannelWrongStateError("the consumer has no open channel")
        return self._channel

    def _require_dead_letter_channel(self) -> BlockingChannel:
        """A second channel, in confirm mode, for dead letters only: opened on first use.

        Apart from the consuming channel so that waiting for a confirm never mixes with the
        deliveries' flow, and so that the broker closing it (an exchange that does not exist)
        does not take the subscription down with it.
        """
        channel = self._dead_letter_channel
        if channel is None or not channel.is_open:
            if self._connection is None:
                raise pika.exceptions.ConnectionWrongStateError("the consumer is not connected")
            channel = self._connection.channel()
            channel.confirm_delivery()
            self._dead_letter_channel = channel
        return channel
