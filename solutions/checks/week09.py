"""Hidden checks for week 9 (instructor side: never handed out, never shown in feedback).

Each check receives the learner kernel's globals and raises CheckFailed with a message that
says which behaviour was expected, without revealing these inputs' source or the answers.
Questions 1-3 need no broker: they are the pure cores of topic routing, idempotent
consumption and the outbox relay. Question 4, a design task, is measured on RabbitMQ itself
(``keys_routed``): the learner's bindings on a throw-away queue, and which routing keys arrive.
Question 5, a design task on consistency, is measured by counting: which versions the learner's
``read_order`` returns (never older than the customer's own write or than what was shown), and
how often it asks the order service (only when the read model is behind).
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable
from typing import Any

from bookstore.grading.checks import CheckFailed, check
from bookstore.messaging.broker import resolve_rabbitmq_url
from bookstore.messaging.topology import keys_routed

WEEK = 9
NEEDS_CLUSTER = False


def _learner(ns: dict[str, Any], name: str) -> Any:
    if name not in ns:
        raise CheckFailed(f"{name} is not defined")
    return ns[name]


# ----------------------------------------------------------------------------- question 1

# (binding key, routing key, routed?). RabbitMQ itself agrees with every row:
# tests/integration/test_topic_routing_reference.py asks it.
WORDS_AND_STAR: list[tuple[str, str, bool]] = [
    ("payment.refunded", "payment.refunded", True),
    ("payment.refunded", "payment.charged", False),
    ("payment.refunded", "payment.refunded.late", False),
    ("*.refunded", "payment.refunded", True),
    ("*.refunded", "refunded", False),
    ("stock.*.low", "stock.eu.low", True),
    ("stock.*.low", "stock.eu.west.low", False),
    ("*.*", "a.b", True),
    ("*.*", "a.b.c", False),
]

HASH_AT_THE_END: list[tuple[str, str, bool]] = [
    ("stock.#", "stock.low", True),
    ("stock.#", "stock.eu.west.low", True),
    ("stock.#", "stocks.low", False),
    ("#", "anything.at.all", True),
]

HASH_ZERO_WORDS: list[tuple[str, str, bool]] = [
    ("stock.#", "stock", True),
    ("#.low", "low", True),
    ("a.#.b", "a.b", True),
    ("#", "x", True),
]

HASH_IN_THE_MIDDLE: list[tuple[str, str, bool]] = [
    ("a.#.b", "a.x.y.b", True),
    ("a.#.b", "a.x.y.c", False),
    ("a.#.b", "a.b.b", True),
    ("#.*.c", "c", False),
    ("#.*.c", "b.c", True),
    ("*.#.*", "a", False),
    ("*.#.*", "a.b", True),
]


def _routes(ns: dict[str, Any], cases: list[tuple[str, str, bool]], what: str) -> None:
    matches = _learner(ns, "topic_matches")
    wrong = [(b, r) for b, r, expected in cases if bool(matches(b, r)) != expected]
    if wrong:
        binding, routing = wrong[0]
        raise CheckFailed(
            f"{what}: {len(wrong)} of {len(cases)} pairs routed wrongly, "
            f"e.g. binding {binding!r} with routing key {routing!r}"
        )


@check("q1", points=1, title="plain words and '*' match exactly one word each")
def q1_words_and_star(ns: dict[str, Any]) -> None:
    _routes(
        ns,
        WORDS_AND_STAR,
        "words and '*'",
    )


@check("q1", points=1, title="'#' at the end matches one or more words")
def q1_hash_at_the_end(ns: dict[str, Any]) -> None:
    _routes(
        ns,
        HASH_AT_THE_END,
        "'#' at the end",
    )


@check("q1", points=1, title="'#' matches zero words too")
def q1_hash_zero_words(ns: dict[str, Any]) -> None:
    _routes(
        ns,
        HASH_ZERO_WORDS,
        "'#' matching zero words",
    )


@check("q1", points=1, title="'#' in the middle and mixed with '*'")
def q1_hash_in_the_middle(ns: dict[str, Any]) -> None:
    _routes(
        ns,
        HASH_IN_THE_MIDDLE,
        "'#' in the middle",
    )


# ----------------------------------------------------------------------------- question 2


def _database() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE processed (message_id TEXT PRIMARY KEY)")
    db.execute("CREATE TABLE ledger (entry TEXT)")
    db.commit()
    return db


def _write(entry: str) -> Callable[[sqlite3.Connection], None]:
    return lambda db: db.execute("INSERT INTO ledger VALUES (?)", (entry,))


def _entries(db: sqlite3.Connection) -> list[str]:
    return [row[0] for row in db.execute("SELECT entry FROM ledger ORDER BY rowid")]


@check("q2", points=1, title="each message id is applied once, however often it comes")
def q2_once(ns: dict[str, Any]) -> None:
    apply_once = _learner(ns, "apply_once")
    db = _database()
    answers = [apply_once(db, mid, _write(mid)) for mid in ("x", "y", "x", "x", "z", "y")]
    if _entries(db) != ["x", "y", "z"]:
        raise CheckFailed("after ids x, y, x, x, z, y, each id's work should be applied exactly once")
    if [bool(a) for a in answers] != [True, True, False, False, True, False]:
        raise CheckFailed("apply_once should return True when it applied the work and False for a repeat")


@check("q2", points=1, title="failed work leaves no trace, and the redelivery applies it")
def q2_failure(ns: dict[str, Any]) -> None:
    apply_once = _learner(ns, "apply_once")
    db = _database()

    def half_done(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO ledger VALUES ('half')")
        raise RuntimeError("the work failed half-way")

    try:
        apply_once(db, "m", half_done)
    except RuntimeError:
        pass
    else:
        raise CheckFailed("when the work raises, apply_once should let the error reach the caller")
    if _entries(db):
        raise CheckFailed(
            "the failed work's first write was kept: the work and the id must be one transaction"
        )
    if not apply_once(db, "m", _write("whole")) or _entries(db) != ["whole"]:
        raise CheckFailed("after a failed attempt, the redelivered message was not applied")


@check("q2", points=1, title="the id is recorded and committed with the work")
def q2_committed(ns: dict[str, Any]) -> None:
    apply_once = _learner(ns, "apply_once")
    db = _database()
    apply_once(db, "kept", _write("kept"))
    db.rollback()  # whatever was left uncommitted is gone now
    recorded = [row[0] for row in db.execute("SELECT message_id FROM processed")]
    if recorded != ["kept"] or _entries(db) != ["kept"]:
        raise CheckFailed("the work and the processed id should both be committed when apply_once returns")


@check("q2", points=1, title="a known id does not run the work at all")
def q2_no_rerun(ns: dict[str, Any]) -> None:
    apply_once = _learner(ns, "apply_once")
    db = _database()
    runs: list[str] = []

    def counted(conn: sqlite3.Connection) -> None:
        runs.append("run")

    apply_once(db, "same", counted)
    apply_once(db, "same", counted)
    if runs != ["run"]:
        raise CheckFailed(
            f"the work of one id ran {len(runs)} times; a repeat must not call it (think e-mails)"
        )


# ----------------------------------------------------------------------------- question 3


class _Broker:
    def __init__(self, *fail_on: str) -> None:
        self.received: list[str] = []
        self.fail_on = set(fail_on)

    def publish(self, message: str) -> None:
        if message in self.fail_on:
            raise ConnectionError("the connection dropped")
        self.received.append(message)


class _Marks:
    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    def __call__(self, row_ids: list[int]) -> None:
        self.calls.append(list(row_ids))


def _run(ns: dict[str, Any], messages: list[str], *fail_on: str) -> tuple[int, _Broker, _Marks]:
    relay = _learner(ns, "relay")
    broker = _Broker(*fail_on)
    marks = _Marks()
    pending = [(101 + i, m) for i, m in enumerate(messages)]
    sent = relay(pending, broker.publish, marks)
    return sent, broker, marks


@check("q3", points=1, title="all messages go out in order, and are marked")
def q3_all(ns: dict[str, Any]) -> None:
    sent, broker, marks = _run(ns, ["e1", "e2", "e3", "e4", "e5"])
    if broker.received != ["e1", "e2", "e3", "e4", "e5"]:
        raise CheckFailed("five pending messages should be published once each, oldest first")
    if sent != 5 or [r for call in marks.calls for r in call] != [101, 102, 103, 104, 105]:
        raise CheckFailed("when all five are confirmed, all five rows should be marked and 5 returned")


@check("q3", points=1, title="a failure stops the run: nothing overtakes it")
def q3_stops(ns: dict[str, Any]) -> None:
    _, broker, _ = _run(ns, ["e1", "e2", "e3", "e4"], "e3")
    if broker.received != ["e1", "e2"]:
        raise CheckFailed("when the third publish fails, the fourth must not be published in the same run")


@check("q3", points=1, title="only confirmed rows are marked, once, and their number returned")
def q3_marks_confirmed(ns: dict[str, Any]) -> None:
    sent, _, marks = _run(ns, ["e1", "e2", "e3", "e4"], "e3")
    if [r for call in marks.calls for r in call] != [101, 102]:
        raise CheckFailed("after a failure at the third message, exactly the first two rows should be marked")
    if len(marks.calls) != 1 or sent != 2:
        raise CheckFailed("mark_published should be called once with the confirmed rows, and 2 returned")


@check("q3", points=1, title="nothing confirmed, nothing marked")
def q3_nothing(ns: dict[str, Any]) -> None:
    sent, _, marks = _run(ns, ["e1", "e2"], "e1")
    empty_sent, _, empty_marks = _run(ns, [])
    if marks.calls or empty_marks.calls or sent != 0 or empty_sent != 0:
        raise CheckFailed("when no publish was confirmed (or nothing was pending), mark nothing and return 0")


# ----------------------------------------------------------------------------- question 4

# Other keys than the visible check's, of the shapes the question describes.
FRAUD_PAYMENTS = ["payment.declined", "payment.refund.issued", "payment.charge.retry.late"]
FRAUD_REJECTIONS = ["order.rejected", "order.rejected.apac", "order.rejected.us"]
FRAUD_OTHERS = [
    "order.created",
    "order.approved",
    "order.approved.us",
    "order.cancelled.apac",
    "order.rejected.us.retry",
    "payments.declined",
    "refund.payment",
    "stock.rejected",
]


def _fraud_taken(ns: dict[str, Any]) -> set[str]:
    """The routing keys RabbitMQ delivers to a queue bound by the learner's keys."""
    bindings = _learner(ns, "fraud_bindings")()
    if not isinstance(bindings, list | tuple) or not all(isinstance(key, str) for key in bindings):
        raise CheckFailed("fraud_bindings() should return a list of binding keys (strings)")
    keys = FRAUD_PAYMENTS + FRAUD_REJECTIONS + FRAUD_OTHERS
    return set(keys_routed(resolve_rabbitmq_url(), list(bindings), keys))


@check("q4", points=1, title="every payment event arrives, however many words follow 'payment'")
def q4_payments(ns: dict[str, Any]) -> None:
    if not set(FRAUD_PAYMENTS) <= _fraud_taken(ns):
        raise CheckFailed("a payment event with one or more words after 'payment' did not reach the queue")


@check("q4", points=1, title="a rejected order arrives, with or without its region")
def q4_rejections(ns: dict[str, Any]) -> None:
    if not set(FRAUD_REJECTIONS) <= _fraud_taken(ns):
        raise CheckFailed("a rejected order, with or without a region word, did not reach the queue")


@check("q4", points=1, title="nothing else arrives")
def q4_nothing_else(ns: dict[str, Any]) -> None:
    if _fraud_taken(ns) & set(FRAUD_OTHERS):
        raise CheckFailed(
            "a key that is neither a payment event nor a rejected order (with at most a region) arrived"
        )


# ----------------------------------------------------------------------------- question 5

Read = tuple[str, int]


class _Source:
    """Orders by id as (status, version), read through ``__call__``; counts the reads."""

    def __init__(self, orders: dict[str, Read]) -> None:
        self.orders = dict(orders)
        self.reads = 0

    def __call__(self, order_id: str) -> Read | None:
        self.reads += 1
        return self.orders.get(order_id)


def _read(ns: dict[str, Any], order_id: str, seen: int, model: _Source, service: _Source) -> Read:
    answer = _learner(ns, "read_order")(order_id, seen, model, service)
    try:
        status, version = answer
    except (TypeError, ValueError):
        raise CheckFailed("read_order should return a (status, version) pair") from None
    return str(status), int(version)


@check("q5", points=1, title="the customer's own write is always shown")
def q5_own_write(ns: dict[str, Any]) -> None:
    service = _Source({"b-7": ("PENDING", 1), "b-8": ("REJECTED", 3)})
    model = _Source({"b-8": ("APPROVED", 2)})  # has not heard of b-7; b-8 is a change behind
    if _read(ns, "b-7", 1, model, service) != ("PENDING", 1):
        raise CheckFailed("an order the read model has not heard of should come from the order service")
    if _read(ns, "b-8", 3, model, service) != ("REJECTED", 3):
        raise CheckFailed("a read model older than the version the customer has seen should not be used")


@check("q5", points=1, title="a page that passes back what it showed never goes back in time")
def q5_monotonic(ns: dict[str, Any]) -> None:
    # Two replicas of the read model behind a load balancer, lagging by different amounts.
    history = [("PENDING", 1), ("APPROVED", 2), ("SHIPPED", 3), ("DELIVERED", 4)]
    shown: list[int] = []
    seen = 1
    for now, lag in zip([1, 2, 2, 3, 3, 4, 4, 4], [0, 1, 0, 2, 0, 3, 1, 0], strict=True):
        service = _Source({"m-1": history[now - 1]})
        replica = _Source({"m-1": history[now - 1 - lag]})
        status, version = _read(ns, "m-1", seen, replica, service)
        if (status, version) not in history[:now]:
            raise CheckFailed("read_order returned a state that neither source had")
        shown.append(version)
        seen = max(seen, version)
    if any(later < earlier for earlier, later in itertools.pairwise(shown)):
        raise CheckFailed(f"the versions shown, in order, went back: {shown}")


@check("q5", points=1, title="the order service is asked only when the read model is behind")
def q5_cost(ns: dict[str, Any]) -> None:
    service = _Source({"c-1": ("APPROVED", 3), "c-2": ("PENDING", 1)})
    model = _Source({"c-1": ("APPROVED", 3), "c-2": ("PENDING", 1)})
    # c-1 newer than seen, c-1 as new as seen, c-2 as new as seen: none needs the order service
    answers = [
        _read(ns, "c-1", 2, model, service),
        _read(ns, "c-1", 3, model, service),
        _read(ns, "c-2", 1, model, service),
    ]
    if answers != [("APPROVED", 3), ("APPROVED", 3), ("PENDING", 1)]:
        raise CheckFailed(
            "a read model at least as new as what the customer has seen should be answered from"
        )
    if service.reads:
        raise CheckFailed(
            f"the order service was asked {service.reads} times for reads the read model could serve"
        )
    model.orders["c-2"] = ("PENDING", 1)
    service.orders["c-2"] = ("APPROVED", 2)
    _read(ns, "c-2", 2, model, service)
    if service.reads != 1:
        raise CheckFailed("a read the read model cannot serve should ask the order service once")
