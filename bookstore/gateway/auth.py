"""Authentication at the edge: who is calling, decided once, before any service is asked.

A protected route declares ``user: CurrentUser`` and receives the verified claims of the
caller's token. The check is local (``bookstore.platform.tokens.verify_token``): an HMAC
over the token with the secret the gateway shares with the user service, plus the expiry,
issuer and algorithm. No network hop, so it costs microseconds per request.

Every refusal is ``401 Unauthorized`` with ``WWW-Authenticate: Bearer`` (RFC 6750), whether
the header is missing, uses another scheme, or carries a token that is malformed, signed
with another key, expired, or says ``alg: none``. The body says which, because a developer
staring at a 401 deserves to know why; it never echoes the token back.

The services behind the gateway receive the user's id as a plain request field. They trust
it because only the gateway can reach them; that trust is what "auth at the edge" means,
and why the backends must not be exposed on a public network.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from bookstore.domain.errors import Unauthenticated
from bookstore.platform.settings import Settings
from bookstore.platform.tokens import TokenClaims, verify_token

BEARER_CHALLENGE = {"WWW-Authenticate": "Bearer"}

# auto_error=False: this object only documents the scheme in OpenAPI (the "Authorize" button
# of /docs); `current_user` below decides and words every refusal itself.
bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearerAuth",
    bearerFormat="JWT",
    description="The access_token returned by POST /auth/login.",
)


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(status_code=401, detail=detail, headers=BEARER_CHALLENGE)


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header value; 401 for anything else."""
    if not authorization or not authorization.strip():
        raise unauthorized("missing Authorization header: send 'Authorization: Bearer <token>'")
    scheme, _, token = authorization.strip().partition(" ")
    # RFC 7235: the scheme name is case-insensitive.
    if scheme.lower() != "bearer":
        raise unauthorized("the Authorization header must use the Bearer scheme")
    token = token.strip()
    if not token:
        raise unauthorized("the Authorization header carries no token")
    return token


def authenticate(authorization: str | None, *, secret: str, now: float | None = None) -> TokenClaims:
    """Verify the bearer token in an ``Authorization`` header value; 401 saying why if it fails."""
    token = bearer_token(authorization)
    try:
        return verify_token(token, secret=secret, now=now)
    except Unauthenticated as error:
        raise unauthorized(error.message) from None


async def current_user(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> TokenClaims:
    """FastAPI dependency: the verified claims of the caller, read with the app's settings.

    ``async`` on purpose: it does no I/O, so it runs on the event loop instead of taking a
    worker thread for a few microseconds of HMAC.
    """
    settings: Settings = request.app.state.settings
    return authenticate(request.headers.get("authorization"), secret=settings.jwt_secret)


CurrentUser = Annotated[TokenClaims, Depends(current_user)]
