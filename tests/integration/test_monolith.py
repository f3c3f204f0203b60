"""The monolith process: the gateway's API, one database, one transaction per order, a clean stop.

Each order's effects are read back from the monolith's one database with plain SQL, beside
the process that owns it: stock, reservation, payment and order rows move together or not
at all. Bad requests are sent to the monolith and to a real cluster's gateway, and must get
the same status (and the same ``grpc_code``) from both.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from bookstore.launcher.cluster import Cluster
from bookstore.monolith.launcher import MonolithError, MonolithProcess
from bookstore.monolith.modules import NAME
from bookstore.platform.database import drop_mysql_databases, make_engine
from bookstore.platform.processes import pid_alive
from bookstore.platform.tokens import verify_token
from bookstore.services.payment.provider import DEFAULT_LIMIT_CENTS

from ..databases import BACKENDS, mariadb_template

PASSWORD = "correct horse"
HOBBIT, HOBBIT_CENTS = 1, 1499
# Enough Hobbits to pass the simulated card's limit, few enough to be in stock (100 each).
DECLINED_QUANTITY = DEFAULT_LIMIT_CENTS // HOBBIT_CENTS + 1


@pytest.fixture(scope="module", params=BACKENDS)
def monolith(request: pytest.FixtureRequest) -> Iterator[MonolithProcess]:
    db_url = mariadb_template("monolith_it") if request.param == "mariadb" else ""
    process = MonolithProcess(db_url=db_url)
    try:
        yield process.start()
    finally:
        process.stop()
        if db_url:
            drop_mysql_databases(db_url, [NAME])


@pytest.fixture(scope="module")
def database(monolith: MonolithProcess) -> Iterator[Engine]:
    engine = make_engine(monolith.database_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def client(monolith: MonolithProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=monolith.url, timeout=15) as http:
        yield http


def signed_up(http: httpx.Client) -> tuple[str, dict[str, str]]:
    """Register and log in a fresh user at ``http``; its id and bearer headers."""
    username = f"reader_{secrets.token_hex(4)}"
    assert http.post("/auth/register", json={"username": username, "password": PASSWORD}).status_code == 201
    login = http.post("/auth/login", json={"username": username, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return login.json()["user"]["user_id"], {"Authorization": f"Bearer {login.json()['access_token']}"}


def scalar(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as connection:
        return connection.execute(text(sql), params).scalar()


def stock_of(engine: Engine, book_id: int) -> int:
    return int(scalar(engine, "SELECT available FROM stock WHERE book_id = :b", b=book_id))


def rows_of_order(engine: Engine, order_id: str) -> dict[str, int]:
    """How many rows each module wrote for ``order_id``."""
    tables = {"orders": "orders", "reservations": "reservations", "payments": "payments"}
    return {
        name: int(scalar(engine, f"SELECT COUNT(*) FROM {table} WHERE order_id = :o", o=order_id))
        for name, table in tables.items()
    }


def test_login_returns_a_jwt_signed_with_the_monolith_secret(
    client: httpx.Client, monolith: MonolithProcess
) -> None:
    user_id, headers = signed_up(client)
    claims = verify_token(headers["Authorization"].split()[1], secret=monolith.jwt_secret)
    assert claims.user_id == user_id
    assert client.get("/orders", headers=headers).status_code == 200


def test_an_order_takes_the_stock_and_the_money_and_is_stored_in_the_one_database(
    client: httpx.Client, database: Engine
) -> None:
    user_id, headers = signed_up(client)
    book = 3
    before = stock_of(database, book)
    answer = client.post("/orders", json={"items": [{"book_id": book, "quantity": 2}]}, headers=headers)
    assert answer.status_code == 201, answer.text
    order = answer.json()
    assert order["status"] == "APPROVED" and order["user_id"] == user_id
    assert stock_of(database, book) == before - 2
    assert rows_of_order(database, order["order_id"]) == {"orders": 1, "reservations": 1, "payments": 1}
    payment = scalar(database, "SELECT status FROM payments WHERE order_id = :o", o=order["order_id"])
    amount = scalar(database, "SELECT amount_cents FROM payments WHERE order_id = :o", o=order["order_id"])
    assert (payment, amount) == ("CHARGED", order["total_cents"])
    assert client.get(f"/orders/{order['order_id']}", headers=headers).json() == order


def test_a_declined_payment_rolls_back_the_whole_order_and_leaves_nothing_written(
    client: httpx.Client, database: Engine
) -> None:
    user_id, headers = signed_up(client)
    stock = stock_of(database, HOBBIT)
    payments = scalar(database, "SELECT COUNT(*) FROM payments")
    reservations = scalar(database, "SELECT COUNT(*) FROM reservations")
    body = {"items": [{"book_id": HOBBIT, "quantity": DECLINED_QUANTITY}]}
    answer = client.post("/orders", json=body, headers=headers)
    assert answer.status_code == 409, answer.text
    assert answer.json()["grpc_code"] == "FAILED_PRECONDITION"
    assert "payment declined" in answer.json()["detail"]
    # The stock was taken inside the transaction before the card refused: it is back.
    assert stock_of(database, HOBBIT) == stock
    assert scalar(database, "SELECT COUNT(*) FROM orders WHERE user_id = :u", u=user_id) == 0
    assert scalar(database, "SELECT COUNT(*) FROM payments") == payments
    assert scalar(database, "SELECT COUNT(*) FROM reservations") == reservations


def test_short_stock_is_409_with_nothing_written(client: httpx.Client, database: Engine) -> None:
    user_id, headers = signed_up(client)
    book = 5
    stock = stock_of(database, book)
    body = {"items": [{"book_id": 6, "quantity": 1}, {"book_id": book, "quantity": stock + 1}]}
    answer = client.post("/orders", json=body, headers=headers)
    assert answer.status_code == 409, answer.text
    assert answer.json()["detail"].startswith("items[1].quantity: ")
    assert (stock_of(database, book), stock_of(database, 6)) == (stock, stock_of(database, 6))
    assert scalar(database, "SELECT COUNT(*) FROM orders WHERE user_id = :u", u=user_id) == 0


def test_a_repeated_request_id_returns_the_first_order_and_takes_stock_once(
    client: httpx.Client, database: Engine
) -> None:
    _, headers = signed_up(client)
    book = 7
    stock = stock_of(database, book)
    body = {"items": [{"book_id": book, "quantity": 1}], "request_id": "checkout-page-1"}
    first = client.post("/orders", json=body, headers=headers)
    again = client.post("/orders", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["order_id"] == first.json()["order_id"]
    assert stock_of(database, book) == stock - 1


# --------------------------------------------------------------- the same statuses as the gateway
@pytest.fixture(scope="module")
def gateway() -> Iterator[httpx.Client]:
    with Cluster() as cluster, httpx.Client(base_url=cluster.gateway_url, timeout=15) as http:
        yield http


def bad_requests(headers: dict[str, str]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """Label -> (method, path, httpx keyword arguments) of requests that must fail."""

    def order(items: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {"json": {"items": items, **extra}, "headers": headers}

    return {
        "no token": ("POST", "/orders", {"json": {"items": [{"book_id": 1, "quantity": 1}]}}),
        "a forged token": ("GET", "/orders", {"headers": {"Authorization": "Bearer not.a.token"}}),
        "quantity 0": ("POST", "/orders", order([{"book_id": 1, "quantity": 0}])),
        "an unknown field": ("POST", "/orders", order([{"book_id": 1, "quantity": 1, "quantiy": 2}])),
        "no items": ("POST", "/orders", order([])),
        "an unknown book": ("POST", "/orders", order([{"book_id": 987_654, "quantity": 1}])),
        "one book twice": (
            "POST",
            "/orders",
            order([{"book_id": 1, "quantity": 1}, {"book_id": 1, "quantity": 2}]),
        ),
        "someone else's order": ("GET", f"/orders/{uuid.uuid4()}", {"headers": headers}),
        "an order id that is no UUID": ("GET", "/orders/42", {"headers": headers}),
        "book 0": ("GET", "/books/0", {}),
        "an unknown book id": ("GET", "/books/987654", {}),
        "a page token not issued": ("GET", "/books", {"params": {"page_token": "x"}}),
        "a wrong password": (
            "POST",
            "/auth/login",
            {"json": {"username": "nobody", "password": "wrong one"}},
        ),
        "a short password": ("POST", "/auth/register", {"json": {"username": "shorty", "password": "short"}}),
        "a PUT on /orders": ("PUT", "/orders", {"headers": headers}),
    }


def answers(http: httpx.Client, headers: dict[str, str]) -> dict[str, tuple[int, str | None]]:
    result = {}
    for label, (method, path, options) in bad_requests(headers).items():
        answer = http.request(method, path, **options)
        body = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
        result[label] = (answer.status_code, body.get("grpc_code") if isinstance(body, dict) else None)
    return result


def test_bad_requests_get_the_same_status_from_the_monolith_as_from_the_gateway(
    client: httpx.Client, gateway: httpx.Client
) -> None:
    from_monolith = answers(client, signed_up(client)[1])
    from_gateway = answers(gateway, signed_up(gateway)[1])
    assert from_monolith == from_gateway
    assert all(status >= 400 for status, _ in from_monolith.values()), from_monolith


def test_a_taken_username_is_409_from_both(client: httpx.Client, gateway: httpx.Client) -> None:
    for http in (client, gateway):
        name = f"twice_{secrets.token_hex(3)}"
        assert http.post("/auth/register", json={"username": name, "password": PASSWORD}).status_code == 201
        again = http.post("/auth/register", json={"username": name.upper(), "password": PASSWORD})
        assert (again.status_code, again.json()["grpc_code"]) == (409, "ALREADY_EXISTS")


# --------------------------------------------------------------- the process's life
def test_stop_ends_the_process_and_kill_takes_everything_down_until_a_restart() -> None:
    with MonolithProcess() as monolith:
        pid = monolith.pid
        assert pid is not None and pid_alive(pid)
        monolith.kill()
        assert not pid_alive(pid)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{monolith.url}/books", timeout=2)
        monolith.restart()
        assert httpx.get(f"{monolith.url}/books", timeout=5).status_code == 200
        pid = monolith.pid
    assert pid is not None and not pid_alive(pid)
    assert not monolith.running()


def test_a_process_that_cannot_start_says_why_with_its_log() -> None:
    broken = MonolithProcess(
        db_url="mysql+pymysql://root@127.0.0.1:1/nowhere_{service}", startup_timeout_s=20
    )
    with pytest.raises(MonolithError, match="exited during start-up"):
        broken.start()
    assert not broken.running()


def test_the_monolith_dies_with_the_process_that_started_it() -> None:
    script = textwrap.dedent(
        """
        import time
        from bookstore.monolith.launcher import MonolithProcess
        monolith = MonolithProcess().start()
        print(monolith.pid, flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        line = parent.stdout.readline() if parent.stdout else ""
        pid = int(line)
        os.kill(parent.pid, signal.SIGKILL)  # no atexit handler runs: only PR_SET_PDEATHSIG can help
        parent.wait(timeout=5)
        deadline = time.monotonic() + 10
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not pid_alive(pid)
    finally:
        if parent.poll() is None:
            parent.kill()
