"""From domain errors to gRPC status codes.

A servicer method decorated with ``@translate_errors`` may raise any ``BookstoreError``;
the caller then receives the matching status code with a message naming the field. Any
other exception is a bug: it is logged with its traceback and reported as INTERNAL without
leaking internals to the caller.

A failed downstream call (``grpc.RpcError``) is passed on with its code, and marked as passed
on: trailing metadata ``bookstore-dependency`` names the dependency that failed. The code
alone cannot tell "the order service is down" from "the order service is fine and says
payment is down", and a caller's circuit breaker must tell them apart: it judges the server
it calls, not that server's dependencies (``bookstore.rpc.failures.GrpcFailureClassifier``).
When a circuit breaker refused the call, the metadata also says so (``bookstore-circuit``)
and when to retry (``bookstore-retry-after-s``), so the caller's caller (the gateway) can
answer 503 with a ``Retry-After`` that means something. A failed CreateOrder whose order was
stored names it (``bookstore-order-id``), so a caller can tell the customer where to look.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TypeVar

import grpc

from bookstore.domain.errors import (
    AlreadyExists,
    BookstoreError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unauthenticated,
)
from bookstore.rpc.failures import (
    CIRCUIT_METADATA_KEY,
    DEPENDENCY_METADATA_KEY,
    RETRY_AFTER_METADATA_KEY,
)

log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[BookstoreError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
}

Servicer = TypeVar("Servicer")
Req = TypeVar("Req")
Resp = TypeVar("Resp")
Method = Callable[[Servicer, Req, grpc.ServicerContext], Resp]


def status_for(error: BookstoreError) -> grpc.StatusCode:
    for kind in type(error).__mro__:
        if kind in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[kind]  # type: ignore[index]
    return grpc.StatusCode.UNKNOWN


ORDER_ID_METADATA_KEY = "bookstore-order-id"
"""Trailing metadata of a failed CreateOrder whose order was stored: the order's id."""
UNNAMED_DEPENDENCY = "downstream"
"""``bookstore-dependency`` of a passed-on failure whose error does not say which call failed."""
FORWARDED_METADATA_KEYS = frozenset(
    {CIRCUIT_METADATA_KEY, RETRY_AFTER_METADATA_KEY, DEPENDENCY_METADATA_KEY, ORDER_ID_METADATA_KEY}
)


def forwarded_metadata(error: grpc.RpcError) -> tuple[tuple[str, str], ...]:
    """The trailing metadata to send with a downstream failure we pass on to our own caller.

    The breaker's and the order's entries the error carries (anything else a downstream
    server sent is its business), and always ``bookstore-dependency``: this failure is not ours.
    """
    trailing = getattr(error, "trailing_metadata", None)
    try:
        pairs = trailing() if callable(trailing) else None
        kept = tuple((key, str(value)) for key, value in pairs or () if key in FORWARDED_METADATA_KEYS)
    except Exception:  # a call object that cannot say: pass on only that it is not ours
        kept = ()
    if any(key == DEPENDENCY_METADATA_KEY for key, _ in kept):
        return kept
    return (*kept, (DEPENDENCY_METADATA_KEY, UNNAMED_DEPENDENCY))


def translate_errors(method: Method[Servicer, Req, Resp]) -> Method[Servicer, Req, Resp]:
    @functools.wraps(method)
    def wrapper(self: Servicer, request: Req, context: grpc.ServicerContext) -> Resp:
        try:
            return method(self, request, context)
        except BookstoreError as error:
            context.abort(status_for(error), str(error))
        except grpc.RpcError as error:
            # A downstream call failed and the servicer did not handle it: pass its code on.
            code = error.code() if callable(getattr(error, "code", None)) else None
            details = error.details() if callable(getattr(error, "details", None)) else ""
            context.set_trailing_metadata(forwarded_metadata(error))  # abort sends what was set before it
            context.abort(code or grpc.StatusCode.UNKNOWN, f"downstream: {details}")
        except Exception:
            log.exception("unhandled error in %s", method.__name__)
            context.abort(grpc.StatusCode.INTERNAL, "internal error; see the service log")
        raise AssertionError("unreachable: context.abort raises")

    return wrapper
