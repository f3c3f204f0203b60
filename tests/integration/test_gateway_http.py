"""The gateway over real HTTP, with real JWTs, in front of real services."""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import jwt
import pytest

from bookstore.launcher.cluster import Cluster
from bookstore.platform.processes import free_port, spawn, terminate
from bookstore.platform.tokens import ISSUER, issue_token
from bookstore.rpc.v1 import inventory_pb2


def test_books_can_be_listed_searched_and_fetched(http: httpx.Client) -> None:
    page = http.get("/books", params={"page_size": 5}).json()
    assert len(page["books"]) == 5 and page["next_page_token"]
    hits = http.get("/books/search", params={"q": "austen"}).json()["books"]
    assert hits and all("austen" in b["author"].lower() for b in hits)
    book = http.get(f"/books/{page['books'][0]['book_id']}").json()
    assert book["title"] == page["books"][0]["title"]
    assert http.get("/books/999999").status_code == 404
    assert http.get("/books", params={"page_size": 101}).status_code in (400, 422)


def test_registering_twice_conflicts_and_a_wrong_password_is_401(http: httpx.Client) -> None:
    name = f"lin_{secrets.token_hex(3)}"
    assert http.post("/auth/register", json={"username": name, "password": "long enough"}).status_code == 201
    assert http.post("/auth/register", json={"username": name, "password": "long enough"}).status_code == 409
    assert http.post("/auth/login", json={"username": name, "password": "not the one"}).status_code == 401
    short = http.post("/auth/register", json={"username": f"x{name}", "password": "short"})
    assert short.status_code in (400, 422)
    assert "password" in short.text


def test_orders_require_a_valid_token(http: httpx.Client, cluster: Cluster) -> None:
    body = {"items": [{"book_id": 1, "quantity": 1}]}
    expired, _ = issue_token("u", "ada", secret=cluster.jwt_secret, ttl_s=1, now=time.time() - 10)
    forged, _ = issue_token("u", "ada", secret="not-the-cluster-secret-but-long-enough", ttl_s=60)
    unsigned = jwt.encode(
        {"sub": "u", "exp": int(time.time()) + 60, "iat": 1, "iss": ISSUER}, None, algorithm="none"
    )
    for headers in (
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer not.a.jwt"},
        {"Authorization": f"Bearer {expired}"},
        {"Authorization": f"Bearer {forged}"},
        {"Authorization": f"Bearer {unsigned}"},
        {"Authorization": f"Basic {forged}"},
    ):
        response = http.post("/orders", json=body, headers=headers)
        assert response.status_code == 401, (headers, response.text)


def test_a_user_orders_a_book_and_sees_only_their_own_orders(
    http: httpx.Client, auth_headers: dict[str, str], cluster: Cluster
) -> None:
    cluster.stub("inventory").SetStock(inventory_pb2.SetStockRequest(book_id=7, quantity=10), timeout=5)
    created = http.post("/orders", json={"items": [{"book_id": 7, "quantity": 2}]}, headers=auth_headers)
    assert created.status_code == 201, created.text
    order = created.json()
    assert order["status"] == "APPROVED" and order["total_cents"] > 0
    assert (
        http.get(f"/orders/{order['order_id']}", headers=auth_headers).json()["order_id"] == order["order_id"]
    )
    assert [o["order_id"] for o in http.get("/orders", headers=auth_headers).json()["orders"]] == [
        order["order_id"]
    ]

    name = f"mallory_{secrets.token_hex(3)}"
    http.post("/auth/register", json={"username": name, "password": "long enough"})
    token = http.post("/auth/login", json={"username": name, "password": "long enough"}).json()[
        "access_token"
    ]
    other = {"Authorization": f"Bearer {token}"}
    assert http.get(f"/orders/{order['order_id']}", headers=other).status_code == 404
    assert http.get("/orders", headers=other).json()["orders"] == []


def test_bad_orders_get_4xx_naming_the_problem(http: httpx.Client, auth_headers: dict[str, str]) -> None:
    unknown = http.post(
        "/orders", json={"items": [{"book_id": 999_999, "quantity": 1}]}, headers=auth_headers
    )
    assert unknown.status_code == 404 and "book_id" in unknown.text
    dup = http.post(
        "/orders",
        json={"items": [{"book_id": 1, "quantity": 1}, {"book_id": 1, "quantity": 1}]},
        headers=auth_headers,
    )
    assert dup.status_code in (400, 422) and "items" in dup.text
    zero = http.post("/orders", json={"items": [{"book_id": 1, "quantity": 0}]}, headers=auth_headers)
    assert zero.status_code in (400, 422)
    assert http.get("/orders/not-a-uuid", headers=auth_headers).status_code in (400, 404, 422)


def test_a_hundred_concurrent_orders_for_twenty_copies_sell_exactly_twenty(
    http: httpx.Client, auth_headers: dict[str, str], cluster: Cluster
) -> None:
    book_id = 21
    inventory = cluster.stub("inventory")
    inventory.SetStock(inventory_pb2.SetStockRequest(book_id=book_id, quantity=20), timeout=5)

    def order(_: int) -> tuple[int, str]:
        with httpx.Client(base_url=cluster.gateway_url, timeout=30) as client:
            r = client.post(
                "/orders", json={"items": [{"book_id": book_id, "quantity": 1}]}, headers=auth_headers
            )
            return r.status_code, r.json().get("status", r.text)

    with ThreadPoolExecutor(max_workers=100) as pool:
        results = list(pool.map(order, range(100)))
    outcomes = Counter(results)
    assert outcomes == {(201, "APPROVED"): 20, (201, "REJECTED"): 80}, outcomes
    assert inventory.GetStock(inventory_pb2.GetStockRequest(book_id=book_id), timeout=5).available == 0


def test_a_replayed_order_request_returns_the_same_order(
    http: httpx.Client, auth_headers: dict[str, str], cluster: Cluster
) -> None:
    cluster.stub("inventory").SetStock(inventory_pb2.SetStockRequest(book_id=8, quantity=10), timeout=5)
    body = {"items": [{"book_id": 8, "quantity": 1}], "request_id": f"basket-{secrets.token_hex(4)}"}
    first = http.post("/orders", json=body, headers=auth_headers).json()
    again = http.post("/orders", json=body, headers=auth_headers).json()
    assert again["order_id"] == first["order_id"]
    assert (
        cluster.stub("inventory").GetStock(inventory_pb2.GetStockRequest(book_id=8), timeout=5).available == 9
    )


def test_an_order_whose_saga_is_still_running_shows_pending_then_its_outcome(
    http: httpx.Client, auth_headers: dict[str, str], cluster: Cluster
) -> None:
    cluster.stub("inventory").SetStock(inventory_pb2.SetStockRequest(book_id=9, quantity=10), timeout=5)

    def place() -> httpx.Response:
        with httpx.Client(base_url=cluster.gateway_url, timeout=30) as client:
            return client.post(
                "/orders", json={"items": [{"book_id": 9, "quantity": 1}]}, headers=auth_headers
            )

    # A slow (not failing) payment keeps the saga running for a second, within its deadlines.
    cluster.inject_fault("payment", "Pay", error_rate=0.0, latency_ms=1000)
    seen: list[tuple[str, str, str]] = []  # (order id, status, reason) read while the saga ran
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            placing = pool.submit(place)
            while not placing.done():
                for listed in http.get("/orders", headers=auth_headers).json()["orders"]:
                    fetched = http.get(f"/orders/{listed['order_id']}", headers=auth_headers).json()
                    seen.append((fetched["order_id"], fetched["status"], fetched["reason"]))
            created = placing.result()
    finally:
        cluster.clear_faults("payment")
    assert created.status_code == 201 and created.json()["status"] == "APPROVED"
    order_id = created.json()["order_id"]
    assert (order_id, "PENDING", "") in seen, seen
    assert {status for _, status, _ in seen} <= {"PENDING", "APPROVED"}
    assert http.get(f"/orders/{order_id}", headers=auth_headers).json()["status"] == "APPROVED"


def test_the_openapi_document_describes_every_route(http: httpx.Client) -> None:
    paths = http.get("/openapi.json").json()["paths"]
    for path in (
        "/auth/register",
        "/auth/login",
        "/books",
        "/books/{book_id}",
        "/books/search",
        "/orders",
        "/orders/{order_id}",
    ):
        assert path in paths


# ------------------------------------------------------------------------------ slow clients
# A gateway of its own, with read deadlines of 1 s, so these tests need no cluster: the requests
# below never get as far as a backend. Its targets name a port nothing listens on.
READ_TIMEOUT_S = 1
# How long a test waits for the server to hang up: far past the deadline, so a busy machine
# cannot fail it, yet a server that never hangs up fails it instead of hanging the suite.
HANG_UP_WAIT_S = 20


def unused_target() -> str:
    return f"127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def strict_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("BOOKSTORE_")}
    env.update(
        {
            "BOOKSTORE_SERVICE": "gateway",
            "BOOKSTORE_PORT": str(port),
            "BOOKSTORE_JWT_SECRET": secrets.token_hex(32),
            "BOOKSTORE_TRACING": "0",
            "BOOKSTORE_HTTP_HEADER_TIMEOUT_S": str(READ_TIMEOUT_S),
            "BOOKSTORE_HTTP_BODY_TIMEOUT_S": str(READ_TIMEOUT_S),
            **{f"BOOKSTORE_{name}_TARGET": unused_target() for name in ("USER", "CATALOG", "ORDER")},
        }
    )
    log = Path(tmp_path_factory.mktemp("strict_gateway")) / "gateway.log"
    process = spawn("bookstore.gateway", env, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield "127.0.0.1", port
    finally:
        terminate([process.pid], reap={process.pid: process})


def answer_until_hang_up(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection; fails if it never does."""
    sock.settimeout(HANG_UP_WAIT_S)
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except TimeoutError:
        pytest.fail(f"the server kept the connection open for {HANG_UP_WAIT_S} s; it had sent {received!r}")
    except ConnectionResetError:
        pass
    return received


def test_a_request_head_that_never_ends_is_cut_off(strict_gateway: tuple[str, int]) -> None:
    # Slowloris: many connections, each with half a request head, hold the server's sockets.
    connections = [socket.create_connection(strict_gateway) for _ in range(20)]
    try:
        for sock in connections:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: bookstore\r\nX-Slow: ")
        answers = [answer_until_hang_up(sock) for sock in connections]
    finally:
        for sock in connections:
            sock.close()
    assert all(answer == b"" or answer.startswith(b"HTTP/1.1 408") for answer in answers), answers


def test_a_body_that_stops_arriving_gets_408_and_the_connection_is_closed(
    strict_gateway: tuple[str, int],
) -> None:
    with socket.create_connection(strict_gateway) as sock:
        sock.sendall(
            b"POST /auth/login HTTP/1.1\r\nHost: bookstore\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"username": '
        )
        answer = answer_until_hang_up(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer


def test_a_client_that_sends_in_time_is_served(strict_gateway: tuple[str, int]) -> None:
    with socket.create_connection(strict_gateway) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: bookstore\r\nConnection: close\r\n\r\n")
        answer = answer_until_hang_up(sock)
    assert answer.startswith(b"HTTP/1.1 200"), answer
