"""A domain error raised in the monolith gets the answer the gateway gives for the services' status."""

from __future__ import annotations

import json

import pytest

from bookstore.domain.errors import (
    AlreadyExists,
    BookstoreError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unauthenticated,
)
from bookstore.monolith.app import domain_error_response


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (InvalidArgument("must hold between 1 and 50 items", field="items"), 400, "INVALID_ARGUMENT"),
        (NotFound("no book with id 9", field="items[0].book_id"), 404, "NOT_FOUND"),
        (AlreadyExists("'ada' is taken", field="username"), 409, "ALREADY_EXISTS"),
        (FailedPrecondition("payment declined", field="amount_cents"), 409, "FAILED_PRECONDITION"),
        (Unauthenticated("username or password is wrong"), 401, "UNAUTHENTICATED"),
    ],
)
def test_each_domain_error_gets_the_gateways_status_and_body(
    error: BookstoreError, status: int, code: str
) -> None:
    answer = domain_error_response(error)
    assert answer.status_code == status
    assert json.loads(answer.body) == {"detail": str(error), "grpc_code": code}


def test_a_401_carries_the_bearer_challenge() -> None:
    assert domain_error_response(Unauthenticated("no")).headers["www-authenticate"] == "Bearer"
