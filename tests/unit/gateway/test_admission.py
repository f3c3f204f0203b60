"""The gateway's admission of CreateOrder calls: a bounded number in flight, the rest wait,
and the bound halves while calls run slow and grows back while they run fast."""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient

from bookstore.gateway.admission import Admission, AdmissionTimeout
from bookstore.gateway.clients import GatewayClients, order_admission, order_deadline
from bookstore.platform.settings import Settings
from bookstore.resilience.timeline import ManualClock

from .fakes import FakeOrderService

ONE_BOOK = {"items": [{"book_id": 1, "quantity": 1}]}


def test_a_slot_freed_by_one_caller_lets_a_waiting_caller_in() -> None:
    admission = Admission(limit=1, wait_s=30)
    entered = threading.Event()
    holding = admission.slot()
    holding.__enter__()

    def wait_for_turn() -> None:
        with admission.slot():
            entered.set()

    waiter = threading.Thread(target=wait_for_turn)
    waiter.start()
    assert not entered.wait(0.05)  # the only slot is held
    holding.__exit__(None, None, None)
    waiter.join(timeout=30)
    assert entered.is_set()


def test_a_caller_that_waits_past_the_bound_is_refused() -> None:
    admission = Admission(limit=1, wait_s=0.01)
    with admission.slot(), pytest.raises(AdmissionTimeout), admission.slot():
        pass
    with admission.slot():  # the refused caller took no slot with it
        pass


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Admission(limit=0, wait_s=1)


def test_an_order_that_never_got_its_turn_is_503_with_retry_after_and_was_never_sent(
    client: TestClient, clients: GatewayClients, alice: dict[str, str]
) -> None:
    clients.order_admission = Admission(limit=1, wait_s=0.01)
    with clients.order_admission.slot():
        response = client.post("/orders", json=ONE_BOOK, headers=alice)

    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "1"
    assert isinstance(clients.order, FakeOrderService)
    assert not [call for call in clients.order.calls if call.method == "CreateOrder"]


def test_the_admission_bounds_come_from_the_environment() -> None:
    assert (Settings.from_env({}).order_concurrency, Settings.from_env({}).order_queue_s) == (8, 30.0)
    settings = Settings.from_env({"BOOKSTORE_ORDER_CONCURRENCY": "3", "BOOKSTORE_ORDER_QUEUE_S": "2.5"})
    assert (settings.order_concurrency, settings.order_queue_s) == (3, 2.5)
    with pytest.raises(ValueError, match="BOOKSTORE_ORDER_CONCURRENCY"):
        Settings.from_env({"BOOKSTORE_ORDER_CONCURRENCY": "0"})


def _call(admission: Admission, clock: ManualClock, took_s: float) -> None:
    with admission.slot():
        clock.advance(took_s)


def test_a_call_slower_than_the_target_halves_the_bound_and_fast_calls_grow_it_back_one_per_round() -> None:
    clock = ManualClock()
    admission = Admission(limit=8, wait_s=1, target_s=3.0, clock=clock)
    _call(admission, clock, 1.0)
    assert admission.bound == 8  # fast at the limit: nothing to grow

    _call(admission, clock, 4.0)
    assert (admission.bound, admission.cuts) == (4, 1)
    _call(admission, clock, 4.0)
    assert (admission.bound, admission.cuts) == (2, 2)  # started after the cut: a new round

    _call(admission, clock, 0.1)
    _call(admission, clock, 0.1)
    assert admission.bound == 2  # 2 + 1/2 + 1/2.5: under one more slot yet
    _call(admission, clock, 0.1)
    assert admission.bound == 3


def test_slow_calls_already_in_flight_when_the_bound_was_cut_do_not_cut_it_again() -> None:
    clock = ManualClock()
    admission = Admission(limit=8, wait_s=1, target_s=3.0, clock=clock)
    in_flight = [admission.slot() for _ in range(4)]
    for slot in in_flight:
        slot.__enter__()
    clock.advance(5.0)
    for slot in in_flight:
        slot.__exit__(None, None, None)

    assert (admission.bound, admission.cuts) == (4, 1)


def test_the_bound_never_falls_below_one_and_without_a_target_never_moves() -> None:
    clock = ManualClock()
    adaptive = Admission(limit=2, wait_s=1, target_s=1.0, clock=clock)
    fixed = Admission(limit=2, wait_s=1, clock=clock)
    for _ in range(5):
        _call(adaptive, clock, 10.0)
        _call(fixed, clock, 10.0)
    assert (adaptive.bound, fixed.bound, fixed.cuts) == (1, 2, 0)


def test_a_cut_bound_makes_the_next_caller_wait_for_a_slot() -> None:
    clock = ManualClock()
    admission = Admission(limit=2, wait_s=0.05, target_s=1.0, clock=clock)
    _call(admission, clock, 2.0)  # slow: the bound falls from 2 to 1
    with admission.slot(), pytest.raises(AdmissionTimeout), admission.slot():
        pass


def test_the_gateway_aims_at_half_the_order_deadline() -> None:
    settings = Settings.from_env({"BOOKSTORE_ORDER_CONCURRENCY": "5"})
    admission = order_admission(settings)
    assert (admission.limit, admission.wait_s) == (5, settings.order_queue_s)
    assert admission.target_s == pytest.approx(order_deadline(settings) / 2)
