"""The gateway's admission of CreateOrder calls: a bounded number in flight, the rest wait."""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient

from bookstore.gateway.admission import Admission, AdmissionTimeout
from bookstore.gateway.clients import GatewayClients
from bookstore.platform.settings import Settings

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
        Admission(limit=0)


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
