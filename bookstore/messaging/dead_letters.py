"""Dead letters: read what a dead-letter queue holds, and replay it where it came from.

What. A message lands in ``<queue>.dead`` for one of two reasons, and the headers tell which:

* the **consumer** gave up on it: its handler failed ``max_attempts`` times
  (``attempts_exhausted``) or its body could not be read (``unreadable``). The consumer's copy
  carries ``x-error``, ``x-attempts`` and the first routing (``x-original-exchange``,
  ``x-original-routing-key``);
* the **broker** gave up on it: the quorum queue delivered it more than ``x-delivery-limit``
  times without an ack (``delivery_limit``). That is a message that crashed consumers, or a
  healthy one that was prefetched by a consumer in a crash loop; the broker cannot tell them
  apart. Its ``x-death`` header records the reason, the queue, the exchange, the routing keys
  and a count, which grows each time the message dies again in the same queue for the same
  reason.

``dead_letters(url, queue)`` lists them (``DeadLetter``: id, type, reason, deaths, error, where
a replay sends it) without taking them out. ``replay(url, queue, ids)`` publishes the chosen
ones (or all) again to their *original* exchange and routing key, with publisher confirms, and
removes each from the dead-letter queue only after its own confirm: a replay that fails half
way has lost nothing, and a message it replayed is never left in both places for long.

Why a replay is always safe. The original routing may reach other queues as well
(``order.approved`` goes to notification, analytics and inventory): each consumer remembers
the ``message_id`` of everything it applied (``bookstore.messaging.dedupe``), so a consumer
that had applied the event acks the copy without applying it again. The replayed copy drops
the consumer's verdict (``x-attempts``, ``x-error``, ``x-dead-letter-reason``), so it gets its
full ``max_attempts`` again, and keeps its history (``x-death``, ``x-consumer-deaths``), so a
message that keeps coming back shows a growing death count: replaying it once more is then
the wrong repair; fix the handler, or the data, first.

When not to replay: a message whose handler bug is not fixed just dies again (reason
``attempts_exhausted``). Replay after the fix, or after a crash loop (reason
``delivery_limit``) once the consumer runs steadily again.

    >>> for letter in dead_letters(url, topology.dead_letter_queue(ANALYTICS)):  # doctest: +SKIP
    ...     print(letter.message_id, letter.reason, letter.deaths)
    >>> replay(url, topology.dead_letter_queue(ANALYTICS))  # every message  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from bookstore.messaging.broker import connect
from bookstore.messaging.consumer import (
    ATTEMPTS_HEADER,
    CONSUMER_DEATHS_HEADER,
    CONSUMER_HEADER,
    DEAD_REASON_HEADER,
    DELIVERY_COUNT_HEADER,
    ERROR_HEADER,
    ORIGINAL_EXCHANGE_HEADER,
    ORIGINAL_ROUTING_KEY_HEADER,
    copied_properties,
)
from bookstore.messaging.topology import DEAD_LETTER_SUFFIX, QUEUE_BINDINGS, Topology

DEATH_HEADER = "x-death"  # written by the broker when it dead-letters a message
DEFAULT_LIMIT = 10_000
# The consumer's verdict about the last attempts: a replay starts with a clean slate.
VERDICT_HEADERS = frozenset(
    {DELIVERY_COUNT_HEADER, ATTEMPTS_HEADER, ERROR_HEADER, CONSUMER_HEADER, DEAD_REASON_HEADER}
)


@dataclass(frozen=True)
class DeadLetter:
    """One message of a dead-letter queue, as ``dead_letters`` reads it."""

    message_id: str
    event_type: str
    reason: (
        str  # attempts_exhausted, unreadable (the consumer); delivery_limit, rejected, expired (the broker)
    )
    deaths: int  # how many times it reached a dead-letter queue, replays included
    exchange: str  # where ``replay`` publishes it: its original exchange ...
    routing_key: str  # ... and routing key
    error: str = ""  # the handler's last error, when a consumer gave up on it


@dataclass(frozen=True)
class ReplayResult:
    """What ``replay`` did: confirmed and removed, left in place, or not confirmed (still there)."""

    replayed: tuple[str, ...]
    kept: int
    failed: tuple[str, ...]


def describe(properties: pika.BasicProperties) -> DeadLetter:
    """Read a dead letter's headers: why it died, how often, and where it was first published."""
    headers: Mapping[str, Any] = properties.headers or {}
    deaths = [d for d in headers.get(DEATH_HEADER) or [] if isinstance(d, Mapping)]
    broker_deaths = sum(int(d.get("count") or 1) for d in deaths)
    consumer_deaths = int(headers.get(CONSUMER_DEATHS_HEADER) or 0)
    # The consumer's reason is stripped on replay, so when present it is the latest death.
    reason = _text(headers.get(DEAD_REASON_HEADER)) or (
        _text(deaths[0].get("reason")) if deaths else "unknown"
    )
    first = deaths[-1] if deaths else {}  # the broker keeps the most recent death first
    keys = first.get("routing-keys") or [""]
    exchange = headers.get(ORIGINAL_EXCHANGE_HEADER, first.get("exchange", ""))
    routing_key = headers.get(ORIGINAL_ROUTING_KEY_HEADER, keys[0])
    return DeadLetter(
        message_id=properties.message_id or "",
        event_type=properties.type or _text(routing_key),
        reason=reason,
        deaths=max(1, broker_deaths + consumer_deaths),
        exchange=_text(exchange),
        routing_key=_text(routing_key),
        error=_text(headers.get(ERROR_HEADER)) if headers.get(DEAD_REASON_HEADER) else "",
    )


def replay_headers(headers: Mapping[str, Any] | None) -> dict[str, Any]:
    """A replayed copy's headers: the history kept, the consumer's verdict dropped."""
    return {k: v for k, v in (headers or {}).items() if k not in VERDICT_HEADERS}


def dead_letters(url: str, dead_letter_queue: str, *, limit: int = DEFAULT_LIMIT) -> list[DeadLetter]:
    """Up to ``limit`` messages of ``dead_letter_queue``, oldest first; nothing is taken out."""
    with connect(url, "bookstore-dlq-list") as connection:
        channel = connection.channel()
        # Fetched without acks and given back when the channel closes: a look, not a removal.
        return [describe(properties) for _, properties, _ in _fetch(channel, dead_letter_queue, limit)]


def replay(
    url: str,
    dead_letter_queue: str,
    message_ids: Collection[str] | None = None,
    *,
    limit: int = DEFAULT_LIMIT,
) -> ReplayResult:
    """Publish the dead letters with ``message_ids`` (None: all) to their original routing.

    Each is removed from ``dead_letter_queue`` only once the broker confirmed its copy; one
    that is not confirmed (its exchange is gone, no queue is bound to its key) stays there and
    is named in ``failed``. Only the messages in the queue when the replay starts are looked
    at, so one that dies again during the replay is not replayed twice.
    """
    replayed: list[str] = []
    failed: list[str] = []
    kept = 0
    with connect(url, "bookstore-dlq-replay") as connection:
        reader = connection.channel()
        publisher = _confirming(connection)
        for method, properties, body in _fetch(reader, dead_letter_queue, limit):
            letter = describe(properties)
            if message_ids is not None and letter.message_id not in message_ids:
                kept += 1  # left unacked: back in the queue when the channel closes
                continue
            copy = copied_properties(properties, replay_headers(properties.headers))
            try:
                publisher.basic_publish(letter.exchange, letter.routing_key, body, copy, mandatory=True)
            except (
                pika.exceptions.UnroutableError,
                pika.exceptions.NackError,
                pika.exceptions.ChannelClosed,
            ):
                failed.append(letter.message_id)
                if not publisher.is_open:  # an exchange that does not exist closes the channel
                    publisher = _confirming(connection)
                continue
            reader.basic_ack(method.delivery_tag)  # confirmed: only now may the dead letter go
            replayed.append(letter.message_id)
    return ReplayResult(tuple(replayed), kept, tuple(failed))


def dead_letter_queue_named(topology: Topology, name: str) -> str:
    """The dead-letter queue a person means by ``name``: ``analytics``, ``order.analytics``,
    ``order.analytics.dead`` (under ``topology``'s prefix), or a full queue name."""
    for candidate in (
        name.removesuffix(DEAD_LETTER_SUFFIX),
        f"order.{name.removesuffix(DEAD_LETTER_SUFFIX)}",
    ):
        if candidate in QUEUE_BINDINGS:
            return topology.dead_letter_queue(candidate)
    return name if name.endswith(DEAD_LETTER_SUFFIX) else f"{name}{DEAD_LETTER_SUFFIX}"


def _fetch(
    channel: BlockingChannel, queue: str, limit: int
) -> Sequence[tuple[pika.spec.Basic.GetOk, pika.BasicProperties, bytes]]:
    """The messages ready in ``queue`` when called (at most ``limit``), held unacked on ``channel``."""
    ready = int(channel.queue_declare(queue, passive=True).method.message_count)
    taken: list[tuple[pika.spec.Basic.GetOk, pika.BasicProperties, bytes]] = []
    while len(taken) < min(ready, limit):
        method, properties, body = channel.basic_get(queue, auto_ack=False)
        if method is None:
            break
        taken.append((method, properties, body))
    return taken


def _confirming(connection: pika.BlockingConnection) -> BlockingChannel:
    channel = connection.channel()
    channel.confirm_delivery()  # every basic_publish now waits for the broker's confirm
    return channel


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value or "")
