"""Remembering which messages a consumer has applied, so a redelivered one is not applied twice.

RabbitMQ delivers *at least once*: a consumer that committed its work but crashed before its
ack gets the same message again, and an outbox relay that crashed after publishing publishes
it again. The consumer cannot prevent that; it can make it harmless. Each consumer records the
``message_id`` of every message it applied, in a table of its own database, **in the same
transaction as the work itself**:

* the work committed  => the record committed: a redelivery finds the row and is only acked;
* the work rolled back => so did the record: a redelivery is applied as if it were the first.

Recording it anywhere else (another database, Redis, the consumer's memory) reopens the gap
between "done" and "remembered" that a crash falls into. The primary key
``(consumer, message_id)`` makes the check atomic: two consumers racing on one message both
insert, the database lets exactly one win, and the loser's transaction (and work) rolls back.
The consumer name is part of the key because two consumers sharing a database (notification
and analytics, say) each apply the same event once.

When not to: a handler whose effect is naturally idempotent (``SET status = 'shipped'``, an
upsert keyed by the event's business key) needs no table. And the table grows with every
message: ``purge`` old rows once no redelivery can be that late (days, not seconds: a message
can sit in a dead-letter queue for a while and be replayed).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, Engine, MetaData, String, Table, delete, func, insert, select
from sqlalchemy.dialects import mysql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bookstore.platform.database import READ_ONLY_OPTION, initialize

CONSUMER_LENGTH = 100
MESSAGE_ID_LENGTH = 200

metadata = MetaData()

# MySQL's plain DATETIME drops the fraction of a second; ``fsp=6`` keeps microseconds.
_TIMESTAMP = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

processed_messages = Table(
    "processed_messages",
    metadata,
    Column("consumer", String(CONSUMER_LENGTH), primary_key=True),
    Column("message_id", String(MESSAGE_ID_LENGTH), primary_key=True),
    Column("processed_at", _TIMESTAMP, nullable=False),
)


_RECORD = insert(processed_messages)  # built once: a statement per message would cost more than its I/O


class AlreadyProcessed(Exception):
    """This consumer applied the message before: the row ``(consumer, message_id)`` exists."""

    def __init__(self, consumer: str, message_id: str) -> None:
        super().__init__(f"{consumer} already processed message {message_id}")
        self.consumer = consumer
        self.message_id = message_id


def create_tables(engine: Engine) -> None:
    """Create ``processed_messages`` if missing (safe when several replicas start together)."""
    initialize(engine, metadata)


def _now() -> datetime:
    # Naive UTC: what both SQLite and MariaDB DATETIME columns store without conversion.
    return datetime.now(UTC).replace(tzinfo=None)


def claim(session: Session, consumer: str, message_id: str) -> None:
    """Record ``message_id`` as applied by ``consumer`` in the session's open transaction.

    Raises ``AlreadyProcessed`` when it was applied before; the caller must then roll back.
    Call it *before* the work: the claim takes the key's lock, so a second consumer racing on
    the same message waits for this transaction instead of doing the work alongside it.
    """
    try:
        session.execute(_RECORD, {"consumer": consumer, "message_id": message_id, "processed_at": _now()})
    except IntegrityError:
        raise AlreadyProcessed(consumer, message_id) from None


def claim_new(session: Session, consumer: str, message_ids: Sequence[str]) -> list[str]:
    """Record the ids not applied before, in one round trip each way; return them, in order.

    For batches. An id repeated inside ``message_ids`` is claimed once. If another consumer
    claims one of them between our read and our insert, the insert raises ``IntegrityError``
    and the caller must roll back the whole transaction (and may then go one message at a time).
    """
    if not message_ids:
        return []
    seen = set(
        session.scalars(
            select(processed_messages.c.message_id).where(
                processed_messages.c.consumer == consumer,
                processed_messages.c.message_id.in_(set(message_ids)),
            )
        )
    )
    fresh = [m for m in dict.fromkeys(message_ids) if m not in seen]
    if fresh:
        now = _now()
        session.execute(
            _RECORD, [{"consumer": consumer, "message_id": m, "processed_at": now} for m in fresh]
        )
    return fresh


def is_processed(session: Session, consumer: str, message_id: str) -> bool:
    row = session.execute(
        select(processed_messages.c.message_id).where(
            processed_messages.c.consumer == consumer, processed_messages.c.message_id == message_id
        )
    ).first()
    return row is not None


def _reader(engine: Engine) -> Engine:
    # On SQLite a plain (deferred) read transaction: it neither waits for nor blocks the consumer.
    return engine.execution_options(**{READ_ONLY_OPTION: True})


def processed_ids(engine: Engine, consumer: str) -> set[str]:
    """Every message id ``consumer`` has recorded (for tests and notebooks: reads the whole key range)."""
    with _reader(engine).connect() as conn:
        return set(
            conn.scalars(
                select(processed_messages.c.message_id).where(processed_messages.c.consumer == consumer)
            )
        )


def processed_count(engine: Engine, consumer: str) -> int:
    with _reader(engine).connect() as conn:
        count = conn.scalar(
            select(func.count())
            .select_from(processed_messages)
            .where(processed_messages.c.consumer == consumer)
        )
    return int(count or 0)


def purge(engine: Engine, *, older_than_s: float, consumers: Iterable[str] | None = None) -> int:
    """Forget records older than ``older_than_s`` seconds; return how many rows went.

    Only safe once no copy of those messages can still arrive: choose a window longer than
    the longest a message may wait (in a queue, a dead-letter queue, an outbox) before it is
    delivered again.
    """
    cutoff = datetime.fromtimestamp(time.time() - older_than_s, UTC).replace(tzinfo=None)
    statement = delete(processed_messages).where(processed_messages.c.processed_at < cutoff)
    if consumers is not None:
        statement = statement.where(processed_messages.c.consumer.in_(list(consumers)))
    with engine.begin() as conn:
        return conn.execute(statement).rowcount
