"""UserService: validate, call the store, translate to protobuf.

The username and password rules live here, at the edge, as plain functions: the store
trusts that what reaches it has passed them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from bookstore.domain import validation as v
from bookstore.domain.errors import InvalidArgument, Unauthenticated
from bookstore.domain.models import User
from bookstore.platform.status import translate_errors
from bookstore.platform.tokens import issue_token
from bookstore.rpc.v1 import user_pb2, user_pb2_grpc
from bookstore.services.user.store import WRONG_CREDENTIALS, UserStore

USERNAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]{2,31}")
USERNAME_RULE = (
    "must be 3-32 characters: lowercase letters, digits, '_', '.' or '-', starting with a letter or digit"
)
MIN_PASSWORD_LEN = 8
MAX_PASSWORD_LEN = 128
TOKEN_TYPE = "bearer"


def normalize_username(value: str) -> str:
    """Lowercase and check a username, so "Alice" and "alice" are one account."""
    username = value.strip().lower()
    # fullmatch, not match with "$": "$" also matches before a trailing newline.
    if not USERNAME_PATTERN.fullmatch(username):
        raise InvalidArgument(USERNAME_RULE, field="username")
    return username


def require_password(value: str) -> str:
    """Check a new password's length; never echo it back. Spaces count: they are the user's."""
    if not MIN_PASSWORD_LEN <= len(value) <= MAX_PASSWORD_LEN:
        raise InvalidArgument(
            f"must be {MIN_PASSWORD_LEN}-{MAX_PASSWORD_LEN} characters, got {len(value)}", field="password"
        )
    return value


def user_to_pb(user: User) -> user_pb2.User:
    return user_pb2.User(user_id=user.user_id, username=user.username, created_at_unix=user.created_at_unix)


@dataclass(frozen=True)
class LoggedIn:
    """A successful login: who, and the signed token that says so until ``expires_at_unix``."""

    user: User
    access_token: str
    expires_at_unix: int


def register(store: UserStore, username: str, password: str) -> User:
    """Check the rules, then create the account (``AlreadyExists`` when the name is taken)."""
    return store.register(normalize_username(username), require_password(password))


def log_in(
    store: UserStore, username: str, password: str, *, jwt_secret: str, jwt_ttl_s: int, now: float
) -> LoggedIn:
    """Check the password and sign a token; ``Unauthenticated`` with one message for any mismatch."""
    name = v.require_text("username", username, max_len=200).lower()
    if not password:
        raise InvalidArgument("must not be empty", field="password")
    if len(password) > MAX_PASSWORD_LEN:
        # No account can have this password; refusing before the KDF bounds its cost.
        raise Unauthenticated(WRONG_CREDENTIALS)
    user = store.authenticate(name, password)
    token, expires_at = issue_token(user.user_id, user.username, secret=jwt_secret, ttl_s=jwt_ttl_s, now=now)
    return LoggedIn(user=user, access_token=token, expires_at_unix=expires_at)


class UserServicer(user_pb2_grpc.UserServiceServicer):
    def __init__(
        self,
        store: UserStore,
        *,
        jwt_secret: str,
        jwt_ttl_s: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._jwt_secret = jwt_secret
        self._jwt_ttl_s = jwt_ttl_s
        self._clock = clock

    @translate_errors
    def Register(
        self, request: user_pb2.RegisterRequest, context: grpc.ServicerContext
    ) -> user_pb2.RegisterResponse:
        return user_pb2.RegisterResponse(
            user=user_to_pb(register(self._store, request.username, request.password))
        )

    @translate_errors
    def Login(self, request: user_pb2.LoginRequest, context: grpc.ServicerContext) -> user_pb2.LoginResponse:
        session = log_in(
            self._store,
            request.username,
            request.password,
            jwt_secret=self._jwt_secret,
            jwt_ttl_s=self._jwt_ttl_s,
            now=self._clock(),
        )
        return user_pb2.LoginResponse(
            access_token=session.access_token,
            token_type=TOKEN_TYPE,
            expires_at_unix=session.expires_at_unix,
            user=user_to_pb(session.user),
        )

    @translate_errors
    def GetUser(
        self, request: user_pb2.GetUserRequest, context: grpc.ServicerContext
    ) -> user_pb2.GetUserResponse:
        user_id = v.require_uuid("user_id", request.user_id)
        return user_pb2.GetUserResponse(user=user_to_pb(self._store.get(user_id)))
