"""JSON Web Tokens: how the gateway knows who is calling without asking the user service.

At login the user service signs a token with a secret it shares with the gateway (HS256).
The token carries the user's id (``sub``) and an expiry (``exp``); the gateway checks the
signature and expiry on every request, locally, with no network hop. The price of that
speed: a token cannot be revoked before it expires, so keep lifetimes short.

Verification pins the algorithm: a token that says ``alg: none`` or that was signed with
another algorithm is refused, the classic JWT pitfall. The dates (``exp``, ``iat``, ``nbf``)
must be JSON numbers, as RFC 7519 defines a NumericDate: PyJWT reads them with ``int()``,
which would also take the string ``"1700000000"`` or ``true``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import jwt
from jwt.types import Options

from bookstore.domain.errors import Unauthenticated

ALGORITHM = "HS256"
NUMERIC_DATE_CLAIMS = ("exp", "iat", "nbf")
ISSUER = "bookstore-user-service"


@dataclass(frozen=True)
class TokenClaims:
    user_id: str
    username: str
    expires_at_unix: int


def issue_token(
    user_id: str, username: str, *, secret: str, ttl_s: int, now: float | None = None
) -> tuple[str, int]:
    """Return a signed token and its expiry (unix seconds)."""
    issued = int(time.time() if now is None else now)
    expires = issued + ttl_s
    claims = {"sub": user_id, "name": username, "iat": issued, "exp": expires, "iss": ISSUER}
    return jwt.encode(claims, secret, algorithm=ALGORITHM), expires


def verify_token(token: str, *, secret: str, now: float | None = None) -> TokenClaims:
    """Check signature, algorithm, issuer and expiry; raise ``Unauthenticated`` saying why."""
    # PyJWT compares against its own clock; with an explicit `now` (tests) we check expiry below.
    options: Options = {"require": ["sub", "exp", "iat"], "verify_exp": now is None}
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], issuer=ISSUER, options=options)
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("the token has expired", field="authorization") from None
    except jwt.InvalidTokenError as error:
        raise Unauthenticated(f"the token is invalid: {error}", field="authorization") from None
    for claim in NUMERIC_DATE_CLAIMS:
        if claim in claims and not is_numeric_date(claims[claim]):
            raise Unauthenticated(
                f"the token is invalid: its {claim} claim is not a number", field="authorization"
            )
    if now is not None and claims["exp"] <= now:
        raise Unauthenticated("the token has expired", field="authorization")
    if not isinstance(claims["sub"], str) or not claims["sub"]:
        raise Unauthenticated("the token names no user", field="authorization")
    return TokenClaims(
        user_id=claims["sub"], username=str(claims.get("name", "")), expires_at_unix=int(claims["exp"])
    )


def is_numeric_date(value: object) -> bool:
    """A JSON number (seconds since the epoch); not a string, not a boolean (``True`` is an int)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
