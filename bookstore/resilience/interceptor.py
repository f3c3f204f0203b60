"""A gRPC client interceptor that puts a circuit breaker in front of every call to a service.

**What.** ``protected_channel("ipv4:127.0.0.1:7005", "payment", registry)`` is a channel like
any other: stubs built on it are used exactly as before (``stub.Pay(request, timeout=2)``,
``.with_call``, ``.future``). Underneath, every unary call passes the breaker that
``registry`` keeps for the payment service. While that breaker is OPEN the call is not made:
the stub raises ``CircuitOpenRpcError`` at once, a ``grpc.RpcError`` with code UNAVAILABLE
whose details say the circuit is open and when it tries again. Code that already copes with
UNAVAILABLE (the gateway's 503, a saga's compensation) copes with an open circuit unchanged;
code that wants more reads ``error.retry_after_s``.

**Why an interceptor.** The breaker belongs to the *connection* to a dependency, not to each
call site. Wrapping the channel once protects every stub and every method built on it, and
no call site can forget.

**One breaker per service, per class of operations, or per method.** A breaker answers "is
this dependency healthy?". Usually the dependency is the service: when payment is down, every
method of it is down. But when one method fails alone (a slow search index behind
``SearchBooks`` while ``GetBook`` is fine), a shared breaker would let the broken method cut
off the healthy ones; name the service in ``per_method`` and each of its methods gets a
breaker of its own (``"catalog/SearchBooks"``). In between, ``operation_classes`` sorts a
service's methods into classes that fail together, each with its breaker: the order
service's reads (``"order/reads"``: a database lookup) and writes (``"order/writes"``: a saga
through inventory and payment), so that failing creates cannot cut off reading orders.

**How outcomes reach the breaker.** In the breaker's two steps: ``breaker.admit()`` before
the call gives a ``Ticket`` (or refuses), and the ticket is settled with the outcome. gRPC
hands an interceptor a *continuation* that returns a call object, not the response. For a
blocking call that object is already finished, and a failure does not raise here: it comes
back as a finished call whose ``result()`` raises. So the interceptor settles the ticket from
the finished call (its ``exception()``) before handing it back, and the breaker has counted a
blocking call before the stub returns. A ``.future()`` call settles its ticket when it
finishes, from gRPC's thread, through ``add_done_callback``: the ticket carries everything the
breaker needs, whichever thread settles it, and the settling runs in a copy of the caller's
context (``contextvars``), so a change of state it causes is recorded on the caller's span,
not dropped for want of one in gRPC's thread. A call the caller cancels gets no verdict (the
breaker counts it as abandoned).

**Deadlines stay inside.** The call's own ``timeout`` travels with it through the breaker, so
a slow dependency ends the call with DEADLINE_EXCEEDED, and the breaker counts that as a
failure. A timer wrapped around the stub from outside would cancel the call instead, which the
breaker cannot judge. A call made without a timeout gets ``default_timeout_s`` if one is set.

**When not to.** Streaming calls pass unguarded: a stream has no single outcome to judge. Do
not put the health checks or admin calls of a service behind its breaker: they are how one
learns the service is back. And see the package docstring for when a breaker itself is the
wrong tool.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import grpc

from bookstore.platform.channels import open_channel
from bookstore.platform.settings import Settings
from bookstore.resilience.breaker import (
    BreakerSettings,
    BreakerSnapshot,
    CircuitBreaker,
    StateListener,
    Ticket,
)
from bookstore.rpc.calls import changed
from bookstore.rpc.failures import CIRCUIT_METADATA_KEY, RETRY_AFTER_METADATA_KEY, CircuitOpenError, State

log = logging.getLogger(__name__)

# The variable that sets each BreakerSettings field (the README lists them with their defaults).
BREAKER_VARIABLES = {
    "window_size": "BOOKSTORE_BREAKER_WINDOW_SIZE",
    "failure_rate_threshold": "BOOKSTORE_BREAKER_FAILURE_RATE",
    "minimum_calls": "BOOKSTORE_BREAKER_MINIMUM_CALLS",
    "consecutive_failures": "BOOKSTORE_BREAKER_CONSECUTIVE_FAILURES",
    "open_timeout_s": "BOOKSTORE_BREAKER_OPEN_TIMEOUT_S",
    "half_open_max_calls": "BOOKSTORE_BREAKER_HALF_OPEN_CALLS",
    "half_open_max_wait_s": "BOOKSTORE_BREAKER_HALF_OPEN_MAX_WAIT_S",
}


# ----------------------------------------------------------------------------- the refusal


class CircuitOpenRpcError(CircuitOpenError, grpc.RpcError, grpc.Call, grpc.Future):
    """A call the breaker refused, dressed as the finished, failed gRPC call it stands for.

    It is a ``grpc.RpcError`` with ``code()`` UNAVAILABLE, so every handler of gRPC errors
    handles it; a ``CircuitOpenError``, so ``except CircuitOpenError`` catches refusals made
    with or without gRPC; and a finished ``grpc.Call`` and ``grpc.Future``, as gRPC's own
    failed calls are, so ``.with_call`` and ``.future`` callers get what they expect.
    ``retry_after_s`` says how long until the breaker admits trial calls (when it is half-open
    with every trial slot taken, a hint: see ``CircuitOpenError``); the trailing metadata
    carries the same.
    """

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return f"{self.args[0]}; retry_after_s={self.retry_after_s:.3f}"

    def initial_metadata(self) -> tuple[tuple[str, str], ...]:
        return ()

    # grpc-stubs types RpcError's and Call's trailing_metadata differently; gRPC returns these pairs.
    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:  # type: ignore[override]
        return ((CIRCUIT_METADATA_KEY, self.name), (RETRY_AFTER_METADATA_KEY, f"{self.retry_after_s:.3f}"))

    # grpc.RpcContext: a refused call was never active.
    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> float | None:  # type: ignore[override]  # gRPC: None without a deadline
        return None

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback: Callable[[], None]) -> bool:
        return False  # gRPC's answer for a call that has already terminated

    # grpc.Future: done, and failed with itself.
    def cancelled(self) -> bool:
        return False

    def running(self) -> bool:
        return False

    def done(self) -> bool:
        return True

    def result(self, timeout: float | None = None) -> Any:
        raise self

    def exception(self, timeout: float | None = None) -> CircuitOpenRpcError:
        return self

    def traceback(self, timeout: float | None = None) -> Any:
        return self.__traceback__

    def add_done_callback(self, fn: Callable[[Any], None]) -> None:
        fn(self)


# ----------------------------------------------------------------------------- the registry


def breaker_settings_from(settings: Settings) -> BreakerSettings:
    """The ``BOOKSTORE_BREAKER_*`` settings as ``BreakerSettings``; a bad value names its variable.

    A variable left unset keeps ``BreakerSettings``' default, the one place the defaults live.
    """
    chosen: dict[str, Any] = {
        "window_size": settings.breaker_window_size,
        "failure_rate_threshold": settings.breaker_failure_rate,
        "minimum_calls": settings.breaker_minimum_calls,
        "consecutive_failures": settings.breaker_consecutive_failures,
        "open_timeout_s": settings.breaker_open_timeout_s,
        "half_open_max_calls": settings.breaker_half_open_calls,
        "half_open_max_wait_s": settings.breaker_half_open_max_wait_s,
    }
    chosen = {field: value for field, value in chosen.items() if value is not None}
    # 0 in the environment means "off" and "no bound", which BreakerSettings spells None.
    for field in ("consecutive_failures", "half_open_max_wait_s"):
        if chosen.get(field) == 0:
            chosen[field] = None
    try:
        return BreakerSettings(**chosen)
    except ValueError as error:
        field = str(error).split(" ", 1)[0]
        variable = BREAKER_VARIABLES.get(field, "BOOKSTORE_BREAKER_*")
        raise ValueError(f"{variable}: {error}") from None


class BreakerRegistry:
    """The breakers of one process: one per service, or one per method of a service.

    A breaker is made on first use and kept for the life of the process, so everything that
    calls a service through this registry shares one judgement of it. ``settings`` applies to
    every breaker unless ``overrides`` names the service; ``per_method`` names the services
    whose methods each get a breaker of their own; ``operation_classes`` maps a service to
    ``{method: class}``, and the methods of one class share a breaker (a method it does not
    list shares the service's). Breaker names are ``"payment"``, per method
    ``"catalog/SearchBooks"``, per class ``"order/reads"``.
    """

    def __init__(
        self,
        settings: BreakerSettings | None = None,
        *,
        per_method: Iterable[str] = (),
        operation_classes: Mapping[str, Mapping[str, str]] | None = None,
        overrides: Mapping[str, BreakerSettings] | None = None,
        clock: Callable[[], float] = time.monotonic,
        listeners: Iterable[StateListener] = (),
    ) -> None:
        self.settings = settings if settings is not None else BreakerSettings()
        self.per_method = frozenset(per_method)
        self.operation_classes = {
            service: dict(classes) for service, classes in (operation_classes or {}).items()
        }
        self._overrides = dict(overrides or {})
        self._clock = clock
        self._listeners: tuple[StateListener, ...] = tuple(listeners)
        self._lock = threading.Lock()
        self._breakers: dict[str, CircuitBreaker] = {}

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        operation_classes: Mapping[str, Mapping[str, str]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        listeners: Iterable[StateListener] = (),
    ) -> BreakerRegistry:
        """A registry configured by ``BOOKSTORE_BREAKER_*`` (see ``bookstore.platform.settings``)."""
        return cls(
            breaker_settings_from(settings),
            per_method=settings.breaker_per_method,
            operation_classes=operation_classes,
            clock=clock,
            listeners=listeners,
        )

    def breaker(self, service: str, method: str | None = None) -> CircuitBreaker:
        """The breaker guarding ``service``: its ``method``'s if the service is judged per method,
        the method's class's if the service has operation classes, else the service's."""
        name = self.breaker_name(service, method)
        # A dict read is atomic; the lock is only needed to make a breaker exactly once.
        breaker = self._breakers.get(name)
        if breaker is None:
            with self._lock:
                breaker = self._breakers.get(name)
                if breaker is None:
                    breaker = CircuitBreaker(
                        name,
                        self._overrides.get(service, self.settings),
                        clock=self._clock,
                        listeners=self._listeners,
                    )
                    self._breakers[name] = breaker
        return breaker

    def breaker_name(self, service: str, method: str | None = None) -> str:
        """The name of the breaker that ``breaker(service, method)`` returns."""
        if method and service in self.per_method:
            return f"{service}/{method}"
        operation_class = self.operation_classes.get(service, {}).get(method or "")
        return f"{service}/{operation_class}" if operation_class else service

    def add_listener(self, listener: StateListener) -> None:
        """Call ``listener(name, old_state, new_state, generation)`` on every breaker's transitions."""
        with self._lock:
            self._listeners = (*self._listeners, listener)
            breakers = list(self._breakers.values())
        for breaker in breakers:
            breaker.add_listener(listener)

    def snapshots(self) -> list[BreakerSnapshot]:
        """A snapshot of every breaker made so far, by name."""
        return [breaker.snapshot() for breaker in self]

    def __iter__(self) -> Iterator[CircuitBreaker]:
        with self._lock:
            breakers = sorted(self._breakers.values(), key=lambda breaker: breaker.name)
        return iter(breakers)

    def __len__(self) -> int:
        return len(self._breakers)


def log_state_change(name: str, old: State, new: State, generation: int) -> None:
    """A ``StateListener`` that logs transitions: an opening as a warning, the rest as info."""
    level = logging.WARNING if new is State.OPEN else logging.INFO
    log.log(level, "circuit %r: %s -> %s (generation %d)", name, old.name, new.name, generation)


# ----------------------------------------------------------------------------- the interceptor


def _settle_finished(ticket: Ticket, outcome: grpc.Future) -> None:
    """Settle ``ticket`` with how a finished call ended: cancelled, failed or succeeded."""
    if outcome.cancelled():
        ticket.abandon()  # the caller gave up on it: no verdict on the dependency
        return
    try:
        error = outcome.exception()
    except Exception as unreadable:  # a call object that cannot say how it ended
        error = unreadable
    ticket.settle(error)


def _settle_in(caller: contextvars.Context, ticket: Ticket, outcome: grpc.Future) -> None:
    """``_settle_finished`` in the caller's context, whichever thread finished the call."""
    caller.run(_settle_finished, ticket, outcome)


class CircuitBreakerInterceptor(grpc.UnaryUnaryClientInterceptor):
    """Runs every unary call to ``service_name`` through that service's breaker in ``registry``.

    ``default_timeout_s`` is given to calls made without a timeout; ``None`` leaves them as
    they are (and a call that can wait forever can hold a thread forever).
    """

    def __init__(
        self, registry: BreakerRegistry, service_name: str, *, default_timeout_s: float | None = None
    ) -> None:
        self.registry = registry
        self.service_name = service_name
        self.default_timeout_s = default_timeout_s

    def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.ClientCallDetails, Any], Any],
        client_call_details: grpc.ClientCallDetails,
        request: Any,
    ) -> Any:
        breaker = self.registry.breaker(self.service_name, _method_name(client_call_details))
        try:
            ticket = breaker.admit()
        except CircuitOpenError as refusal:
            # The continuation is never called: failing fast is the whole point.
            return CircuitOpenRpcError(refusal.name, refusal.retry_after_s, refusal.state)
        try:
            outcome = continuation(self._with_deadline(client_call_details), request)
        except BaseException as error:
            ticket.settle(error)
            raise
        # A blocking call is finished already, so this runs now, before the stub returns; a
        # ``.future()`` call settles its ticket from gRPC's thread when it finishes, in the
        # caller's context, where the caller's span is current (breaker events go there).
        outcome.add_done_callback(functools.partial(_settle_in, contextvars.copy_context(), ticket))
        return outcome

    def _with_deadline(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        if details.timeout is not None or self.default_timeout_s is None:
            return details
        return changed(details, timeout=self.default_timeout_s)


def _method_name(details: grpc.ClientCallDetails) -> str:
    """``"/bookstore.rpc.v1.PaymentService/Pay"`` -> ``"Pay"``."""
    method: str | bytes = details.method
    if isinstance(method, bytes):
        method = method.decode("ascii", errors="replace")
    return method.rsplit("/", 1)[-1]


def protected_channel(
    target: str,
    service_name: str,
    registry: BreakerRegistry,
    *,
    default_timeout_s: float | None = None,
) -> grpc.Channel:
    """A round-robin channel to ``target`` whose unary calls pass ``service_name``'s breaker.

    Built on ``bookstore.platform.channels.open_channel``; closing it closes that channel.
    """
    interceptor = CircuitBreakerInterceptor(registry, service_name, default_timeout_s=default_timeout_s)
    return grpc.intercept_channel(open_channel(target), interceptor)
