"""From domain errors to gRPC status codes.

A servicer method decorated with ``@translate_errors`` may raise any ``BookstoreError``;
the caller then receives the matching status code with a message naming the field. Any
other exception is a bug: it is logged with its traceback and reported as INTERNAL without
leaking internals to the caller.
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
            context.abort(code or grpc.StatusCode.UNKNOWN, f"downstream: {details}")
        except Exception:
            log.exception("unhandled error in %s", method.__name__)
            context.abort(grpc.StatusCode.INTERNAL, "internal error; see the service log")
        raise AssertionError("unreachable: context.abort raises")

    return wrapper
