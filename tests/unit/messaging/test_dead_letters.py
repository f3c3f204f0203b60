"""Reading dead letters and backing off from a missing broker, without a broker."""

from __future__ import annotations

import pika
import pytest

from bookstore.messaging.backoff import Backoff
from bookstore.messaging.consumer import (
    ATTEMPTS_HEADER,
    CONSUMER_DEATHS_HEADER,
    DEAD_REASON_HEADER,
    ERROR_HEADER,
    ORIGINAL_EXCHANGE_HEADER,
    ORIGINAL_ROUTING_KEY_HEADER,
)
from bookstore.messaging.dead_letters import dead_letter_queue_named, describe, replay_headers
from bookstore.messaging.topology import Topology


def letter(headers: dict[str, object]) -> pika.BasicProperties:
    return pika.BasicProperties(message_id="m-1", type="order.approved", headers=headers)


def broker_death(count: int, reason: str = "delivery_limit") -> dict[str, object]:
    # As RabbitMQ writes it (pika hands table keys over as str, binary values as bytes).
    return {
        "count": count,
        "reason": reason,
        "queue": "p.order.analytics",
        "exchange": "p.bookstore.events",
        "routing-keys": [b"order.approved"],
    }


def test_a_message_the_broker_parked_names_the_delivery_limit_its_count_and_its_first_routing() -> None:
    dead = describe(letter({"x-death": [broker_death(2)]}))
    assert (dead.reason, dead.deaths) == ("delivery_limit", 2)
    assert (dead.exchange, dead.routing_key) == ("p.bookstore.events", "order.approved")
    assert dead.error == ""


def test_a_message_the_consumer_gave_up_on_names_its_reason_and_last_error() -> None:
    dead = describe(
        letter(
            {
                DEAD_REASON_HEADER: "attempts_exhausted",
                CONSUMER_DEATHS_HEADER: 1,
                ERROR_HEADER: "KeyError: 'book_id'",
                ORIGINAL_EXCHANGE_HEADER: "p.bookstore.events",
                ORIGINAL_ROUTING_KEY_HEADER: "order.approved",
            }
        )
    )
    assert (dead.reason, dead.deaths, dead.error) == ("attempts_exhausted", 1, "KeyError: 'book_id'")
    assert (dead.exchange, dead.routing_key) == ("p.bookstore.events", "order.approved")


def test_a_retry_copy_parked_by_the_broker_replays_to_its_first_routing_not_to_the_queue() -> None:
    death = {**broker_death(1), "exchange": "", "routing-keys": [b"p.order.analytics"]}
    dead = describe(
        letter(
            {
                "x-death": [death],
                ERROR_HEADER: "TimeoutError",  # the failure before the crashes: not why it is dead
                ORIGINAL_EXCHANGE_HEADER: "p.bookstore.events",
                ORIGINAL_ROUTING_KEY_HEADER: "order.approved",
            }
        )
    )
    assert (dead.reason, dead.error) == ("delivery_limit", "")
    assert (dead.exchange, dead.routing_key) == ("p.bookstore.events", "order.approved")


def test_deaths_add_up_what_the_broker_and_the_consumers_counted() -> None:
    dead = describe(
        letter({"x-death": [broker_death(3)], CONSUMER_DEATHS_HEADER: 2, DEAD_REASON_HEADER: "x"})
    )
    assert dead.deaths == 5
    assert dead.reason == "x"  # the consumer's verdict is dropped on replay: when present, it is the latest


def test_a_replay_drops_the_consumers_verdict_and_keeps_the_history() -> None:
    headers = replay_headers(
        {
            "x-death": [broker_death(1)],
            CONSUMER_DEATHS_HEADER: 1,
            DEAD_REASON_HEADER: "attempts_exhausted",
            ATTEMPTS_HEADER: 5,
            ERROR_HEADER: "boom",
            "x-delivery-count": 3,
            "traceparent": "00-abc",
        }
    )
    assert set(headers) == {"x-death", CONSUMER_DEATHS_HEADER, "traceparent"}


@pytest.mark.parametrize("name", ["analytics", "order.analytics", "order.analytics.dead"])
def test_a_queue_is_named_the_way_a_person_would(name: str) -> None:
    assert dead_letter_queue_named(Topology("p."), name) == "p.order.analytics.dead"


def test_an_unknown_queue_name_is_taken_as_a_full_name() -> None:
    assert dead_letter_queue_named(Topology("p."), "mine") == "mine.dead"


def test_backoff_doubles_to_its_cap_and_starts_small_again_after_a_success() -> None:
    backoff = Backoff(0.1, 0.5, jitter=0)
    assert [backoff.next_delay() for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    backoff.reset()
    assert backoff.next_delay() == 0.1


def test_backoff_jitter_only_shortens_a_delay_and_by_at_most_the_fraction() -> None:
    delays = [Backoff(0.4, 0.4, jitter=0.5).next_delay() for _ in range(200)]
    assert all(0.2 <= d <= 0.4 for d in delays)
    assert len(set(delays)) > 1
