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

When a handler fails, the message is not lost and not retried forever. The consumer counts
the *handler's* failures itself, in the message's ``x-attempts`` header:

* while the attempts are below ``max_attempts``, it publishes a copy of the message back to
  its own queue (the default exchange, routed by queue name) with ``x-attempts`` raised by one
  and the last error in ``x-error``, waits for the broker's confirm, and only then acks the
  original. The copy goes to the back of the queue: transient trouble gets time to clear, at
  the price of order (the messages that were behind it are applied before its retry);
* on the last attempt it publishes the copy to the dead-letter exchange instead, with headers
  saying why (``x-error``, ``x-attempts``, ``x-consumer``, ``x-original-routing-key``), and
  acks the original only after the confirm: a dead-letter queue that says why each message is
  there is one a human can triage and replay (``bookstore.messaging.dead_letters``);
* a message that cannot be read (``MalformedEvent``) goes there at once: retrying cannot fix it.

What counts towards which limit, and why. The broker counts *deliveries* (``x-delivery-count``
in a quorum queue): every prefetched, unacked message counts one more each time a consumer's
channel dies, whether the message did anything wrong or not. A consumer process in a crash
loop, with 100 messages prefetched, adds one to all 100 at every crash. Had the consumer
decided on that count, crashes alone would park healthy messages. So the decision about
handler failures uses the consumer's own header, which crashes do not touch, and the queue's
``x-delivery-limit`` is kept high (``topology.DELIVERY_LIMIT``, 50) as the backstop for the one
case the consumer cannot handle: a message that kills the process before any decision is
made. The trade-off is that such a message costs up to 50 crashes before it is parked, and
the healthy messages prefetched with it share its fate (replay them from the dead-letter
queue). One thing softens the crash loop: a *redelivered* message may be the one that killed
the last process, so the acks of everything committed before it are sent before it is touched.

The consumer reconnects by itself when the broker goes away (``bookstore.messaging.backoff``:
doubling delays capped at a quarter of a second, from the smallest again after every successful
connection); what was unacked at that moment is redelivered, which the dedupe table makes
harmless.

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from bookstore.messaging import dedupe
from bookstore.messaging.backoff import RECONNECT_CAP_S, Backoff
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
DEAD_REASON_HEADER = "x-dead-letter-reason"  # set by the consumer on its dead letters only
CONSUMER_DEATHS_HEADER = "x-consumer-deaths"  # times consumers dead-lettered it; kept across replays
ATTEMPTS_EXHAUSTED = "attempts_exhausted"
UNREADABLE = "unreadable"

MAX_ERROR_LENGTH = 1000  # an x-error header is for a human; a whole traceback belongs in the logs
POLL_S = 0.5  # the longest the loop waits for the broker before looking at the stop flag again
DEPTH_EVERY_S = 1.0  # how often the queue-depth gauge is refreshed


class Decision(enum.Enum):
    """What becomes of one delivery once the consumer has tried it."""

    ACK = "ack"  # applied now, or already applied before: the broker may forget it
    RETRY = "retry"  # a confirmed copy with x-attempts + 1 to the back of its queue, then ack
    DEAD_LETTER = "dead-letter"  # a confirmed copy to the dead-letter exchange, then ack


def delivery_attempt(headers: Mapping[str, Any] | None) -> int:
    """Which attempt of the handler this delivery is, counting from 1.

    ``x-attempts`` says how many attempts failed before (absent the first time). The broker's
    ``x-delivery-count`` is ignored on purpose: it also counts deliveries that died with a
    crashed consumer, which say nothing about the message (see the module docstring).
    """
    failed = (headers or {}).get(ATTEMPTS_HEADER)
    if isinstance(failed, int) and not isinstance(failed, bool) and failed >= 0:
        return failed + 1
    return 1


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


def failure_headers(
    original: Mapping[str, Any] | None,
    *,
    error: BaseException,
    routing_key: str,
    exchange: str,
    attempts: int,
    consumer: str,
    dead_reason: str = "",
) -> dict[str, Any]:
    """The original headers plus why the message failed, for a retry copy or a dead letter.

    A dead letter (``dead_reason`` given) also says why it is dead and counts one more death.

    ``attempts`` is how many attempts have failed so far. The first routing is kept: a retry
    copy travels through the default exchange under the queue's name, but its dead letter must
    still name the exchange and key it was published with. The broker's delivery count is
    dropped: it describes the old delivery, and would confuse the next queue's own count.
    """
    headers = {k: v for k, v in (original or {}).items() if k != DELIVERY_COUNT_HEADER}
    headers.setdefault(ORIGINAL_ROUTING_KEY_HEADER, routing_key)
    headers.setdefault(ORIGINAL_EXCHANGE_HEADER, exchange)
    headers.update(
        {ERROR_HEADER: describe_error(error), ATTEMPTS_HEADER: attempts, CONSUMER_HEADER: consumer}
    )
    if dead_reason:
        headers[DEAD_REASON_HEADER] = dead_reason
        headers[CONSUMER_DEATHS_HEADER] = int(headers.get(CONSUMER_DEATHS_HEADER) or 0) + 1
    return headers


dead_letter_headers = failure_headers  # the same headers say why a message is dead


def copied_properties(source: pika.BasicProperties, headers: Mapping[str, Any]) -> pika.BasicProperties:
    """``source``'s properties with ``headers``, persistent: for a copy of a delivered message.

    No expiration: a copy waits for its consumer, or a dead letter for a human. No user_id: the
    broker checks it against the publishing connection's user.
    """
    return pika.BasicProperties(
        content_type=source.content_type,
        content_encoding=source.content_encoding,
        headers=dict(headers),
        delivery_mode=pika.DeliveryMode.Persistent,
        priority=source.priority,
        correlation_id=source.correlation_id,
        reply_to=source.reply_to,
        message_id=source.message_id,
        timestamp=source.timestamp,
        type=source.type,
        app_id=source.app_id,
    )


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
        reconnect_max_s: float = RECONNECT_CAP_S,
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

    # -- running and stopping --------------------------------------------------------------

    def run(self) -> None:
        """Consume until ``stop()``; reconnects with capped exponential backoff when the broker goes."""
        self._ensure_tables()
        backoff = Backoff(cap_s=self.reconnect_max_s)
        failing = 0  # attempts in a row that failed: an outage is logged once, not four times a second
        while not self._stop_requested.is_set():
            try:
                self._connect()
                backoff.reset()  # connected: the next outage starts from the smallest delay again
                failing = 0
                self._consume_until_stopped()
            except pika.exceptions.AMQPError as error:
                self._drop_connection()
                if self._stop_requested.is_set():
                    break
                delay = backoff.next_delay()
                failing += 1
                log.log(
                    logging.WARNING if failing == 1 else logging.DEBUG,
                    "consumer %s lost the broker (%s); reconnecting in %.1f s",
                    self.name,
                    type(error).__name__ + (f": {error}" if str(error) else ""),
                    delay,
                )
                self._stop_requested.wait(delay)
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
            if any(delivery.redelivered for delivery in batch):
                # It may be the message that killed the last consumer: should it kill this one
                # too, what is already committed must not die with it and be counted again.
                self._flush_acks()
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
                self._dead_letter(delivery, error, self._attempt(delivery), began)
        if len(readable) > 1 and self._apply_batch(readable):
            return
        for delivery, event in readable:
            self._settle_one(delivery, event)

    def _settle_one(self, delivery: _Delivery, event: Event) -> None:
        attempt = self._attempt(delivery)
        began = time.perf_counter()
        try:
            # A child of the span that published the message: the trace goes on through the queue.
            with consumer_span(event.type, delivery.properties.headers, queue=self.queue):
                applied = bool(retry_on_lock(lambda: self._commit_one(event)))
        except Exception as error:
            decision = decide(error, attempt, self.max_attempts)
            if decision is Decision.RETRY:
                log.warning(
                    "consumer %s: message %s failed (attempt %d of %d), retried: %s",
                    self.name,
                    event.message_id,
                    attempt,
                    self.max_attempts,
                    describe_error(error),
                )
                self._retry(delivery, error, attempt, began)
            else:
                self._dead_letter(delivery, error, attempt, began)
            return
        # Counted at the commit, before the ack: ``applied`` always equals the rows the handler
        # committed, even when the ack is then lost (the redelivery counts as a duplicate).
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

    def _retry(self, delivery: _Delivery, error: BaseException, attempt: int, began: float) -> None:
        """A confirmed copy, ``x-attempts`` raised, to the back of our queue; then ack the original."""
        # The default exchange routes by queue name: the copy reaches this queue and no other.
        if self._republish(delivery, error, attempt, exchange="", routing_key=self.queue):
            self._count(retried=1)
        record_consumed(self.queue, "retried", time.perf_counter() - began)  # copied or requeued

    def _dead_letter(self, delivery: _Delivery, error: BaseException, attempt: int, began: float) -> None:
        """Publish a copy that says why, wait for the broker's confirm, then ack the original.

        The metric is counted here, by what really happened, for every dead letter (a message
        that cannot be read included): ``dead_lettered`` once the broker confirmed the copy,
        ``retried`` when it refused it and the original went back to the queue.
        """
        reason = UNREADABLE if isinstance(error, MalformedEvent) else ATTEMPTS_EXHAUSTED
        if self._republish(
            delivery,
            error,
            attempt,
            exchange=self.dead_letter_exchange,
            routing_key=self.queue,
            reason=reason,
        ):
            self._count(dead_lettered=1)
            record_consumed(self.queue, "dead_lettered", time.perf_counter() - began)
            log.error(
                "consumer %s dead-lettered message %s after %d attempt(s): %s",
                self.name,
                delivery.properties.message_id,
                attempt,
                describe_error(error),
            )
        else:
            record_consumed(self.queue, "retried", time.perf_counter() - began)

    def _republish(
        self,
        delivery: _Delivery,
        error: BaseException,
        attempt: int,
        *,
        exchange: str,
        routing_key: str,
        reason: str = "",
    ) -> bool:
        """Publish a copy saying why it failed; ack the original once the copy is confirmed.

        False if the broker did not take the copy: the original is then requeued (acking it
        would lose it), and the queue's delivery limit ends the loop should that persist.
        """
        source = delivery.properties
        headers = failure_headers(
            source.headers,
            error=error,
            routing_key=delivery.routing_key,
            exchange=delivery.exchange,
            attempts=attempt,
            consumer=self.name,
            dead_reason=reason,
        )
        properties = copied_properties(source, headers)
        try:
            self._require_confirm_channel().basic_publish(
                exchange, routing_key, delivery.body, properties, mandatory=True
            )
        except (
            pika.exceptions.UnroutableError,
            pika.exceptions.NackError,
            pika.exceptions.ChannelClosed,
        ) as failure:
            self._dead_letter_channel = None
            log.error(
                "consumer %s could not republish message %s to %r (%s); requeued",
                self.name,
                source.message_id,
                exchange or routing_key,
                failure,
            )
            self._require_channel().basic_nack(delivery.tag, requeue=True)
            self._count(retried=1)
            return False
        # At once and alone: a redelivery would be copied twice; and ``multiple`` could cover
        # a message of the same batch that is not committed yet.
        self._require_channel().basic_ack(delivery.tag)
        return True

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _attempt(delivery: _Delivery) -> int:
        return delivery_attempt(delivery.properties.headers)

    def _require_channel(self) -> BlockingChannel:
        if self._channel is None:
            raise pika.exceptions.ChannelWrongStateError("the consumer has no open channel")
        return self._channel

    def _require_confirm_channel(self) -> BlockingChannel:
        """A second channel, in confirm mode, for retry copies and dead letters: opened on first use.

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
