"""Dead letters against the real RabbitMQ: listed with their reason, replayed with confirms, and a
consumer in a crash loop whose parked events all end up applied exactly once.

The crash loop is issue 18's: a consumer process SIGKILLed 11 times during a 300-event backlog.
With the old delivery limit of 10 the broker parks the healthy events that were prefetched at
every crash; a replay brings them back and the dedupe table keeps those already applied from
being applied twice. With the limit the bookstore now declares, the same crashes park nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pika
import pytest
from sqlalchemy import Engine, select

from bookstore.cli import main
from bookstore.messaging.consumer import Consumer, Handler
from bookstore.messaging.dead_letters import dead_letters, replay
from bookstore.messaging.events import Event
from bookstore.messaging.topology import ANALYTICS, DELIVERY_LIMIT, Topology
from bookstore.platform.database import make_engine
from tests.integration.messaging.consumer_helpers import (
    ConsumerZygote,
    TestQueues,
    connection,
    create_sales_table,
    order_events,
    publish,
    record_sale,
    sales,
    sales_counts,
    temporary_queues,
    wait_for,
)

pytestmark = pytest.mark.integration

DEADLINE_S = 60.0  # generous: reaching it means the behaviour is wrong, not slow
BACKLOG = 300
CRASHES = 11


@pytest.fixture
def database(tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    db_url = f"sqlite:///{tmp_path / 'sales.db'}"
    engine = make_engine(db_url)
    create_sales_table(engine)
    try:
        yield db_url, engine
    finally:
        engine.dispose()


def consumer(
    queues: TestQueues, engine: Engine, handler: Handler = record_sale, max_attempts: int = 5
) -> Consumer:
    return Consumer(
        queues.url,
        queues.queue,
        handler,
        engine=engine,
        name="sales",
        dead_letter_exchange=queues.dead_letter_exchange,
        max_attempts=max_attempts,
    )


def applied_ids(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.scalars(select(sales.c.message_id)))


@pytest.mark.parametrize(
    ("delivery_limit", "parks"), [(10, True), (DELIVERY_LIMIT, False)], ids=["limit-10", "limit-default"]
)
def test_a_consumer_crashing_11_times_in_a_300_event_backlog_then_a_replay_applies_every_event_exactly_once(
    rabbitmq_url: str, database: tuple[str, Engine], delivery_limit: int, parks: bool
) -> None:
    db_url, engine = database
    events = order_events(BACKLOG)
    all_ids = {e.message_id for e in events}
    with temporary_queues(rabbitmq_url, delivery_limit) as queues:
        publish(queues, events)
        zygote = ConsumerZygote(queues, db_url, name="sales", delay_s=0.02)  # prefetch 100, slow work
        try:
            for _ in range(CRASHES):
                before = sales_counts(engine)[0]
                child = zygote.fork()
                try:  # it has the window of 100 in hand once it applies: crash it there
                    wait_for(
                        lambda before=before: sales_counts(engine)[0] >= before + 2,
                        DEADLINE_S,
                        "a consumer working",
                    )
                finally:
                    zygote.kill(child)
        finally:
            zygote.close()
        assert sales_counts(engine)[0] < BACKLOG - 100, "the crashes came too late to hit a backlog"

        with consumer(queues, engine):
            # Settled: every event is applied or parked, and nothing is left in the queue.
            wait_for(
                lambda: (
                    applied_ids(engine)
                    | {d.message_id for d in dead_letters(rabbitmq_url, queues.dead_letter_queue)}
                    >= all_ids
                    and queues.depth()[0] == 0
                ),
                DEADLINE_S,
                "every event applied or dead-lettered",
            )
            parked = dead_letters(rabbitmq_url, queues.dead_letter_queue)
            print(f"limit {delivery_limit}: {CRASHES} crashes parked {len(parked)} of {BACKLOG} events")
            if parks:
                assert parked, "eleven crashes with a limit of 10 parked nothing"
                assert {letter.reason for letter in parked} == {"delivery_limit"}
                assert {(letter.exchange, letter.routing_key) for letter in parked} == {
                    (queues.exchange, "order.approved")
                }
                assert all(letter.deaths == 1 for letter in parked)
                assert not applied_ids(engine) >= all_ids, "the read model is short until the replay"
            else:
                assert parked == [], "crashes alone parked healthy events"

            result = replay(rabbitmq_url, queues.dead_letter_queue)
            assert sorted(result.replayed) == sorted(d.message_id for d in parked)
            assert (result.kept, result.failed) == (0, ())
            wait_for(lambda: applied_ids(engine) >= all_ids, DEADLINE_S, "the replayed events applied")
            wait_for(lambda: queues.depth()[0] == 0, DEADLINE_S, "the replayed copies settled")
        assert sales_counts(engine) == (BACKLOG, BACKLOG)  # every event applied, none twice
        assert queues.depth(queues.dead_letter_queue)[0] == 0


def test_a_listed_dead_letter_says_why_and_a_replay_of_chosen_ids_leaves_the_others(
    rabbitmq_url: str, database: tuple[str, Engine]
) -> None:
    _, engine = database
    failing = {"broken"}

    def handler(event: Event, session: object) -> None:
        if failing & {event.data.get("kind")}:
            raise LookupError(f"no such book {event.data['order_id']}")
        record_sale(event, session)  # type: ignore[arg-type]

    events = [Event("order.approved", {"order_id": n, "kind": "broken"}) for n in range(3)]
    with (
        temporary_queues(rabbitmq_url) as queues,
        consumer(queues, engine, handler, max_attempts=2) as worker,
    ):
        publish(queues, events)
        worker.wait_until(lambda s: s.dead_lettered == 3, timeout=DEADLINE_S)
        listed = dead_letters(rabbitmq_url, queues.dead_letter_queue)
        assert sorted(d.message_id for d in listed) == sorted(e.message_id for e in events)
        assert {(d.reason, d.deaths, d.routing_key) for d in listed} == {
            ("attempts_exhausted", 1, "order.approved")
        }
        assert all(d.error.startswith("LookupError: no such book") for d in listed)
        assert len(dead_letters(rabbitmq_url, queues.dead_letter_queue)) == 3, "listing took them out"

        failing.clear()  # the handler is fixed: replay one of the three
        chosen = events[1].message_id
        result = replay(rabbitmq_url, queues.dead_letter_queue, {chosen})
        assert (result.replayed, result.kept, result.failed) == ((chosen,), 2, ())
        wait_for(lambda: applied_ids(engine) == {chosen}, DEADLINE_S, "the replayed event applied")
        assert sorted(d.message_id for d in dead_letters(rabbitmq_url, queues.dead_letter_queue)) == sorted(
            e.message_id for e in events if e.message_id != chosen
        )


def test_a_dead_letter_whose_replay_is_not_confirmed_stays_in_the_dead_letter_queue(
    rabbitmq_url: str,
) -> None:
    with temporary_queues(rabbitmq_url) as queues, connection(rabbitmq_url) as conn:
        channel = conn.channel()
        channel.confirm_delivery()
        for message_id, exchange, key in (
            ("no-exchange", "tmp-no-such-exchange", "order.approved"),  # the broker closes the channel: 404
            ("no-queue", queues.exchange, "nobody.binds.this"),  # returned as unroutable
            ("fine", queues.exchange, "order.approved"),
        ):
            headers = {"x-original-exchange": exchange, "x-original-routing-key": key}
            properties = pika.BasicProperties(message_id=message_id, headers=headers, delivery_mode=2)
            channel.basic_publish("", queues.dead_letter_queue, b"{}", properties)
        result = replay(rabbitmq_url, queues.dead_letter_queue)
        assert sorted(result.failed) == ["no-exchange", "no-queue"]
        assert result.replayed == ("fine",)
        assert sorted(d.message_id for d in dead_letters(rabbitmq_url, queues.dead_letter_queue)) == [
            "no-exchange",
            "no-queue",
        ]
        assert queues.depth()[0] == 1  # the one confirmed reached its queue


def test_the_cli_lists_a_dead_letter_with_its_reason_and_replays_it_to_its_queue(
    rabbitmq_url: str, topology: Topology, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = topology.dead_letter_queue(ANALYTICS)
    with connection(rabbitmq_url) as conn:
        channel = conn.channel()
        channel.confirm_delivery()
        death = {"count": 11, "reason": "delivery_limit", "queue": topology.queue(ANALYTICS),
                 "exchange": topology.exchange, "routing-keys": ["order.approved"]}  # fmt: skip
        properties = pika.BasicProperties(
            message_id="m-cli", type="order.approved", headers={"x-death": [death]}
        )
        channel.basic_publish("", dead, b"{}", properties)
    where = ["--url", rabbitmq_url, "--prefix", topology.prefix]

    assert main(["dlq", "list", "analytics", *where]) == 0
    listed = capsys.readouterr().out
    assert "m-cli" in listed and "delivery_limit" in listed and " 11 " in listed
    assert main(["dlq", "replay", "analytics", *where]) == 2  # neither --all nor --id: refuses
    assert main(["dlq", "replay", "analytics", "--all", *where]) == 0
    assert "replayed 1" in capsys.readouterr().out
    with connection(rabbitmq_url) as conn:
        assert conn.channel().queue_declare(topology.queue(ANALYTICS), passive=True).method.message_count == 1
        assert conn.channel().queue_declare(dead, passive=True).method.message_count == 0
