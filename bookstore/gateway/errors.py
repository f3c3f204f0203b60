"""From gRPC status codes to HTTP statuses.

A service reports failure with a gRPC status code; the gateway's client sees it as a
``grpc.RpcError``. One exception handler turns every such error into an HTTP response,
so route functions contain no ``try``/``except`` at all: they call, and either return
the answer or let the error travel here.

| gRPC code | HTTP | meaning for the client |
|---|---|---|
| INVALID_ARGUMENT | 400 | fix the request; retrying it unchanged cannot succeed |
| NOT_FOUND | 404 | no such book or order (or not yours) |
| ALREADY_EXISTS, FAILED_PRECONDITION | 409 | the request conflicts with the current state |
| UNAUTHENTICATED | 401 | log in (again) |
| PERMISSION_DENIED | 403 | logged in, but not allowed |
| RESOURCE_EXHAUSTED | 429 | slow down |
| UNAVAILABLE | 503 + ``Retry-After`` | a backend is down or overloaded; retry later |
| DEADLINE_EXCEEDED | 504 | a backend did not answer in time |
| anything else | 502 | a backend failed |

``Retry-After`` is 1 second, except when a circuit breaker refused the call: then it is the
whole seconds until that breaker lets a trial call through, at least 1. The breaker is the
gateway's own (``CircuitOpenError``), or one in the backend, which says so in its answer's
trailing metadata (``bookstore-circuit``, ``bookstore-retry-after-s``): the order service's
breaker in front of payment, say. Such a refusal costs microseconds and is logged at debug
level only: an open breaker at a thousand requests a second would otherwise write a thousand
identical warnings a second, while its opening and closing are logged once each.

The body is ``{"detail": "...", "grpc_code": "NOT_FOUND"}``. For client errors
(4xx) the detail is the service's own message, which names the field at fault. For
server errors (5xx) it is a fixed sentence: the raw details of a failed connection name
internal addresses and library internals, which are none of a client's business. The
gateway log keeps them, next to the request that failed.

A method a path does not serve is 405 with ``Allow`` listing every method that path does
serve (RFC 9110 section 15.5.6). The router alone names only the methods of the first route
whose path matched: ``PUT /orders`` would say ``Allow: POST`` though ``GET /orders`` works.

Requests that do not fit the schemas never reach a service: FastAPI answers 422 with the
list of problems. The handler here renders that list without echoing the offending input,
for two reasons: the input may be a password, and it may hold text that has no UTF-8
encoding (a lone surrogate), which would crash the rendering of the error itself.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import grpc
from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection
from starlette.routing import Match

from bookstore.rpc.failures import RETRY_AFTER_METADATA_KEY, CircuitOpenError, names_a_circuit

log = logging.getLogger(__name__)

BAD_GATEWAY = 502
METHOD_NOT_ALLOWED = 405
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
REPLACEMENT_CHARACTER = "\ufffd"
RETRY_AFTER_S = 1

HTTP_STATUS_BY_GRPC: Mapping[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}

_PUBLIC_SERVER_ERROR_DETAIL: Mapping[grpc.StatusCode, str] = {
    grpc.StatusCode.UNAVAILABLE: "a backend service is unavailable; retry shortly",
    grpc.StatusCode.DEADLINE_EXCEEDED: "a backend service did not answer within its deadline",
}
_GENERIC_SERVER_ERROR_DETAIL = "a backend service failed; the gateway log has the details"
_CIRCUIT_OPEN_DETAIL = (
    "a backend service is failing, so the gateway stopped calling it for a moment (circuit open); "
    "retry after the Retry-After header's seconds"
)
_DOWNSTREAM_CIRCUIT_OPEN_DETAIL = (
    "a service behind the gateway is failing, so it is not being called for a moment (circuit open); "
    "retry after the Retry-After header's seconds"
)


class UpstreamContractError(Exception):
    """A backend answered, but with something its contract rules out (an order without a status)."""


def http_status_for(code: grpc.StatusCode | None) -> int:
    """The HTTP status for a gRPC code; 502 Bad Gateway for any code without a closer match."""
    if code is None:
        return BAD_GATEWAY
    return HTTP_STATUS_BY_GRPC.get(code, BAD_GATEWAY)


def status_code_of(error: grpc.RpcError) -> grpc.StatusCode | None:
    """The code of ``error``, or None: ``grpc.RpcError`` itself promises no ``code()`` method."""
    code = getattr(error, "code", None)
    return code() if callable(code) else None


def details_of(error: grpc.RpcError) -> str:
    details = getattr(error, "details", None)
    return (details() or "") if callable(details) else ""


def retry_after_for(refusal: CircuitOpenError) -> int:
    """``Retry-After`` for a refused call: the breaker's wait, in whole seconds, at least 1.

    An open circuit knows when it will try again; ``Retry-After`` takes whole seconds, so that
    is rounded up, and made at least 1 ("retry after 0 s" invites a client to hammer).
    """
    return max(1, math.ceil(refusal.retry_after_s))


def downstream_retry_after(error: grpc.RpcError) -> int:
    """``Retry-After`` for a call a backend's breaker refused: its ``bookstore-retry-after-s``,
    in whole seconds rounded up, at least 1; the default 1 when it sent none we can read."""
    trailing = getattr(error, "trailing_metadata", None)
    try:
        pairs = dict(trailing() or ()) if callable(trailing) else {}
        seconds = float(pairs.get(RETRY_AFTER_METADATA_KEY, RETRY_AFTER_S))
    except Exception:  # unreadable metadata is not worth failing the error response over
        return RETRY_AFTER_S
    return max(1, math.ceil(seconds)) if math.isfinite(seconds) else RETRY_AFTER_S


def headers_for(status: int, *, retry_after: int = RETRY_AFTER_S) -> dict[str, str]:
    """Headers a client needs to react well to ``status`` (RFC 9110 sections 11.6.1 and 10.2.3)."""
    if status == 401:
        return {"WWW-Authenticate": "Bearer"}
    if status == 503:
        return {"Retry-After": str(retry_after)}
    return {}


def rpc_error_response(error: grpc.RpcError, *, where: str = "") -> JSONResponse:
    """The HTTP response for a failed gRPC call."""
    if isinstance(error, CircuitOpenError):
        return circuit_open_response(error, where=where)
    code = status_code_of(error) or grpc.StatusCode.UNKNOWN
    status = http_status_for(code)
    details = details_of(error)
    code_name = code.name
    if code is grpc.StatusCode.UNAVAILABLE and names_a_circuit(error):
        log.debug("%s: a backend refused without calling on: %s", where or "request", details)
        return JSONResponse(
            status_code=status,
            content={"detail": _DOWNSTREAM_CIRCUIT_OPEN_DETAIL, "grpc_code": code_name},
            headers=headers_for(status, retry_after=downstream_retry_after(error)),
        )
    if status >= 500:
        log.warning("%s: backend call failed with %s: %s", where or "request", code_name, details)
        detail = _PUBLIC_SERVER_ERROR_DETAIL.get(code, _GENERIC_SERVER_ERROR_DETAIL)
    else:
        detail = details or code_name.replace("_", " ").lower()
    return JSONResponse(
        status_code=status,
        content={"detail": detail, "grpc_code": code_name},
        headers=headers_for(status),
    )


def circuit_open_response(error: CircuitOpenError, *, where: str = "") -> JSONResponse:
    """503 for a call a circuit breaker refused, with ``Retry-After`` from the breaker."""
    log.debug("%s: refused without calling: %s", where or "request", error)
    status = http_status_for(grpc.StatusCode.UNAVAILABLE)
    return JSONResponse(
        status_code=status,
        content={"detail": _CIRCUIT_OPEN_DETAIL, "grpc_code": grpc.StatusCode.UNAVAILABLE.name},
        headers=headers_for(status, retry_after=retry_after_for(error)),
    )


async def _on_rpc_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, grpc.RpcError)
    return rpc_error_response(error, where=f"{request.method} {request.url.path}")


async def _on_circuit_open(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, CircuitOpenError)
    return circuit_open_response(error, where=f"{request.method} {request.url.path}")


async def _on_upstream_contract_error(request: Request, error: Exception) -> JSONResponse:
    log.error("%s %s: %s", request.method, request.url.path, error)
    # The call itself succeeded, so the honest gRPC code is OK; the answer is what was wrong.
    return JSONResponse(
        status_code=BAD_GATEWAY,
        content={"detail": _GENERIC_SERVER_ERROR_DETAIL, "grpc_code": grpc.StatusCode.OK.name},
    )


def utf8_safe(value: Any) -> Any:
    """``value`` with every string made UTF-8 encodable (lone surrogates become U+FFFD)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "".join(REPLACEMENT_CHARACTER if _is_surrogate(char) else char for char in value)
        return value
    if isinstance(value, list | tuple):
        return [utf8_safe(item) for item in value]
    if isinstance(value, dict):
        return {utf8_safe(key): utf8_safe(item) for key, item in value.items()}
    return value


def _is_surrogate(char: str) -> bool:
    return "\ud800" <= char <= "\udfff"


def validation_problems(error: RequestValidationError) -> list[dict[str, Any]]:
    """FastAPI's list of validation problems, minus the echoed input, safe to encode."""
    problems = [
        {key: value for key, value in problem.items() if key != "input"} for problem in error.errors()
    ]
    safe: list[dict[str, Any]] = utf8_safe(jsonable_encoder(problems))
    return safe


async def _on_validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    return JSONResponse(status_code=422, content={"detail": validation_problems(error)})


def allowed_methods(connection: HTTPConnection) -> list[str]:
    """Every method that some route of the app serves at ``connection``'s path."""
    routes = connection.app.routes
    return [
        method
        for method in HTTP_METHODS
        if any(route.matches({**connection.scope, "method": method})[0] is Match.FULL for route in routes)
    ]


async def _on_http_exception(request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    response = await http_exception_handler(request, error)
    if error.status_code == METHOD_NOT_ALLOWED:
        response.headers["Allow"] = ", ".join(allowed_methods(request))
    return response


def install_error_handlers(app: FastAPI) -> None:
    """Make ``app`` answer every ``grpc.RpcError`` with the mapped HTTP status and body, every
    ``CircuitOpenError`` with 503, render validation errors (422) without echoing the request,
    and give a 405 the complete ``Allow`` header."""
    app.add_exception_handler(grpc.RpcError, _on_rpc_error)
    # A refusal made through the gRPC interceptor is both kinds of error; either handler gives 503.
    app.add_exception_handler(CircuitOpenError, _on_circuit_open)
    app.add_exception_handler(UpstreamContractError, _on_upstream_contract_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    # Every other HTTP error is FastAPI's own answer; a 405 also gets the complete Allow header.
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
