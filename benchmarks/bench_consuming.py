"""Week 9 benchmark: our reliable consumer against a bare pika consumer, on the same broker in one run.

Run it with ``.venv/bin/python -m benchmarks.bench_consuming`` (about two minutes on 2 cores;
``--no-mariadb`` skips MariaDB, ``--quick`` only checks that it runs). It prints a table and
writes the figures to ``build/bench_consuming.json``. The broker is found as everywhere
(``bookstore.messaging.broker.resolve_rabbitmq_url``); every measurement gets its own quorum
queue (random name, deleted afterwards) and its own fresh database.

What is measured: msg/s draining a queue pre-loaded with N persistent ``order.approved``
events (a quorum queue, like the bookstore's), timed from opening the connection until the
last message is acked (ours: until its counters say every message was applied):

1. **bare pika**: ``BlockingConnection``, ``basic_consume`` with manual ack and prefetch 100,
   a callback that acks each message and does nothing else: the baseline the ratios use;
2. **bare pika, multiple ack**: the same, acking with ``multiple=True`` every 50 messages:
   the fastest pika drains a queue, and what our consumer's own ack batching aims at;
3. **ours**: ``bookstore.messaging.consumer.Consumer`` (prefetch 100) with a handler that
   inserts one row per event (an analytics-style read model), so per message: parse the
   envelope, one transaction holding the dedupe row and the handler's row, commit, then the
   ack (batched: one ``multiple`` ack every half prefetch window); on SQLite (WAL,
   ``synchronous=NORMAL``, the platform default) and on MariaDB (InnoDB, a durable commit per
   transaction) when one answers on 127.0.0.1:3306. MariaDB with a commit per message drains
   ``--slow-messages`` (5,000) instead of N: same msg/s, less waiting;
4. **ours, batched**: the same with ``batch_size=100``: up to 100 prefetched messages per
   transaction, with the same guarantees.

The ways run interleaved in rounds (bare, bare multiple, ours SQLite, ours SQLite batched,
ours MariaDB, ...), and each way's figure is the median of its rounds, so a slow spell of the
machine hits every way alike. Ratios are against bare pika (1.) measured in the same run.
There is no aim to meet: the ratio is the price of "applied effectively once", paid mostly in
the database commit.

``consuming_results(url)`` returns the figures without printing, so the publishing benchmark
(``benchmarks.bench_messaging``) and this one can run in the same process and report together.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pika
from sqlalchemy import Column, Engine, Integer, MetaData, Table, insert
from sqlalchemy.orm import Session

from benchmarks.common import Way, load_average, machine, warn_if_busy, write_report
from bookstore.messaging import dedupe
from bookstore.messaging.broker import resolve_rabbitmq_url
from bookstore.messaging.consumer import Consumer
from bookstore.messaging.events import ORDER_APPROVED, Event
from bookstore.platform.database import (
    drop_mysql_databases,
    initialize,
    make_engine,
    mysql_unavailable_reason,
)

REPO = Path(__file__).resolve().parents[1]
JSON_PATH = REPO / "build" / "bench_consuming.json"
COMMAND = ".venv/bin/python -m benchmarks.bench_consuming"

MESSAGES = 20_000
ROUNDS = 3
PREFETCH = 100
BATCH_SIZE = 100
DEADLINE_S = 600.0  # a way that takes this long is broken, not slow
MARIADB_SERVER = "mysql+pymysql://root@127.0.0.1:3306/"

SLOW_MESSAGES = 5_000  # for the slowest way (MariaDB, a durable commit per message): same msg/s, less waiting

BARE = "bare pika: manual ack, prefetch 100"
BARE_MULTIPLE = "bare pika: multiple ack every 50, prefetch 100"


def ours_name(backend: str, batch_size: int) -> str:
    per = "1 msg/transaction" if batch_size == 1 else f"batch {batch_size}"
    return f"ours: Consumer + dedupe, {backend}, {per}"


@dataclass
class ConsumingResults:
    """msg/s of each way (median of its rounds) and its ratio to bare pika."""

    ways: list[Way]
    rounds: int
    mariadb_skipped: str | None = None

    def way(self, name: str) -> Way:
        return next(way for way in self.ways if way.name == name)

    def over_bare(self, name: str) -> float:
        return self.way(name).msg_per_s / self.way(BARE).msg_per_s

    def as_dict(self) -> dict[str, Any]:
        return {
            "rounds": self.rounds,
            "ways": [way.as_dict() for way in self.ways],
            "ratios_over_bare": {way.name: self.over_bare(way.name) for way in self.ways if way.name != BARE},
            "mariadb_skipped": self.mariadb_skipped,
        }


# -- the queue and its messages ---------------------------------------------------------------


def dead_letter_exchange(queue: str) -> str:
    return f"{queue}.dead-letters"


@contextmanager
def loaded_queue(url: str, messages: int) -> Iterator[str]:
    """A fresh quorum queue holding ``messages`` persistent events, with a dead-letter exchange
    and queue like the bookstore's (nothing fails here, but a consumer must name one); all deleted
    on exit."""
    queue = f"bench-consume-{secrets.token_hex(4)}"
    dead_letters = dead_letter_exchange(queue)
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.exchange_declare(dead_letters, exchange_type="direct", durable=True)
        channel.queue_declare(f"{queue}.dead", durable=True, arguments={"x-queue-type": "quorum"})
        channel.queue_bind(f"{queue}.dead", dead_letters, routing_key=queue)
        channel.queue_declare(
            queue,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": 20,
                "x-dead-letter-exchange": dead_letters,
                "x-dead-letter-routing-key": queue,
            },
        )
        for index in range(messages):
            # Unconfirmed: loading is not what we measure; the wait below proves they all arrived.
            event = Event(ORDER_APPROVED, {"order_id": index, "book_id": 1 + index % 50, "quantity": 1})
            channel.basic_publish("", queue, event.body(), event.properties())
        deadline = time.monotonic() + DEADLINE_S
        while channel.queue_declare(queue, passive=True).method.message_count < messages:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the broker did not take {messages} messages into {queue}")
            time.sleep(0.05)
        yield queue
    finally:
        if connection.is_open:
            channel = connection.channel()
            channel.queue_delete(queue)
            channel.queue_delete(f"{queue}.dead")
            channel.exchange_delete(dead_letters)
            connection.close()


# -- bare pika --------------------------------------------------------------------------------


def consume_bare(url: str, queue: str, messages: int, ack_every: int = 1) -> float:
    """Seconds to drain ``queue`` with a callback that only acks (every ``ack_every`` messages)."""
    began = time.perf_counter()
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=PREFETCH)
        acked = 0

        def on_message(ch: Any, method: Any, _properties: Any, _body: bytes) -> None:
            nonlocal acked
            acked += 1
            if acked % ack_every == 0 or acked == messages:
                ch.basic_ack(method.delivery_tag, multiple=ack_every > 1)

        channel.basic_consume(queue, on_message)
        deadline = time.monotonic() + DEADLINE_S
        while acked < messages:
            if time.monotonic() > deadline:
                raise RuntimeError(f"bare pika acked only {acked} of {messages}")
            connection.process_data_events(time_limit=1)
        return time.perf_counter() - began
    finally:
        connection.close()


# -- ours -------------------------------------------------------------------------------------

metadata = MetaData()
sales = Table(
    "bench_sales",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("order_id", Integer, nullable=False),
    Column("book_id", Integer, nullable=False),
    Column("quantity", Integer, nullable=False),
)


INSERT_SALE = insert(sales)  # built once, as a service's store would


def record_sale(event: Event, session: Session) -> None:
    data = event.data
    session.execute(
        INSERT_SALE, {"order_id": data["order_id"], "book_id": data["book_id"], "quantity": data["quantity"]}
    )


@contextmanager
def fresh_database(backend: str) -> Iterator[Engine]:
    """An empty database for one measurement: an SQLite file, or a MariaDB schema dropped after."""
    if backend == "SQLite":
        with tempfile.TemporaryDirectory(prefix="bench-consume-") as folder:
            engine = make_engine(f"sqlite:///{Path(folder) / 'sales.db'}")
            try:
                yield engine
            finally:
                engine.dispose()
        return
    template = f"{MARIADB_SERVER}bench_consume_{secrets.token_hex(4)}_{{service}}"
    engine = make_engine(template.replace("{service}", "sales"))
    try:
        yield engine
    finally:
        engine.dispose()
        drop_mysql_databases(template, ["sales"])


def consume_ours(url: str, queue: str, messages: int, backend: str, batch_size: int) -> float:
    """Seconds for our Consumer to apply every message of ``queue`` (tables created before the clock)."""
    with fresh_database(backend) as engine:
        initialize(engine, metadata)
        consumer = Consumer(
            url,
            queue,
            record_sale,
            engine=engine,
            name="bench",
            dead_letter_exchange=dead_letter_exchange(queue),
            prefetch=PREFETCH,
            batch_size=batch_size,
        )
        dedupe.create_tables(engine)
        began = time.perf_counter()
        consumer.start()
        try:
            stats = consumer.wait_until(lambda s: s.applied >= messages, timeout=DEADLINE_S, poll_s=0.002)
            seconds = time.perf_counter() - began
        finally:
            consumer.stop()
    if (stats.applied, stats.retried, stats.dead_lettered) != (messages, 0, 0):
        raise RuntimeError(f"{ours_name(backend, batch_size)} did not apply each message once: {stats}")
    return seconds


def ours_runner(url: str, backend: str, batch_size: int) -> Callable[[str, int], float]:
    return lambda queue, messages: consume_ours(url, queue, messages, backend, batch_size)


def consuming_results(
    url: str | None = None,
    *,
    messages: int = MESSAGES,
    slow_messages: int = SLOW_MESSAGES,
    rounds: int = ROUNDS,
    mariadb: bool = True,
    batch_size: int = BATCH_SIZE,
) -> ConsumingResults:
    """Measure every way, interleaved over ``rounds``; each measurement drains its own queue."""
    url = url or resolve_rabbitmq_url()
    skipped = mysql_unavailable_reason(MARIADB_SERVER) if mariadb else "not asked for (--no-mariadb)"
    backends = ["SQLite"] + ([] if skipped else ["MariaDB"])
    ways = {name: Way(name, messages) for name in (BARE, BARE_MULTIPLE)}
    runners: dict[str, Callable[[str, int], float]] = {
        BARE: lambda queue, n: consume_bare(url, queue, n),
        BARE_MULTIPLE: lambda queue, n: consume_bare(url, queue, n, ack_every=PREFETCH // 2),
    }
    for backend in backends:
        for size in (1, batch_size):
            name = ours_name(backend, size)
            slow = backend == "MariaDB" and size == 1
            ways[name] = Way(name, min(messages, slow_messages) if slow else messages)
            runners[name] = ours_runner(url, backend, size)
    with loaded_queue(url, min(messages, 500)) as warm_up:  # connections, imports, the first segments
        consume_bare(url, warm_up, min(messages, 500))
    for _ in range(rounds):
        for name, run in runners.items():
            way = ways[name]
            with loaded_queue(url, way.messages) as queue:
                way.seconds.append(run(queue, way.messages))
    return ConsumingResults(list(ways.values()), rounds, skipped)


def print_results(results: ConsumingResults) -> None:
    print(f"\n== consuming persistent events from a quorum queue, median of {results.rounds} rounds ==")
    print(f"{'way':<56} {'messages':>9} {'msg/s':>9} {'x bare':>7}")
    for way in results.ways:
        print(f"{way.name:<56} {way.messages:>9,} {way.msg_per_s:>9,.0f} {results.over_bare(way.name):>7.2f}")
    if results.mariadb_skipped:
        print(f"MariaDB skipped: {results.mariadb_skipped}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=MESSAGES, help="pre-loaded per measurement")
    parser.add_argument(
        "--slow-messages", type=int, default=SLOW_MESSAGES, help="for MariaDB with a commit per message"
    )
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--no-mariadb", action="store_true", help="SQLite only")
    parser.add_argument("--quick", action="store_true", help="1,000 messages, 1 round: only checks it runs")
    parser.add_argument("--json", type=Path, default=JSON_PATH, help="where to write the figures")
    args = parser.parse_args(argv)
    if args.quick:
        args.messages, args.rounds = 1_000, 1
    began = time.perf_counter()
    url = resolve_rabbitmq_url()
    info = machine("pika", "sqlalchemy")
    print(f"week 9 consuming benchmark: {info['cpus']} CPUs, Python {info['python']}, pika {info['pika']}")
    warn_if_busy(
        info, "other work competes with the broker and the benchmark, so absolute figures are noisier"
    )
    results = consuming_results(
        url,
        messages=args.messages,
        slow_messages=args.slow_messages,
        rounds=args.rounds,
        mariadb=not args.no_mariadb,
        batch_size=args.batch_size,
    )
    print_results(results)
    report = {
        "command": COMMAND,
        "machine": info,
        "consuming": results.as_dict(),
        "load_average_1min_at_end": load_average(),
        "total_seconds": time.perf_counter() - began,
    }
    write_report(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
