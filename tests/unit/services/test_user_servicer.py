"""UserService over a real store: username and password rules, login tokens, status codes."""

import uuid

import grpc
import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine

from bookstore.platform.tokens import verify_token
from bookstore.rpc.v1 import user_pb2
from bookstore.services.user.passwords import Passwords
from bookstore.services.user.servicer import UserServicer
from bookstore.services.user.store import UserStore

from .conftest import AbortedCall, FakeContext

SECRET = "test-secret-at-least-32-bytes-long!!"
TTL_S = 600
NOW = 1_700_000_000


@pytest.fixture
def servicer(sqlite_engine: Engine) -> UserServicer:
    store = UserStore(sqlite_engine, Passwords(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)))
    return UserServicer(store, jwt_secret=SECRET, jwt_ttl_s=TTL_S, clock=lambda: NOW)


def register(servicer: UserServicer, context: FakeContext, username: str, password: str) -> user_pb2.User:
    request = user_pb2.RegisterRequest(username=username, password=password)
    return servicer.Register(request, context).user  # type: ignore[arg-type]


def login(
    servicer: UserServicer, context: FakeContext, username: str, password: str
) -> user_pb2.LoginResponse:
    return servicer.Login(user_pb2.LoginRequest(username=username, password=password), context)  # type: ignore[arg-type]


def test_register_stores_the_username_in_lowercase(servicer: UserServicer, context: FakeContext) -> None:
    assert register(servicer, context, "  Alice.Smith ", "correct horse").username == "alice.smith"


@pytest.mark.parametrize("username", ["abc", "a" * 32, "a.b_c-d", "0day"])
def test_register_accepts_usernames_within_the_rules(
    servicer: UserServicer, context: FakeContext, username: str
) -> None:
    assert register(servicer, context, username, "correct horse").username == username


@pytest.mark.parametrize(
    "username", ["", "ab", "a" * 33, "-alice", ".alice", "al ice", "alice!", "ålice", "ali\nce"]
)
def test_register_rejects_a_username_outside_the_rules_naming_username(
    servicer: UserServicer, context: FakeContext, username: str
) -> None:
    with pytest.raises(AbortedCall) as call:
        register(servicer, context, username, "correct horse")
    assert call.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert call.value.details.startswith("username:")


@pytest.mark.parametrize("password", ["", "seven77", "x" * 129])
def test_register_rejects_a_password_of_the_wrong_length_without_echoing_it(
    servicer: UserServicer, context: FakeContext, password: str
) -> None:
    with pytest.raises(AbortedCall) as call:
        register(servicer, context, "alice", password)
    assert call.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert call.value.details.startswith("password:")
    if password:
        assert password not in call.value.details


def test_register_accepts_passwords_of_8_and_128_characters(
    servicer: UserServicer, context: FakeContext
) -> None:
    register(servicer, context, "alice", "x" * 8)
    register(servicer, context, "bob", "x" * 128)


def test_register_rejects_a_taken_username_in_any_case(servicer: UserServicer, context: FakeContext) -> None:
    register(servicer, context, "alice", "correct horse")
    with pytest.raises(AbortedCall) as call:
        register(servicer, context, "ALICE", "another password")
    assert call.value.code is grpc.StatusCode.ALREADY_EXISTS
    assert call.value.details.startswith("username:")


def test_login_returns_a_bearer_token_for_the_user(servicer: UserServicer, context: FakeContext) -> None:
    alice = register(servicer, context, "alice", "correct horse")
    response = login(servicer, context, "alice", "correct horse")
    assert response.token_type == "bearer"
    assert response.expires_at_unix == NOW + TTL_S
    assert response.user == alice
    claims = verify_token(response.access_token, secret=SECRET, now=NOW)
    assert (claims.user_id, claims.username) == (alice.user_id, "alice")


def test_login_ignores_the_case_of_the_username(servicer: UserServicer, context: FakeContext) -> None:
    register(servicer, context, "alice", "correct horse")
    assert login(servicer, context, "Alice", "correct horse").user.username == "alice"


@pytest.mark.parametrize(
    ("username", "password"),
    [("alice", "battery staple"), ("mallory", "correct horse"), ("alice", "x" * 129)],
)
def test_login_answers_a_wrong_pair_with_one_unauthenticated_message(
    servicer: UserServicer, context: FakeContext, username: str, password: str
) -> None:
    register(servicer, context, "alice", "correct horse")
    with pytest.raises(AbortedCall) as call:
        login(servicer, context, username, password)
    assert call.value.code is grpc.StatusCode.UNAUTHENTICATED
    assert call.value.details == "username or password is wrong"


@pytest.mark.parametrize(
    ("username", "password", "field"), [("", "correct horse", "username"), ("alice", "", "password")]
)
def test_login_rejects_an_empty_field_as_invalid(
    servicer: UserServicer, context: FakeContext, username: str, password: str, field: str
) -> None:
    with pytest.raises(AbortedCall) as call:
        login(servicer, context, username, password)
    assert call.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert call.value.details.startswith(f"{field}:")


def test_get_user_returns_a_registered_user(servicer: UserServicer, context: FakeContext) -> None:
    alice = register(servicer, context, "alice", "correct horse")
    response = servicer.GetUser(user_pb2.GetUserRequest(user_id=alice.user_id.upper()), context)  # type: ignore[arg-type]
    assert response.user == alice


@pytest.mark.parametrize("user_id", ["", "not-a-uuid", "42"])
def test_get_user_rejects_an_id_that_is_not_a_uuid(
    servicer: UserServicer, context: FakeContext, user_id: str
) -> None:
    with pytest.raises(AbortedCall) as call:
        servicer.GetUser(user_pb2.GetUserRequest(user_id=user_id), context)  # type: ignore[arg-type]
    assert call.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert call.value.details.startswith("user_id:")


def test_get_user_of_an_unknown_id_is_not_found(servicer: UserServicer, context: FakeContext) -> None:
    with pytest.raises(AbortedCall) as call:
        servicer.GetUser(user_pb2.GetUserRequest(user_id=str(uuid.uuid4())), context)  # type: ignore[arg-type]
    assert call.value.code is grpc.StatusCode.NOT_FOUND
    assert call.value.details.startswith("user_id:")
