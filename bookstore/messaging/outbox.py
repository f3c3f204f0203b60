"""The transactional outbox: publish an event if, and only if, the change it reports committed.

**The problem.** The order service changes an order in its database and must tell the world
("order.approved"). Two writes to two systems cannot be one transaction: commit then publish,
and a crash in between loses the event; publish then commit, and a rollback leaves an event
about a change that never happened. A broker that is down would also make every order fail.

**The pattern.** Write the event as a row of an ``outbox`` table *in the same database
transaction* as the order change (``add_event``). Either both commit or neither does. A relay
(``OutboxRelay``, a thread in the order service) then reads unpublished rows in the order they
were written, publishes them with publisher confirms, and marks them published. If RabbitMQ is
down, orders still succeed and their events wait in the table; when it returns, the relay
catches up, oldest first.

**The price.** Delivery is *at least once*: a relay that dies after the broker confirmed but
before it marked the rows publishes them again. That is why every event carries a stable
``message_id`` (written with the row) and consumers remember which ids they applied.

**A broker outage.** The publisher fails a publish the moment its connection drops, so the
relay learns at once; it marks the events the broker did confirm, treats every unconfirmed one
as not sent, and waits for the publisher to be connected again (``wait_connected``), then
publishes the rest at once, oldest first. Rows written during the outage simply wait. (Before
this, a publish in flight when the broker stopped waited out a 10 s confirm timeout, and the
outbox drained up to 3.5 s after the broker was back.)

**Order.** One relay per database publishes on one channel, in row order, so consumers see an
order's events in the order they happened. Run the relay in one replica only (the order
service runs it in replica 0); two relays would both be correct but could interleave.

**When not to.** When losing an event is acceptable (a cache hint), or when the broker is the
system of record (event sourcing into a log such as Kafka, which is then read back).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import BigInteger, Engine, Index, Integer, String, Text, delete, func, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from bookstore.messaging.backoff import RECONNECT_CAP_S, Backoff
from bookstore.messaging.events import Event
from bookstore.observability import inject_headers, producer_span, set_outbox_pending
from bookstore.platform.database import initialize, read_session_factory, session_factory

log = logging.getLogger(__name__)

DEFAULT_BATCH = 500
PUBLISHED_RETENTION_S = 3600.0  # published rows are kept this long, for inspection, then purged


class OutboxBase(DeclarativeBase):
    pass


class OutboxRow(OutboxBase):
    __tablename__ = "outbox"
    # The relay's query: unpublished rows, oldest first.
    __table_args__ = (Index("ix_outbox_published_id", "published_at_ns", "id"),)

    # SQLite numbers rows itself only for a column declared exactly INTEGER PRIMARY KEY.
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(36), unique=True)
    event_type: Mapped[str] = mapped_column(String(100))
    correlation_id: Mapped[str] = mapped_column(String(100), default="")
    body: Mapped[str] = mapped_column(Text)  # the event's data, as JSON
    headers: Mapped[str] = mapped_column(Text, default="{}")  # e.g. the W3C traceparent, as JSON
    occurred_at: Mapped[float] = mapped_column()
    created_at_ns: Mapped[int] = mapped_column(BigInteger)
    published_at_ns: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


def create_outbox_table(engine: Engine) -> None:
    """Create the ``outbox`` table beside a service's own tables (idempotent)."""
    initialize(engine, OutboxBase.metadata)


def add_event(session: Session, event: Event, headers: Mapping[str, str] | None = None) -> None:
    """Stage ``event`` in ``session``: it is published only if this session's transaction commits.

    The current trace context is stored with it (W3C ``traceparent``), so the span that later
    publishes it, in the relay's thread, continues the trace of the request that caused it.
    """
    headers = inject_headers(dict(headers or {}))
    session.add(
        OutboxRow(
            message_id=event.message_id,
            event_type=event.type,
            correlation_id=event.correlation_id,
            body=json.dumps(dict(event.data), separators=(",", ":")),
            headers=json.dumps(dict(headers or {}), separators=(",", ":")),
            occurred_at=event.occurred_at,
            created_at_ns=time.time_ns(),
        )
    )


@dataclass(frozen=True)
class PendingEvent:
    """An unpublished outbox row: the event and the headers stored with it."""

    row_id: int
    event: Event
    headers: Mapping[str, Any]


class Outbox:
    """Reads and settles the ``outbox`` rows of one database."""

    def __init__(self, engine: Engine) -> None:
        create_outbox_table(engine)
        self._sessions = session_factory(engine)
        self._reads = read_session_factory(engine)

    def pending(self, limit: int = DEFAULT_BATCH) -> list[PendingEvent]:
        """Unpublished events, oldest first."""
        with self._reads() as session:
            rows = session.execute(
                select(OutboxRow)
                .where(OutboxRow.published_at_ns.is_(None))
                .order_by(OutboxRow.id)
                .limit(limit)
            ).scalars()
            return [_pending_event(row) for row in rows]

    def mark_published(self, row_ids: Sequence[int]) -> None:
        if not row_ids:
            return
        with self._sessions.begin() as session:
            session.execute(
                update(OutboxRow).where(OutboxRow.id.in_(row_ids)).values(published_at_ns=time.time_ns())
            )

    def backlog(self) -> int:
        """How many events wait to be published."""
        with self._reads() as session:
            return session.execute(
                select(func.count()).select_from(OutboxRow).where(OutboxRow.published_at_ns.is_(None))
            ).scalar_one()

    def purge_published(self, older_than_s: float = PUBLISHED_RETENTION_S) -> int:
        """Delete rows published more than ``older_than_s`` ago; returns how many."""
        cutoff = time.time_ns() - int(older_than_s * 1e9)
        with self._sessions.begin() as session:
            result = session.execute(
                delete(OutboxRow).where(
                    OutboxRow.published_at_ns.is_not(None), OutboxRow.published_at_ns < cutoff
                )
            )
            return int(getattr(result, "rowcount", 0) or 0)


def _pending_event(row: OutboxRow) -> PendingEvent:
    event = Event(
        type=row.event_type,
        data=json.loads(row.body),
        correlation_id=row.correlation_id,
        message_id=row.message_id,
        occurred_at=row.occurred_at,
    )
    return PendingEvent(row.id, event, json.loads(row.headers or "{}"))


class EventPublisher(Protocol):
    """What the relay needs from a publisher (``bookstore.messaging.publisher.Publisher``)."""

    def publish(
        self, events: Sequence[Event], headers: Sequence[Mapping[str, Any]] | None = None
    ) -> None: ...


class OutboxRelay:
    """Publishes the outbox, oldest first, in a background thread; survives broker outages.

    ``publisher_factory`` makes a publisher when the relay needs one, so a broker that is down
    at start-up delays events, never the service. After a failure the relay waits (doubling
    from ``poll_s`` up to ``max_backoff_s``, or less: until a publisher that lost its broker
    is connected again) and tries the rows not confirmed again, in the same order. ``wake()``
    makes it look at once (the store calls it after committing an event).
    """

    def __init__(
        self,
        outbox: Outbox,
        publisher_factory: Callable[[], EventPublisher],
        *,
        poll_s: float = 0.05,
        batch: int = DEFAULT_BATCH,
        max_backoff_s: float = RECONNECT_CAP_S,
        exchange: str = "",
    ) -> None:
        self.outbox = outbox
        self.exchange = exchange  # named on the publish spans
        self._publisher_factory = publisher_factory
        self._publisher: EventPublisher | None = None
        self.poll_s = poll_s
        self.batch = batch
        self.max_backoff_s = max_backoff_s
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.published = 0
        self.failures = 0

    def start(self) -> OutboxRelay:
        self._thread = threading.Thread(target=self._run, name="outbox-relay", daemon=True)
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop after the batch in progress; events not yet published stay in the outbox."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        close = getattr(self._publisher, "close", None)
        if close is not None:
            close()
        self._publisher = None

    def relay_once(self) -> int:
        """Publish one batch and mark it; returns how many events went out. Raises on failure."""
        pending = self.outbox.pending(self.batch)
        if not pending:
            return 0
        if self._publisher is None:
            self._publisher = self._publisher_factory()
        with contextlib.ExitStack() as spans:
            # One PRODUCER span per event, each a child of the request that wrote it.
            headers = [
                spans.enter_context(
                    producer_span(p.event.type, p.headers, exchange=self.exchange, routing_key=p.event.type)
                )
                for p in pending
            ]
            try:
                self._publisher.publish([p.event for p in pending], headers)
            except Exception as failure:
                # A ``PublishError`` names the messages not confirmed (or returned): the others
                # are done; these count as not sent and go again. Anything else: all go again.
                unconfirmed = set(
                    getattr(failure, "message_ids", None) or [p.event.message_id for p in pending]
                )
                self._mark([p for p in pending if p.event.message_id not in unconfirmed])
                raise
        # Confirmed by the broker: only now is the row done. A crash right here publishes
        # these again after a restart, which the consumers' dedupe absorbs.
        return self._mark(pending)

    def _mark(self, confirmed: Sequence[PendingEvent]) -> int:
        self.outbox.mark_published([p.row_id for p in confirmed])
        self.published += len(confirmed)
        return len(confirmed)

    def _run(self) -> None:
        backoff = Backoff(min(self.poll_s, self.max_backoff_s), self.max_backoff_s)
        last_purge = backlog_read_at = time.monotonic()
        failing = 0  # failures in a row: an outage is logged once, not four times a second
        while not self._stopping.is_set():
            try:
                sent = self.relay_once()
            except Exception as error:  # the broker, the network or the database: try again later
                self.failures += 1
                failing += 1
                delay = backoff.next_delay()
                log.log(
                    logging.WARNING if failing == 1 else logging.DEBUG,
                    "outbox relay: %s; retrying within %.2f s",
                    error,
                    delay,
                )
                self._pause(delay)
                continue
            if failing:
                log.warning("outbox relay: publishing again after %d failed attempt(s)", failing)
                failing = 0
            backoff.reset()
            if sent == self.batch:
                continue  # more may be waiting: no pause while catching up
            if time.monotonic() - last_purge > 60:
                last_purge = time.monotonic()
                self.outbox.purge_published()
            if time.monotonic() - backlog_read_at >= 1.0:
                backlog_read_at = time.monotonic()
                set_outbox_pending(self.outbox.backlog())
            self._wake.wait(self.poll_s)
            self._wake.clear()

    def _pause(self, delay_s: float) -> None:
        """Wait ``delay_s``, or less: a publisher that lost its broker says when it is back."""
        wait_connected = getattr(self._publisher, "wait_connected", None)
        connected = getattr(self._publisher, "connected", True)
        if wait_connected is not None and not connected:
            wait_connected(delay_s)  # it reconnects by itself: publish the moment it has
            return
        if wait_connected is None:
            self._drop_publisher()  # a publisher that cannot reconnect by itself: make a new one
        self._stopping.wait(delay_s)

    def _drop_publisher(self) -> None:
        close = getattr(self._publisher, "close", None)
        self._publisher = None
        if close is not None:
            try:
                close()
            except Exception:  # closing a broken connection may fail too; it is gone either way
                log.debug("outbox relay: closing the failed publisher failed", exc_info=True)
