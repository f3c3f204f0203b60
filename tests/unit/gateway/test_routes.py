"""The routes: each one validates, calls one service with the deadline, and translates the answer."""

from __future__ import annotations

import json
import uuid
from typing import Any

import grpc
import httpx
import pytest
from fastapi.testclient import TestClient

from bookstore.gateway.app import create_app
from bookstore.gateway.clients import GatewayClients
from bookstore.platform.settings import Settings
from bookstore.platform.tokens import verify_token
from bookstore.rpc.v1 import order_pb2

from .fakes import FIXED_NOW, FakeRpcError, bearer

ONE_DUNE = {"items": [{"book_id": 1, "quantity": 1}]}


def place(client: TestClient, headers: dict[str, str], body: dict[str, Any] = ONE_DUNE) -> dict[str, Any]:
    response = client.post("/orders", json=body, headers=headers)
    assert response.status_code == 201, response.text
    order: dict[str, Any] = response.json()
    return order


def post_raw_json(
    client: TestClient, path: str, body: Any, headers: dict[str, str] | None = None
) -> httpx.Response:
    """POST ``body`` as JSON with non-ASCII escaped, so lone surrogates travel as ``\\udXXX`` escapes.

    That is legal JSON, and what a hostile client sends; httpx's ``json=`` cannot encode it.
    """
    return client.post(
        path,
        content=json.dumps(body).encode("ascii"),
        headers={**(headers or {}), "Content-Type": "application/json"},
    )


# ----------------------------------------------------------------------------------- auth


def test_registering_returns_201_with_the_new_user(client: TestClient) -> None:
    response = client.post("/auth/register", json={"username": "alice", "password": "correct horse"})

    assert response.status_code == 201
    user = response.json()
    assert user["username"] == "alice"
    assert uuid.UUID(user["user_id"])
    assert user["created_at_unix"] == FIXED_NOW


def test_registering_a_taken_username_is_a_conflict(client: TestClient) -> None:
    body = {"username": "alice", "password": "correct horse"}
    client.post("/auth/register", json=body)

    response = client.post("/auth/register", json=body)

    assert response.status_code == 409
    assert response.json() == {"detail": "username: 'alice' is taken", "grpc_code": "ALREADY_EXISTS"}


def test_logging_in_returns_a_bearer_token_for_the_user(client: TestClient, settings: Settings) -> None:
    user = client.post("/auth/register", json={"username": "alice", "password": "correct horse"}).json()

    response = client.post("/auth/login", json={"username": "alice", "password": "correct horse"})

    assert response.status_code == 200
    login = response.json()
    assert login["token_type"] == "bearer"
    assert login["user"] == user
    claims = verify_token(login["access_token"], secret=settings.jwt_secret)
    assert claims.user_id == user["user_id"]
    assert login["expires_at_unix"] == claims.expires_at_unix


def test_a_token_from_login_opens_the_orders_routes(client: TestClient) -> None:
    client.post("/auth/register", json={"username": "alice", "password": "correct horse"})
    token = client.post("/auth/login", json={"username": "alice", "password": "correct horse"}).json()

    response = client.get("/orders", headers={"Authorization": f"Bearer {token['access_token']}"})

    assert response.status_code == 200


def test_logging_in_with_a_wrong_password_is_401_with_a_bearer_challenge(client: TestClient) -> None:
    client.post("/auth/register", json={"username": "alice", "password": "correct horse"})

    response = client.post("/auth/login", json={"username": "alice", "password": "wrong horse"})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["grpc_code"] == "UNAUTHENTICATED"


# ---------------------------------------------------------------------------------- books


def test_listing_books_returns_a_page_and_a_token_for_the_next(client: TestClient) -> None:
    first = client.get("/books", params={"page_size": 3}).json()
    second = client.get("/books", params={"page_size": 3, "page_token": first["next_page_token"]}).json()

    assert [book["book_id"] for book in first["books"]] == [1, 2, 3]
    assert first["total_size"] == 4
    assert [book["book_id"] for book in second["books"]] == [4]
    assert second["next_page_token"] == ""


def test_a_book_is_rendered_with_every_field(client: TestClient) -> None:
    response = client.get("/books/1")

    assert response.status_code == 200
    assert response.json() == {
        "book_id": 1,
        "title": "Dune",
        "author": "Frank Herbert",
        "isbn": "9780441172719",
        "price_cents": 999,
        "year": 1965,
    }


def test_an_unknown_book_is_404_with_the_services_message(client: TestClient) -> None:
    response = client.get("/books/999")

    assert response.status_code == 404
    assert response.json() == {"detail": "book_id: no book 999", "grpc_code": "NOT_FOUND"}


def test_search_is_routed_to_search_and_not_taken_for_a_book_id(
    client: TestClient, clients: GatewayClients
) -> None:
    response = client.get("/books/search", params={"q": "gibson"})

    assert response.status_code == 200
    assert [book["title"] for book in response.json()["books"]] == ["Neuromancer"]
    assert clients.catalog.calls[-1].method == "SearchBooks"


def test_query_parameters_are_passed_to_the_service(client: TestClient, clients: GatewayClients) -> None:
    client.get("/books/search", params={"q": "dune", "page_size": 7})

    request = clients.catalog.calls[-1].request
    assert (request.query, request.page_size) == ("dune", 7)


def test_a_page_token_unlike_any_the_service_issues_is_refused_at_the_edge(client: TestClient) -> None:
    # The document states the token's form (test_contract), so the gateway refuses the rest itself.
    response = client.get("/books", params={"page_token": "not-mine"})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "page_token"]


# --------------------------------------------------------------------------------- orders


def test_placing_an_order_returns_201_with_prices_total_and_status(
    client: TestClient, alice: dict[str, str]
) -> None:
    order = place(client, alice, {"items": [{"book_id": 1, "quantity": 2}, {"book_id": 2, "quantity": 1}]})

    assert order["status"] == "APPROVED"
    assert order["reason"] == ""
    assert order["items"] == [
        {"book_id": 1, "quantity": 2, "unit_price_cents": 999},
        {"book_id": 2, "quantity": 1, "unit_price_cents": 1250},
    ]
    assert order["total_cents"] == 2 * 999 + 1250


def test_a_refused_payment_returns_the_order_rejected_with_its_reason(
    client: TestClient, alice: dict[str, str]
) -> None:
    order = place(client, alice, {"items": [{"book_id": 4, "quantity": 2}]})

    assert order["status"] == "REJECTED"
    assert "card limit" in order["reason"]


def test_the_order_belongs_to_the_user_named_by_the_token(
    client: TestClient, settings: Settings, clients: GatewayClients
) -> None:
    user_id = str(uuid.uuid4())

    order = place(client, bearer(user_id, settings))

    assert order["user_id"] == user_id
    assert clients.order.calls[-1].request.user_id == user_id


def test_a_user_id_in_the_body_cannot_impersonate_someone_else(
    client: TestClient, alice: dict[str, str]
) -> None:
    body = {**ONE_DUNE, "user_id": str(uuid.uuid4())}

    assert client.post("/orders", json=body, headers=alice).status_code == 422


def test_the_request_id_makes_a_repeated_order_return_the_same_order(
    client: TestClient, alice: dict[str, str], clients: GatewayClients
) -> None:
    body = {**ONE_DUNE, "request_id": "basket-42"}

    first = place(client, alice, body)
    again = place(client, alice, body)

    assert again["order_id"] == first["order_id"]
    assert clients.order.calls[-1].request.request_id == "basket-42"


def test_an_order_for_an_unknown_book_is_404(client: TestClient, alice: dict[str, str]) -> None:
    response = client.post("/orders", json={"items": [{"book_id": 12345, "quantity": 1}]}, headers=alice)

    assert response.status_code == 404
    assert response.json()["detail"] == "items[0].book_id: no book 12345"


def test_a_user_reads_their_own_order(client: TestClient, alice: dict[str, str]) -> None:
    order = place(client, alice)

    response = client.get(f"/orders/{order['order_id']}", headers=alice)

    assert response.status_code == 200
    assert response.json() == order


def test_another_users_order_is_404_as_if_it_did_not_exist(
    client: TestClient, alice: dict[str, str], bob: dict[str, str], clients: GatewayClients
) -> None:
    order = place(client, alice)

    response = client.get(f"/orders/{order['order_id']}", headers=bob)

    assert response.status_code == 404
    assert response.json()["grpc_code"] == "NOT_FOUND"
    assert clients.order.calls[-1].request.user_id != order["user_id"]


def test_a_user_lists_only_their_own_orders(
    client: TestClient, alice: dict[str, str], bob: dict[str, str]
) -> None:
    alices = [place(client, alice)["order_id"], place(client, alice)["order_id"]]
    bobs = [place(client, bob)["order_id"]]

    listed_for_alice = [order["order_id"] for order in client.get("/orders", headers=alice).json()["orders"]]
    listed_for_bob = [order["order_id"] for order in client.get("/orders", headers=bob).json()["orders"]]

    assert listed_for_alice == alices
    assert listed_for_bob == bobs


def test_listing_orders_pages_with_the_services_token(client: TestClient, alice: dict[str, str]) -> None:
    placed = [place(client, alice)["order_id"] for _ in range(3)]

    first = client.get("/orders", params={"page_size": 2}, headers=alice).json()
    second = client.get(
        "/orders", params={"page_size": 2, "page_token": first["next_page_token"]}, headers=alice
    ).json()

    assert [order["order_id"] for order in first["orders"] + second["orders"]] == placed
    assert second["next_page_token"] == ""


def test_an_order_id_that_is_not_a_uuid_is_422(client: TestClient, alice: dict[str, str]) -> None:
    assert client.get("/orders/not-a-uuid", headers=alice).status_code == 422


def test_an_order_without_a_status_from_the_service_is_a_bad_gateway(
    settings: Settings, clients: GatewayClients, alice: dict[str, str]
) -> None:
    class StatuslessOrders:
        def GetOrder(
            self, request: order_pb2.GetOrderRequest, *, timeout: float
        ) -> order_pb2.GetOrderResponse:
            return order_pb2.GetOrderResponse(order=order_pb2.Order(order_id=request.order_id))

    clients.order = StatuslessOrders()
    with TestClient(create_app(settings, clients)) as client:
        response = client.get(f"/orders/{uuid.uuid4()}", headers=alice)

    assert response.status_code == 502


# ------------------------------------------------------------------------- validation: 422


VALID_ORDER_BODIES_GONE_WRONG: dict[str, Any] = {
    "no items": {"items": []},
    "items missing": {},
    "51 items": {"items": [{"book_id": n, "quantity": 1} for n in range(1, 52)]},
    "quantity 0": {"items": [{"book_id": 1, "quantity": 0}]},
    "quantity 1001": {"items": [{"book_id": 1, "quantity": 1001}]},
    "book id 0": {"items": [{"book_id": 0, "quantity": 1}]},
    "book id beyond int64": {"items": [{"book_id": 2**63, "quantity": 1}]},
    "quantity as a string": {"items": [{"book_id": 1, "quantity": "1"}]},
    "quantity as a float": {"items": [{"book_id": 1, "quantity": 1.5}]},
    "quantity as a boolean": {"items": [{"book_id": 1, "quantity": True}]},
    "misspelt field": {"items": [{"book_id": 1, "quantiy": 1}]},
    "request id too long": {**ONE_DUNE, "request_id": "r" * 101},
    "request id with a lone surrogate": {**ONE_DUNE, "request_id": "\ud800"},
    "items not a list": {"items": {"book_id": 1, "quantity": 1}},
    "body not an object": [1, 2, 3],
}


@pytest.mark.parametrize(
    "body", VALID_ORDER_BODIES_GONE_WRONG.values(), ids=VALID_ORDER_BODIES_GONE_WRONG.keys()
)
def test_a_malformed_order_body_is_422_and_never_reaches_the_service(
    client: TestClient, alice: dict[str, str], clients: GatewayClients, body: Any
) -> None:
    response = post_raw_json(client, "/orders", body, alice)

    assert response.status_code == 422
    assert clients.order.calls == []


def test_fifty_items_is_still_a_valid_order(client: TestClient, alice: dict[str, str]) -> None:
    body = {"items": [{"book_id": 1 + n % 4, "quantity": 1} for n in range(50)]}

    # Duplicates make the service refuse it, but only after the gateway let it through.
    assert client.post("/orders", json=body, headers=alice).status_code == 400


def test_a_body_that_is_not_json_is_422(client: TestClient, alice: dict[str, str]) -> None:
    headers = {**alice, "Content-Type": "application/json"}

    assert client.post("/orders", content=b"{not json", headers=headers).status_code == 422


BAD_REGISTRATIONS: dict[str, Any] = {
    "username too short": {"username": "al", "password": "correct horse"},
    "username too long": {"username": "a" * 33, "password": "correct horse"},
    "username starting with a dot": {"username": ".alice", "password": "correct horse"},
    "username with a space": {"username": "al ice", "password": "correct horse"},
    "password too short": {"username": "alice", "password": "short"},
    "password too long": {"username": "alice", "password": "p" * 129},
    "password with a lone surrogate": {"username": "alice", "password": "correct horse \udfff"},
    "password missing": {"username": "alice"},
    "username a number": {"username": 12345, "password": "correct horse"},
}


@pytest.mark.parametrize("body", BAD_REGISTRATIONS.values(), ids=BAD_REGISTRATIONS.keys())
def test_a_malformed_registration_is_422(client: TestClient, clients: GatewayClients, body: Any) -> None:
    assert post_raw_json(client, "/auth/register", body).status_code == 422
    assert clients.user.calls == []


def test_a_login_with_a_lone_surrogate_is_422_not_a_crash(client: TestClient) -> None:
    response = post_raw_json(client, "/auth/login", {"username": "alice", "password": "\ud83d"})

    assert response.status_code == 422


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/books", {"page_size": 101}),
        ("/books", {"page_size": -1}),
        ("/books", {"page_size": "ten"}),
        ("/books", {"page_token": "t" * 65}),
        ("/books/search", {}),
        ("/books/search", {"q": ""}),
        ("/books/search", {"q": "q" * 101}),
        ("/books/0", {}),
        ("/books/-5", {}),
        (f"/books/{2**63}", {}),
        ("/books/one", {}),
    ],
)
def test_out_of_range_parameters_are_422(client: TestClient, path: str, params: dict[str, Any]) -> None:
    assert client.get(path, params=params).status_code == 422


def test_the_largest_int64_book_id_is_accepted_and_simply_not_found(client: TestClient) -> None:
    assert client.get(f"/books/{2**63 - 1}").status_code == 404


# ------------------------------------------------------------------------ deadlines, misc


def test_every_backend_call_carries_the_configured_deadline(
    client: TestClient, clients: GatewayClients, alice: dict[str, str], settings: Settings
) -> None:
    client.post("/auth/register", json={"username": "alice", "password": "correct horse"})
    client.post("/auth/login", json={"username": "alice", "password": "correct horse"})
    client.get("/books")
    client.get("/books/search", params={"q": "dune"})
    client.get("/books/1")
    order = place(client, alice)
    client.get(f"/orders/{order['order_id']}", headers=alice)
    client.get("/orders", headers=alice)

    calls = clients.user.calls + clients.catalog.calls + clients.order.calls
    assert {call.method for call in calls} == {
        "Register",
        "Login",
        "ListBooks",
        "SearchBooks",
        "GetBook",
        "CreateOrder",
        "GetOrder",
        "ListOrders",
    }
    # Every call carries the gateway's deadline, but CreateOrder waits out the saga's budget.
    assert {call.timeout for call in calls if call.method != "CreateOrder"} == {settings.deadline_s}
    assert {call.timeout for call in calls if call.method == "CreateOrder"} == {
        settings.saga_deadline_s + settings.deadline_s
    }


def test_healthz_answers_ok_without_calling_any_backend(client: TestClient, clients: GatewayClients) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert clients.user.calls == clients.catalog.calls == clients.order.calls == []


def test_the_openapi_document_has_a_title_and_documents_errors_and_auth(client: TestClient) -> None:
    document = client.get("/openapi.json").json()

    assert document["info"]["title"] == "Bookstore API gateway"
    assert document["info"]["description"]
    create_order = document["paths"]["/orders"]["post"]
    assert {"201", "401", "404", "409", "422", "503"} <= set(create_order["responses"])
    assert create_order["security"] == [{"bearerAuth": []}]
    assert "security" not in document["paths"]["/books"]["get"]
    quantity = document["components"]["schemas"]["OrderItemBody"]["properties"]["quantity"]
    assert (quantity["minimum"], quantity["maximum"]) == (1, 1000)


def test_search_is_declared_before_the_book_id_route(client: TestClient) -> None:
    paths = list(client.get("/openapi.json").json()["paths"])

    assert paths.index("/books/search") < paths.index("/books/{book_id}")


def test_a_backend_that_fails_mid_request_leaves_the_next_request_unharmed(
    client: TestClient, clients: GatewayClients, alice: dict[str, str]
) -> None:
    healthy = clients.catalog.GetBook

    def flaky(request: Any, *, timeout: float) -> Any:
        raise FakeRpcError(grpc.StatusCode.UNAVAILABLE, "connection refused")

    clients.catalog.GetBook = flaky
    assert client.get("/books/1").status_code == 503
    clients.catalog.GetBook = healthy
    assert client.get("/books/1").status_code == 200
