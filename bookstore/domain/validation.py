"""Request validation shared by every service.

Every check raises ``InvalidArgument`` naming the offending field, so a learner who sends
``quantity: 0`` reads ``items[0].quantity: must be between 1 and 1000`` rather than a stack
trace. Validation happens before any write, which is half of "nothing is half-written".
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from bookstore.domain.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
# A page token is the offset of the next page in ASCII digits; the gateway documents this rule.
PAGE_TOKEN_MAX_DIGITS = 9


def require_text(field: str, value: str, *, min_len: int = 1, max_len: int = 200) -> str:
    """Return ``value`` stripped, or raise if it is empty or too long."""
    stripped = value.strip()
    if not stripped:
        raise InvalidArgument("must not be empty", field=field)
    if len(stripped) < min_len:
        raise InvalidArgument(f"must be at least {min_len} characters", field=field)
    if len(stripped) > max_len:
        raise InvalidArgument(f"must be at most {max_len} characters", field=field)
    return stripped


def require_int_range(field: str, value: int, *, low: int, high: int) -> int:
    if not low <= value <= high:
        raise InvalidArgument(f"must be between {low} and {high}, got {value}", field=field)
    return value


def require_id(field: str, value: int) -> int:
    """A positive integer id (books)."""
    if value <= 0:
        raise InvalidArgument(f"must be a positive id, got {value}", field=field)
    return value


def require_uuid(field: str, value: str) -> str:
    """A UUID string (users, orders); returned in canonical lowercase form."""
    if not value:
        raise InvalidArgument("must not be empty", field=field)
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise InvalidArgument(f"must be a UUID, got {value[:40]!r}", field=field) from None


def page_size(value: int, *, field: str = "page_size") -> int:
    """0 means the default; otherwise 1..MAX_PAGE_SIZE."""
    if value == 0:
        return DEFAULT_PAGE_SIZE
    return require_int_range(field, value, low=1, high=MAX_PAGE_SIZE)


def decode_page_token(token: str, *, field: str = "page_token") -> int:
    """Page tokens are opaque to clients; here they carry the offset of the next page."""
    if not token:
        return 0
    if not (token.isascii() and token.isdigit()) or len(token) > PAGE_TOKEN_MAX_DIGITS:
        raise InvalidArgument("is not a token this service issued", field=field)
    return int(token)


def encode_page_token(offset: int, total: int) -> str:
    return str(offset) if offset < total else ""


def require_distinct(field: str, values: Iterable[int]) -> None:
    seen: set[int] = set()
    for index, value in enumerate(values):
        if value in seen:
            raise InvalidArgument(f"duplicate id {value}", field=f"{field}[{index}]")
        seen.add(value)
