"""What the consumer's integration tests share: a throw-away topology, publishing, a sales table,
and a consumer that runs in a child process so a test can SIGKILL it.

The topology is declared here with plain pika, on purpose: these tests check the consumer, and
must not fail because of (or depend on the internals of) ``bookstore.messaging.topology``. It
mirrors the bookstore's: a topic exchange, a quorum queue with a delivery limit that
dead-letters to a direct exchange under its own name, and the dead-letter queue bound there.

Run a consumer as a child: ``python -m tests.integration.messaging.consumer_helpers --url ...``
(see ``main``); ``--crash-after-commits N`` makes it SIGKILL itself right after its N-th commit,
before the ack: the one window in which only the dedupe table prevents a double apply.
``--fork-per-line`` makes it a zygote instead (``ConsumerZygote``): it imports everything once,
then forks a fresh consumer process for every line it reads, so a test can crash consumers
many times without paying a Python start-up for each.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pika
import pika.exceptions
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy.orm import Session

from bookstore.messaging.consumer import Consumer
from bookstore.messaging.events import ORDER_APPROVED, Event
from bookstore.platform.database import READ_ONLY_OPTION, initialize, make_engine
from bookstore.platform.processes import PARENT_PID_VARIABLE, PR_SET_PDEATHSIG, pid_alive, tie_to_parent

REPO = Path(__file__).resolve().parents[3]
DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
DELIVERY_LIMIT = 20  # well above the tests' max_attempts: the consumer decides, not the broker
T = TypeVar("T")


def broker_url() -> str:
    return os.environ.get("BOOKSTORE_RABBITMQ_URL", "").strip() or DEFAULT_URL


def broker_unavailable_reason(url: str) -> str | None:
    """None when an AMQP handshake with ``url`` succeeds, else why not."""
    parameters = pika.URLParameters(url)
    parameters.socket_timeout = 2
    parameters.connection_attempts = 1
    try:
        pika.BlockingConnection(parameters).close()
    except pika.exceptions.AMQPError as error:
        return f"RabbitMQ does not answer at {url}: {type(error).__name__} {error}"
    return None


@contextlib.contextmanager
def connection(url: str) -> Iterator[pika.BlockingConnection]:
    opened = pika.BlockingConnection(pika.URLParameters(url))
    try:
        yield opened
    finally:
        if opened.is_open:
            opened.close()


# -- topology ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TestQueues:
    """One consumer's queue and dead letters, every name starting with a random prefix."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    url: str
    prefix: str

    @property
    def exchange(self) -> str:
        return f"{self.prefix}bookstore.events"

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.prefix}bookstore.dead-letters"

    @property
    def queue(self) -> str:
        return f"{self.prefix}order.consumer-test"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.queue}.dead"

    def declare(self, delivery_limit: int = DELIVERY_LIMIT) -> None:
        with connection(self.url) as conn:
            channel = conn.channel()
            channel.exchange_declare(self.exchange, exchange_type="topic", durable=True)
            channel.exchange_declare(self.dead_letter_exchange, exchange_type="direct", durable=True)
            channel.queue_declare(self.dead_letter_queue, durable=True, arguments={"x-queue-type": "quorum"})
            channel.queue_bind(self.dead_letter_queue, self.dead_letter_exchange, routing_key=self.queue)
            channel.queue_declare(
                self.queue,
                durable=True,
                arguments={
                    "x-queue-type": "quorum",
                    "x-delivery-limit": delivery_limit,
                    "x-dead-letter-exchange": self.dead_letter_exchange,
                    "x-dead-letter-routing-key": self.queue,
                },
            )
            channel.queue_bind(self.queue, self.exchange, routing_key="order.*")

    def delete(self) -> None:
        with connection(self.url) as conn:
            channel = conn.channel()
            for queue in (self.queue, self.dead_letter_queue):
                channel.queue_delete(queue)
            for exchange in (self.exchange, self.dead_letter_exchange):
                channel.exchange_delete(exchange)

    def depth(self, queue: str | None = None) -> tuple[int, int]:
        """(messages ready, consumers) of the queue: unacked messages are not counted as ready."""
        with connection(self.url) as conn:
            declared = conn.channel().queue_declare(queue or self.queue, passive=True)
        return declared.method.message_count, declared.method.consumer_count

    def drain(self, queue: str) -> list[tuple[pika.BasicProperties, bytes]]:
        """Take (and ack) every message ready in ``queue``."""
        taken: list[tuple[pika.BasicProperties, bytes]] = []
        with connection(self.url) as conn:
            channel = conn.channel()
            while True:
                method, properties, body = channel.basic_get(queue, auto_ack=True)
                if method is None:
                    return taken
                taken.append((properties, body))

    def take(self, queue: str, count: int, timeout: float) -> list[tuple[pika.BasicProperties, bytes]]:
        """Exactly ``count`` messages from ``queue``, waiting up to ``timeout`` s for them to arrive."""
        taken: list[tuple[pika.BasicProperties, bytes]] = []
        deadline = time.monotonic() + timeout
        while len(taken) < count:
            if time.monotonic() >= deadline:
                raise AssertionError(f"{queue} held {len(taken)} messages within {timeout} s, not {count}")
            taken += self.drain(queue)
            time.sleep(0.02)
        assert len(taken) == count, f"{queue} held {len(taken)} messages, not {count}"
        return taken


@contextlib.contextmanager
def temporary_queues(url: str, delivery_limit: int = DELIVERY_LIMIT) -> Iterator[TestQueues]:
    queues = TestQueues(url, f"tmp-consumer-{secrets.token_hex(4)}.")
    queues.declare(delivery_limit)
    try:
        yield queues
    finally:
        try:
            queues.delete()
        except pika.exceptions.AMQPError as error:  # must not hide the test's own failure
            logging.getLogger(__name__).warning("could not delete %s*: %r", queues.prefix, error)


# -- publishing -------------------------------------------------------------------------------


def order_events(count: int, start: int = 0) -> list[Event]:
    return [
        Event(ORDER_APPROVED, {"order_id": n, "book_id": 1 + n % 7}, correlation_id=str(n))
        for n in range(start, start + count)
    ]


def publish(queues: TestQueues, events: Iterable[Event], *, confirm: bool = True) -> int:
    """Publish persistent events to the exchange; with ``confirm``, each one confirmed (safe to
    restart the broker afterwards)."""
    sent = 0
    with connection(queues.url) as conn:
        channel = conn.channel()
        if confirm:
            channel.confirm_delivery()
        for event in events:
            channel.basic_publish(
                queues.exchange, event.type, event.body(), event.properties(), mandatory=True
            )
            sent += 1
    return sent


def publish_raw(queues: TestQueues, body: bytes, properties: pika.BasicProperties) -> None:
    with connection(queues.url) as conn:
        channel = conn.channel()
        channel.confirm_delivery()
        channel.basic_publish(queues.exchange, ORDER_APPROVED, body, properties, mandatory=True)


# -- the consumer's own database --------------------------------------------------------------

metadata = MetaData()
# No unique key on purpose: a duplicate apply must show up as a second row, not as an error.
sales = Table(
    "sales",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(200), nullable=False),
    Column("order_id", Integer, nullable=False),
)


def create_sales_table(engine: Engine) -> None:
    initialize(engine, metadata)


def record_sale(event: Event, session: Session) -> None:
    session.execute(insert(sales).values(message_id=event.message_id, order_id=int(event.data["order_id"])))


def slow(handler: Callable[[Event, Session], None], delay_s: float) -> Callable[[Event, Session], None]:
    def handle(event: Event, session: Session) -> None:
        time.sleep(delay_s)
        handler(event, session)

    return handle


def sales_counts(engine: Engine) -> tuple[int, int]:
    """(rows, distinct message ids) in the sales table: equal means nothing applied twice."""
    # A read-only transaction: on SQLite it never queues for (nor blocks) the consumer's writes.
    with engine.execution_options(**{READ_ONLY_OPTION: True}).connect() as conn:
        row = conn.execute(select(func.count(), func.count(sales.c.message_id.distinct()))).one()
    return int(row[0]), int(row[1])


def wait_for(check: Callable[[], T], timeout: float, what: str, poll_s: float = 0.05) -> T:
    """Poll ``check`` until it returns something truthy; ``AssertionError`` naming ``what`` else."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout} s: {what} (last: {result!r})")
        time.sleep(poll_s)


# -- a consumer in a child process ------------------------------------------------------------


def spawn_consumer(
    queues: TestQueues,
    db_url: str,
    *,
    name: str,
    delay_s: float = 0.0,
    crash_after_commits: int = 0,
    batch_size: int = 1,
    extra: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    arguments: list[str] = [
        sys.executable,
        "-m",
        "tests.integration.messaging.consumer_helpers",
        "--url",
        queues.url,
        "--queue",
        queues.queue,
        "--dead-letter-exchange",
        queues.dead_letter_exchange,
        "--db",
        db_url,
        "--name",
        name,
        "--delay-s",
        str(delay_s),
        "--crash-after-commits",
        str(crash_after_commits),
        "--batch-size",
        str(batch_size),
        *extra,
    ]
    env = {**os.environ, PARENT_PID_VARIABLE: str(os.getpid()), "PYTHONPATH": str(REPO)}
    pipes = subprocess.PIPE if extra else subprocess.DEVNULL
    return subprocess.Popen(
        arguments, cwd=REPO, env=env, stdin=pipes, stdout=subprocess.PIPE if extra else None
    )


class ConsumerZygote:
    """A child that forks consumer processes on demand: ``fork()`` gives a new one's pid.

    Each forked consumer is a process of its own, with its own connection: SIGKILLing it is a
    crash as the broker sees one (the connection dies with its unacked messages).
    """

    def __init__(self, queues: TestQueues, db_url: str, *, name: str, delay_s: float = 0.0) -> None:
        arguments = ["--fork-per-line"]
        self._process = spawn_consumer(queues, db_url, name=name, delay_s=delay_s, extra=arguments)

    def fork(self) -> int:
        stdin, stdout = self._process.stdin, self._process.stdout
        assert stdin is not None and stdout is not None
        stdin.write(b"fork\n")
        stdin.flush()
        return int(stdout.readline())

    @staticmethod
    def kill(pid: int) -> None:
        """SIGKILL a forked consumer and wait until it is gone."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not pid_alive(pid), 10, f"consumer {pid} gone")

    def close(self) -> None:
        kill(self._process)


def kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def _crash_after(commits: int) -> Callable[[Event, Session], None]:
    """A handler that SIGKILLs this process right after the ``commits``-th commit, before the ack."""
    done = 0

    def handle(event: Event, session: Session) -> None:
        record_sale(event, session)

        def after_commit(_session: Session) -> None:
            nonlocal done
            done += 1
            if done >= commits:
                os.kill(os.getpid(), signal.SIGKILL)

        sqlalchemy_event.listen(session, "after_commit", after_commit, once=True)

    return handle


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run a test consumer until SIGTERM (or SIGKILL).")
    parser.add_argument("--url", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--dead-letter-exchange", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--delay-s", type=float, default=0.0)
    parser.add_argument("--crash-after-commits", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--fork-per-line", action="store_true", help="fork a consumer per line of stdin")
    args = parser.parse_args(argv)
    tie_to_parent()
    logging.basicConfig(level=logging.WARNING, format="child %(levelname)s %(name)s: %(message)s")
    if args.fork_per_line:
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the killed consumers
        for _ in sys.stdin:
            pid = os.fork()  # single-threaded here, nothing connected yet: a clean copy
            if pid == 0:
                break
            print(pid, flush=True)
        else:
            return
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        with contextlib.suppress(OSError, AttributeError):  # die with the zygote, like it with the test
            ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    engine = make_engine(args.db)
    create_sales_table(engine)
    handler = _crash_after(args.crash_after_commits) if args.crash_after_commits else record_sale
    if args.delay_s:
        handler = slow(handler, args.delay_s)
    consumer = Consumer(
        args.url,
        args.queue,
        handler,
        engine=engine,
        name=args.name,
        dead_letter_exchange=args.dead_letter_exchange,
        batch_size=args.batch_size,
    )
    signal.signal(signal.SIGTERM, lambda *_: consumer.stop(timeout=0))
    consumer.run()


if __name__ == "__main__":
    main()
