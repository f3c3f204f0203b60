"""Failed calls between services: who refused them, whose failure they are, what the wire says.

A circuit breaker (``bookstore.resilience``, week 8) is one of several parties that reason about
a failed call. The saga asks whether a refused call did anything (it did not: nothing to
compensate); a servicer passes a dependency's failure on to its own caller and says so in the
trailing metadata; the gateway turns a refusal into a 503 with a ``Retry-After``; the breaker
asks whether a failure counts against the service it guards. They share these words:

* ``State`` and ``CircuitOpenError``: a breaker's three states, and its refusal of a call that
  was never made, with the state that refused it and when to come back.
* The trailing metadata keys a refusal or a passed-on failure carries over the wire:
  ``bookstore-circuit``, ``bookstore-retry-after-s``, ``bookstore-dependency``.
* ``GrpcFailureClassifier``: which gRPC errors say the server is unwell (UNAVAILABLE,
  DEADLINE_EXCEEDED, INTERNAL, RESOURCE_EXHAUSTED) and which are answers from a working server.

**Why here, beside the generated stubs, and not in ``resilience/``.** These words belong to
the protocol between services, not to the breaker's machinery: the saga and the servicers'
status mapping use them without ever making a breaker. Kept on the ground floor, they import
nothing of the project, and whoever needs them (saga, servicers, gateway, the breaker itself)
imports them without loading the breaker, its interceptor and the channels it builds on.
The breaker's state machine stays free of gRPC: it calls ``BreakerSettings.is_failure`` and
never looks inside an error; this module's classifier is merely its default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum

import grpc


class State(Enum):
    CLOSED = "closed"
    """Calls pass through; their outcomes fill the sliding window."""
    OPEN = "open"
    """Calls are rejected at once with ``CircuitOpenError``, until ``open_timeout_s`` has passed."""
    HALF_OPEN = "half_open"
    """A few trial calls pass; their outcomes decide between CLOSED and OPEN."""


class CircuitOpenError(Exception):
    """The breaker refused the call without making it.

    ``retry_after_s`` is how long until an OPEN breaker admits trial calls. When the breaker
    is HALF_OPEN with every trial slot taken, the trials' verdict decides: it closes the breaker,
    or opens it for ``open_timeout_s``; and trials that stay silent are given up on once
    ``half_open_max_wait_s`` has passed. So the hint is the shorter of ``open_timeout_s`` and
    the time left until the trials are given up (with no bound on that wait: ``open_timeout_s``).
    """

    def __init__(self, name: str, retry_after_s: float, state: State = State.OPEN) -> None:
        self.name = name
        self.retry_after_s = retry_after_s
        self.state = state
        if state is State.OPEN:
            message = f"circuit {name!r} is open; trial calls in {retry_after_s:.3f} s"
        else:
            message = f"circuit {name!r} is half-open and all its trial calls are in flight"
        super().__init__(message)

    def __reduce__(self) -> tuple[type[CircuitOpenError], tuple[str, float, State]]:
        return type(self), (self.name, self.retry_after_s, self.state)


FailureClassifier = Callable[[Exception], bool]
"""Given an exception the protected call raised: does it count against the dependency?"""

CIRCUIT_METADATA_KEY = "bookstore-circuit"
"""Trailing metadata of a refused call: the name of the breaker that refused it."""
RETRY_AFTER_METADATA_KEY = "bookstore-retry-after-s"
"""Trailing metadata of a refused call: seconds until the breaker admits trial calls."""
DEPENDENCY_METADATA_KEY = "bookstore-dependency"
"""Trailing metadata of a failure a server passes on from one of its own dependencies: which
one (``payment.Pay``). The server itself worked: it made the call, cleaned up and answered."""

DEFAULT_FAILURE_CODES: frozenset[grpc.StatusCode] = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
"""Codes that say the dependency is down, slow or overloaded. Every other code (NOT_FOUND,
INVALID_ARGUMENT, ALREADY_EXISTS, FAILED_PRECONDITION, ...) is an answer from a working
server about the request, so it counts as a success. INTERNAL and RESOURCE_EXHAUSTED are
counted as the server's trouble, though a service may mean them per request (one input that
trips a bug, one client's quota): leave them out for such a service."""


@dataclass(frozen=True)
class GrpcFailureClassifier:
    """Counts a ``grpc.RpcError`` as a failure when its code is in ``failure_codes``.

    An error a server passes on from its own dependency is, by default, no failure of that
    server: its trailing metadata names a circuit (``bookstore-circuit``: the server's breaker
    refused a call to *its* dependency) or the dependency that failed (``bookstore-dependency``:
    the order service placed an order, payment answered UNAVAILABLE, the order service undid
    the reservation and answered). Either way the server is healthy and answered. Counting such
    answers would open the caller's breaker too, and cut off the methods that never needed the
    failing dependency (listing orders, while payment is down). A breaker judges its own
    dependency, not its dependency's dependencies.
    """

    failure_codes: frozenset[grpc.StatusCode] = DEFAULT_FAILURE_CODES
    other_errors_are_failures: bool = True
    """Whether an exception that is not a ``grpc.RpcError`` (a bug, a ``TimeoutError``, a
    connection refused by a non-gRPC client) counts as a failure."""
    passed_on_errors_are_failures: bool = False
    """Whether an error passed on from a dependency (``bookstore-circuit`` or
    ``bookstore-dependency`` trailing metadata) counts as a failure."""

    def __call__(self, error: Exception) -> bool:
        if isinstance(error, grpc.RpcError):
            code = getattr(error, "code", None)
            if not callable(code):
                return True  # an RpcError that carries no status cannot be told apart from an outage
            if code() not in self.failure_codes:
                return False
            return self.passed_on_errors_are_failures or not passed_on(error)
        return self.other_errors_are_failures


def grpc_failure_classifier(
    failure_codes: Iterable[grpc.StatusCode] = DEFAULT_FAILURE_CODES,
    *,
    other_errors_are_failures: bool = True,
    passed_on_errors_are_failures: bool = False,
) -> GrpcFailureClassifier:
    """A classifier for ``BreakerSettings.is_failure`` that judges gRPC errors by status code.

    ``grpc_failure_classifier()`` counts UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL and
    RESOURCE_EXHAUSTED, plus any non-gRPC exception, except an error the server passed on
    from its own dependency (see ``GrpcFailureClassifier``). An error it does not count passes through
    to the caller unchanged and is recorded as a success: the server answered.
    """
    return GrpcFailureClassifier(
        frozenset(failure_codes), other_errors_are_failures, passed_on_errors_are_failures
    )


def names_a_circuit(error: grpc.RpcError) -> bool:
    """Whether a failed call's trailing metadata says a circuit breaker refused it."""
    return _has_trailing_key(error, frozenset({CIRCUIT_METADATA_KEY}))


def passed_on(error: grpc.RpcError) -> bool:
    """Whether a failed call's trailing metadata says the server passed on a dependency's
    failure (``bookstore-dependency``) or its breaker's refusal (``bookstore-circuit``)."""
    return _has_trailing_key(error, _PASSED_ON_KEYS)


_PASSED_ON_KEYS = frozenset({CIRCUIT_METADATA_KEY, DEPENDENCY_METADATA_KEY})


def _has_trailing_key(error: grpc.RpcError, keys: frozenset[str]) -> bool:
    trailing = getattr(error, "trailing_metadata", None)
    try:
        pairs = trailing() if callable(trailing) else None
        return any(key in keys for key, _ in pairs or ())
    except Exception:  # a call object that cannot say: judge it by its code alone
        return False
