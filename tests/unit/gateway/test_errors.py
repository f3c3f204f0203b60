"""gRPC status codes become HTTP statuses, with the code named in the body."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import grpc
import pytest
from fastapi.testclient import TestClient

from bookstore.gateway.app import create_app
from bookstore.gateway.errors import HTTP_STATUS_BY_GRPC, http_status_for
from bookstore.platform.settings import Settings

from .fakes import bearer, failing_clients

EXPECTED_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.INTERNAL: 502,
    grpc.StatusCode.UNKNOWN: 502,
    grpc.StatusCode.UNIMPLEMENTED: 502,
    grpc.StatusCode.CANCELLED: 502,
    grpc.StatusCode.ABORTED: 502,
    grpc.StatusCode.OUT_OF_RANGE: 502,
    grpc.StatusCode.DATA_LOSS: 502,
}
CLIENT_ERRORS = [code for code, status in EXPECTED_HTTP_STATUS.items() if status < 500]
SERVER_ERRORS = [code for code, status in EXPECTED_HTTP_STATUS.items() if status >= 500]


def client_for(code: grpc.StatusCode, details: str = "it went wrong") -> Iterator[TestClient]:
    settings = Settings(jwt_secret="error-tests-" + "z" * 52)
    with TestClient(create_app(settings, failing_clients(code, details))) as client:
        client.headers.update(bearer(str(uuid.uuid4()), settings))
        yield client


@pytest.mark.parametrize("code", list(EXPECTED_HTTP_STATUS), ids=lambda code: code.name)
def test_each_grpc_code_maps_to_its_http_status_on_the_wire(code: grpc.StatusCode) -> None:
    for client in client_for(code):
        response = client.get("/books/1")

        assert response.status_code == EXPECTED_HTTP_STATUS[code]
        assert response.json()["grpc_code"] == code.name


def test_every_grpc_code_has_an_http_status_and_unlisted_ones_are_bad_gateway() -> None:
    for code in grpc.StatusCode:
        assert http_status_for(code) == EXPECTED_HTTP_STATUS.get(code, 502)
    assert http_status_for(None) == 502


def test_the_mapping_table_holds_exactly_the_codes_with_a_closer_match_than_502() -> None:
    assert dict(HTTP_STATUS_BY_GRPC) == {code: s for code, s in EXPECTED_HTTP_STATUS.items() if s != 502}


@pytest.mark.parametrize("code", CLIENT_ERRORS, ids=lambda code: code.name)
def test_a_client_error_carries_the_services_message(code: grpc.StatusCode) -> None:
    for client in client_for(code, "items[0].quantity: must be between 1 and 1000"):
        response = client.post("/orders", json={"items": [{"book_id": 1, "quantity": 1}]})

        assert response.json() == {
            "detail": "items[0].quantity: must be between 1 and 1000",
            "grpc_code": code.name,
        }


@pytest.mark.parametrize("code", SERVER_ERRORS, ids=lambda code: code.name)
def test_a_server_error_hides_the_backends_internals(code: grpc.StatusCode) -> None:
    internals = "failed to connect to all addresses; last error: ipv4:10.0.0.7:7003: Connection refused"
    for client in client_for(code, internals):
        response = client.get("/orders")

        assert "10.0.0.7" not in response.text
        assert response.json()["detail"].startswith("a backend service")


def test_unavailable_is_503_with_retry_after(caplog: pytest.LogCaptureFixture) -> None:
    for client in client_for(grpc.StatusCode.UNAVAILABLE, "connection refused"):
        response = client.get("/books")

        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert response.json() == {
            "detail": "a backend service is unavailable; retry shortly",
            "grpc_code": "UNAVAILABLE",
        }
    # What the client is not told, the operator can read in the log.
    assert "connection refused" in caplog.text


def test_only_unavailable_carries_retry_after() -> None:
    for client in client_for(grpc.StatusCode.DEADLINE_EXCEEDED):
        assert "Retry-After" not in client.get("/books").headers


def test_a_deadline_exceeded_is_a_gateway_timeout() -> None:
    for client in client_for(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"):
        response = client.get("/books/search", params={"q": "dune"})

        assert response.status_code == 504
        assert response.json()["grpc_code"] == "DEADLINE_EXCEEDED"


def test_an_unauthenticated_backend_answer_is_401_with_a_bearer_challenge() -> None:
    for client in client_for(grpc.StatusCode.UNAUTHENTICATED, "wrong username or password"):
        response = client.post("/auth/login", json={"username": "alice", "password": "guess"})

        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"


def test_a_client_error_without_details_names_its_code_in_words() -> None:
    for client in client_for(grpc.StatusCode.NOT_FOUND, ""):
        assert client.get("/books/1").json() == {"detail": "not found", "grpc_code": "NOT_FOUND"}


def test_an_rpc_error_without_a_code_is_a_bad_gateway(settings: Settings) -> None:
    clients = failing_clients(grpc.StatusCode.OK)

    def bare_error(request: object, *, timeout: float) -> None:
        raise grpc.RpcError("no code() on this one")

    clients.catalog.GetBook = bare_error
    with TestClient(create_app(settings, clients)) as client:
        response = client.get("/books/1")

    assert response.status_code == 502
    assert response.json()["grpc_code"] == "UNKNOWN"


def test_a_validation_error_does_not_echo_the_request(client: TestClient) -> None:
    response = client.post("/auth/register", json={"username": "alice", "password": "hunter2"})

    assert response.status_code == 422
    assert "hunter2" not in response.text
    assert response.json()["detail"][0]["loc"] == ["body", "password"]
