"""Week 9 benchmark: our confirmed publisher against plain pika, on the same broker in one run.

Run it with ``.venv/bin/python -m benchmarks.bench_messaging`` (about 20-30 s on 2 cores). It
prints a table and writes the figures to ``build/bench_messaging.json``. The broker is found
as everywhere (``bookstore.messaging.broker.resolve_rabbitmq_url``); all messages go into a
temporary topology (random prefix, quorum queues) that is deleted at the end.

What is measured: msg/s publishing persistent ``order.approved`` events (routed to the three
bookstore queues) to ``bookstore.events``, three ways:

1. **ours**: ``Publisher.publish(events)``, every message confirmed, many in flight;
2. **pika, confirm per message**: ``BlockingConnection`` with ``confirm_delivery()``, where
   each ``basic_publish`` waits for its own confirm (fewer messages: it is slow);
3. **pika, unconfirmed**: ``BlockingConnection`` ``basic_publish`` without confirms, the
   fastest pika goes and the upper bound of what we can hope for; it proves nothing arrived.

Each way serialises its events inside the timed loop (body and properties), publishes with
``mandatory=True`` and persistent delivery. The ways run interleaved in rounds (ours, confirm
per message, unconfirmed, ours, ...), the queues purged between measurements, and each way's
figure is the median of its rounds, so a slow spell of the machine hits every way alike.
Aims: ours at least 4x the confirm-per-message baseline and at least 0.6x the unconfirmed one.

``publishing_results(url)`` returns the figures without printing. This command then runs
the consuming benchmark (``benchmarks.bench_consuming``: our consumer with dedupe against a
bare pika consumer) against the same broker in the same run, and reports both; pass
``--no-consuming`` for publishing alone.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import bench_consuming
from benchmarks.common import Way, load_average, machine, verdict, warn_if_busy, write_report
from bookstore.messaging.broker import connect, resolve_rabbitmq_url
from bookstore.messaging.events import ORDER_APPROVED, Event
from bookstore.messaging.publisher import Publisher
from bookstore.messaging.topology import Topology, temporary_topology

REPO = Path(__file__).resolve().parents[1]
JSON_PATH = REPO / "build" / "bench_messaging.json"
COMMAND = ".venv/bin/python -m benchmarks.bench_messaging"

MESSAGES = 20_000
CONFIRM_PER_MESSAGE_MESSAGES = 3_000
ROUNDS = 3
WARM_UP = 200
AIM_OVER_CONFIRM_PER_MESSAGE = 4.0
AIM_OVER_UNCONFIRMED = 0.6

OURS = "ours: Publisher, confirmed"
PIKA_CONFIRMED = "pika BlockingConnection, confirm per message"
PIKA_UNCONFIRMED = "pika BlockingConnection, unconfirmed"


@dataclass
class PublishingResults:
    """msg/s of each way (median of rounds), the ratios and whether the aims are met."""

    ways: list[Way]
    rounds: int
    reconnections: int = 0  # of our publisher: above 0, the broker went away mid-run

    @property
    def disturbed(self) -> bool:
        return self.reconnections > 0

    def way(self, name: str) -> Way:
        return next(way for way in self.ways if way.name == name)

    @property
    def ours_over_confirm_per_message(self) -> float:
        return self.way(OURS).msg_per_s / self.way(PIKA_CONFIRMED).msg_per_s

    @property
    def ours_over_unconfirmed(self) -> float:
        return self.way(OURS).msg_per_s / self.way(PIKA_UNCONFIRMED).msg_per_s

    @property
    def aims_met(self) -> dict[str, bool]:
        return {
            "ours_over_confirm_per_message": self.ours_over_confirm_per_message
            >= AIM_OVER_CONFIRM_PER_MESSAGE,
            "ours_over_unconfirmed": self.ours_over_unconfirmed >= AIM_OVER_UNCONFIRMED,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "rounds": self.rounds,
            "reconnections": self.reconnections,
            "ways": [way.as_dict() for way in self.ways],
            "ratios": {
                "ours_over_confirm_per_message": self.ours_over_confirm_per_message,
                "ours_over_unconfirmed": self.ours_over_unconfirmed,
            },
            "aims": {
                "ours_over_confirm_per_message": AIM_OVER_CONFIRM_PER_MESSAGE,
                "ours_over_unconfirmed": AIM_OVER_UNCONFIRMED,
            },
            "aims_met": self.aims_met,
        }


def events(count: int) -> list[Event]:
    return [
        Event(ORDER_APPROVED, {"order_id": index, "total": "42.50"}, correlation_id=f"order-{index}")
        for index in range(count)
    ]


def publish_ours(publisher: Publisher, batch: Sequence[Event]) -> None:
    publisher.publish(batch)


def publish_blocking(channel: Any, exchange: str, batch: Sequence[Event]) -> None:
    publish = channel.basic_publish
    for event in batch:
        publish(exchange, event.type, event.body(), event.properties(), mandatory=True)


def purge(channel: Any, topology: Topology) -> None:
    for queue in topology.queues:
        channel.queue_purge(queue)


def publishing_results(
    url: str | None = None,
    *,
    messages: int = MESSAGES,
    confirm_per_message_messages: int = CONFIRM_PER_MESSAGE_MESSAGES,
    rounds: int = ROUNDS,
) -> PublishingResults:
    """Measure the three ways, interleaved over ``rounds``, in a temporary topology."""
    url = url or resolve_rabbitmq_url()
    ways = {
        OURS: Way(OURS, messages),
        PIKA_CONFIRMED: Way(PIKA_CONFIRMED, confirm_per_message_messages),
        PIKA_UNCONFIRMED: Way(PIKA_UNCONFIRMED, messages),
    }
    with (
        temporary_topology(url) as topology,
        Publisher(url, topology, name="bench-ours", confirm_timeout_s=30.0) as ours,
        connect(url, "bench-pika-confirmed") as confirmed_connection,
        connect(url, "bench-pika-unconfirmed") as unconfirmed_connection,
        connect(url, "bench-admin") as admin_connection,
    ):
        confirmed = confirmed_connection.channel()
        confirmed.confirm_delivery()
        unconfirmed = unconfirmed_connection.channel()
        admin = admin_connection.channel()
        exchange = topology.exchange
        runners: dict[str, Callable[[Sequence[Event]], None]] = {
            OURS: lambda batch: publish_ours(ours, batch),
            PIKA_CONFIRMED: lambda batch: publish_blocking(confirmed, exchange, batch),
            PIKA_UNCONFIRMED: lambda batch: publish_blocking(unconfirmed, exchange, batch),
        }
        for run in runners.values():  # warm up: connections, caches, the queues' first segments
            run(events(WARM_UP))
        for _ in range(rounds):
            for name, run in runners.items():
                purge(admin, topology)
                batch = events(ways[name].messages)
                began = time.perf_counter()
                run(batch)
                ways[name].seconds.append(time.perf_counter() - began)
        reconnections = ours.connections_opened - 1
    return PublishingResults(list(ways.values()), rounds, reconnections)


def print_results(results: PublishingResults) -> None:
    unconfirmed = results.way(PIKA_UNCONFIRMED).msg_per_s
    print(f"\n== publishing persistent events, median of {results.rounds} interleaved rounds ==")
    print(f"{'way':<46} {'messages':>9} {'msg/s':>9} {'x unconfirmed':>14}")
    for way in results.ways:
        share = way.msg_per_s / unconfirmed
        print(f"{way.name:<46} {way.messages:>9,} {way.msg_per_s:>9,.0f} {share:>14.2f}")
    met = results.aims_met
    if results.disturbed:
        print(
            f"  warning: our publisher reconnected {results.reconnections} time(s): the broker went away "
            "during the run (another test restarting it?), so these figures do not compare; run again"
        )
    print(
        f"ours / confirm per message: {results.ours_over_confirm_per_message:.1f}x   "
        f"aim >= {AIM_OVER_CONFIRM_PER_MESSAGE:.0f}x: {verdict(met['ours_over_confirm_per_message'])}"
    )
    print(
        f"ours / unconfirmed:         {results.ours_over_unconfirmed:.2f}x   "
        f"aim >= {AIM_OVER_UNCONFIRMED}x: {verdict(met['ours_over_unconfirmed'])}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=MESSAGES, help="per round, ours and unconfirmed")
    parser.add_argument(
        "--confirm-per-message-messages",
        type=int,
        default=CONFIRM_PER_MESSAGE_MESSAGES,
        help="per round, the slow baseline",
    )
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--json", type=Path, default=JSON_PATH, help="where to write the figures")
    parser.add_argument("--no-consuming", action="store_true", help="publishing only")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    url = resolve_rabbitmq_url()
    info = machine("pika")
    print(f"week 9 messaging benchmark: {info['cpus']} CPUs, Python {info['python']}, pika {info['pika']}")
    warn_if_busy(
        info, "other work competes with the broker and the benchmark, so absolute figures are noisier"
    )
    results = publishing_results(
        url,
        messages=args.messages,
        confirm_per_message_messages=args.confirm_per_message_messages,
        rounds=args.rounds,
    )
    print_results(results)
    consuming = None
    if not args.no_consuming:
        print()
        consuming = bench_consuming.consuming_results(url, rounds=args.rounds)
        bench_consuming.print_results(consuming)
    report = {
        "command": COMMAND,
        "machine": info,
        "publishing": results.as_dict(),
        "consuming": consuming.as_dict() if consuming is not None else None,
        "load_average_1min_at_end": load_average(),
        "total_seconds": time.perf_counter() - began,
    }
    write_report(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
