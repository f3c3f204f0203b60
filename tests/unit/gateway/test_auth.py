"""Authentication at the edge: which tokens open /orders and which get a 401."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient

from bookstore.gateway.auth import authenticate, bearer_token
from bookstore.gateway.clients import GatewayClients
from bookstore.platform.settings import Settings
from bookstore.platform.tokens import ALGORITHM, ISSUER, issue_token

from .fakes import bearer


def claims_for(user_id: str, *, expires_in_s: int = 600) -> dict[str, object]:
    now = int(time.time())
    return {"sub": user_id, "name": "mallory", "iat": now, "exp": now + expires_in_s, "iss": ISSUER}


def assert_refused(client: TestClient, headers: dict[str, str]) -> str:
    response = client.get("/orders", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    detail: str = response.json()["detail"]
    return detail


def test_a_valid_token_opens_the_orders_of_its_user(client: TestClient, settings: Settings) -> None:
    response = client.get("/orders", headers=bearer(str(uuid.uuid4()), settings))

    assert response.status_code == 200
    assert response.json() == {"orders": [], "next_page_token": ""}


def test_the_user_id_sent_to_the_order_service_is_the_tokens_subject(
    client: TestClient, settings: Settings, clients: GatewayClients
) -> None:
    user_id = str(uuid.uuid4())

    client.get("/orders", headers=bearer(user_id, settings))

    assert clients.order.calls[-1].request.user_id == user_id


def test_the_bearer_scheme_name_is_case_insensitive(client: TestClient, settings: Settings) -> None:
    token, _ = issue_token(str(uuid.uuid4()), "alice", secret=settings.jwt_secret, ttl_s=60)

    assert client.get("/orders", headers={"Authorization": f"bearer {token}"}).status_code == 200


def test_a_request_without_authorization_is_refused(client: TestClient) -> None:
    assert "missing Authorization header" in assert_refused(client, {})


def test_another_scheme_than_bearer_is_refused(client: TestClient) -> None:
    assert "Bearer scheme" in assert_refused(client, {"Authorization": "Basic YWxpY2U6c2VjcmV0"})


def test_a_bearer_header_without_a_token_is_refused(client: TestClient) -> None:
    assert "no token" in assert_refused(client, {"Authorization": "Bearer   "})


@pytest.mark.parametrize("garbage", [b"not-a-jwt", b"a.b.c", b"e30.e30.", b"x y z", "\U0001f642".encode()])
def test_a_malformed_token_is_refused(client: TestClient, garbage: bytes) -> None:
    response = client.get("/orders", headers={"Authorization": b"Bearer " + garbage})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "invalid" in response.json()["detail"]


def test_a_token_signed_with_another_secret_is_refused(client: TestClient) -> None:
    forged = jwt.encode(claims_for(str(uuid.uuid4())), "a-different-secret-" + "y" * 48, algorithm=ALGORITHM)

    assert "invalid" in assert_refused(client, {"Authorization": f"Bearer {forged}"})


def test_an_expired_token_is_refused(client: TestClient, settings: Settings) -> None:
    token, _ = issue_token(
        str(uuid.uuid4()), "alice", secret=settings.jwt_secret, ttl_s=60, now=time.time() - 3600
    )

    assert "expired" in assert_refused(client, {"Authorization": f"Bearer {token}"})


def test_an_unsigned_token_with_alg_none_is_refused(client: TestClient) -> None:
    unsigned = jwt.encode(claims_for(str(uuid.uuid4())), None, algorithm="none")

    assert "invalid" in assert_refused(client, {"Authorization": f"Bearer {unsigned}"})


def test_a_token_signed_with_the_right_secret_but_another_algorithm_is_refused(
    client: TestClient, settings: Settings
) -> None:
    # Algorithm pinning: only HS256 is accepted, even with the correct key.
    other_alg = jwt.encode(claims_for(str(uuid.uuid4())), settings.jwt_secret, algorithm="HS512")

    assert "invalid" in assert_refused(client, {"Authorization": f"Bearer {other_alg}"})


def test_a_token_from_another_issuer_is_refused(client: TestClient, settings: Settings) -> None:
    claims = {**claims_for(str(uuid.uuid4())), "iss": "someone-else"}
    token = jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM)

    assert "invalid" in assert_refused(client, {"Authorization": f"Bearer {token}"})


def test_a_token_without_a_subject_is_refused(client: TestClient, settings: Settings) -> None:
    claims = claims_for("")
    token = jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM)

    assert_refused(client, {"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
@pytest.mark.parametrize("odd", ["as_text", True, [1]])
def test_a_token_whose_dates_are_not_json_numbers_is_refused(
    client: TestClient, settings: Settings, claim: str, odd: object
) -> None:
    # RFC 7519 section 2: a NumericDate is a JSON number. PyJWT reads these claims with int(),
    # which takes the string "1700000000" (and True) as readily as the number.
    claims = claims_for(str(uuid.uuid4()))
    value = claims.get(claim, int(time.time()) - 60)
    claims[claim] = str(value) if odd == "as_text" else odd
    token = jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM)

    assert claim in assert_refused(client, {"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/orders"), ("POST", "/orders"), ("GET", f"/orders/{uuid.UUID(int=1)}")],
)
def test_every_orders_route_requires_a_token(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path, json={"items": [{"book_id": 1, "quantity": 1}]})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_an_unauthenticated_order_is_refused_before_its_body_is_judged(client: TestClient) -> None:
    # Callers without a token learn nothing about what a valid body looks like.
    assert client.post("/orders", json={"nonsense": True}).status_code == 401


def test_the_books_routes_need_no_token(client: TestClient) -> None:
    assert client.get("/books").status_code == 200


def test_the_order_service_is_not_called_when_authentication_fails(
    client: TestClient, clients: GatewayClients
) -> None:
    client.get("/orders", headers={"Authorization": "Bearer not-a-jwt"})

    assert clients.order.calls == []


def test_bearer_token_extracts_the_token_from_a_header_value() -> None:
    assert bearer_token("Bearer abc.def.ghi") == "abc.def.ghi"


def test_authenticate_accepts_a_fresh_token_and_refuses_it_once_expired() -> None:
    token, expires = issue_token("u-1", "alice", secret="s" * 32, ttl_s=60, now=1000)

    assert authenticate(f"Bearer {token}", secret="s" * 32, now=1030).user_id == "u-1"
    with pytest.raises(HTTPException) as refused:
        authenticate(f"Bearer {token}", secret="s" * 32, now=expires)
    assert refused.value.status_code == 401
    assert "expired" in refused.value.detail
