"""Fault injection: make a healthy service slow or failing, at run time, per method.

Resilience patterns (sagas in week 7, circuit breakers in week 8) only show their worth
when something breaks. Rather than editing service code, every service process runs this
server interceptor: before a call reaches the servicer it may sleep ``latency_ms`` (every
call, or a ``slow_rate`` fraction of them) and then, with probability ``error_rate``, end
the call with a chosen status code. The two draws are independent, so ``error_rate=0.3,
slow_rate=0.1`` fails 30% of calls and slows 10%, a few of them both. Faults are set and
cleared through the AdminService, which the cluster launcher exposes as
``cluster.inject_fault(...)``. The admin service and health checks are never faulted, so a
learner can always clear what they injected.

A fault may also burn ``cpu_ms`` of CPU time in :func:`burn_cpu` on the slowed calls. A sleep
and a busy loop add the same latency to a trace, but not to a profile: a sampling profiler
such as py-spy reports by default only threads that are running on a CPU, so it names
``burn_cpu`` and its line, while a sleeping thread counts as idle and shows only with
``--idle`` (week 10). Burning is measured in the calling thread's CPU time, so a loaded
machine makes the call longer in wall time but not in work done.

The interceptor also counts calls per method, which the notebooks use to show how a
round-robin client spreads calls over replicas.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import grpc

from bookstore.domain.errors import InvalidArgument

ANY_METHOD = "*"
EXEMPT_PREFIXES = ("/bookstore.rpc.v1.AdminService/", "/grpc.health.", "/grpc.reflection.")
FAULTABLE_CODES = frozenset(c.name for c in grpc.StatusCode if c is not grpc.StatusCode.OK)
MAX_CPU_MS = 10_000


@dataclass(frozen=True)
class Fault:
    method: str
    error_rate: float = 0.0
    status_code: str = "UNAVAILABLE"
    latency_ms: int = 0
    slow_rate: float = 1.0
    cpu_ms: int = 0

    def __post_init__(self) -> None:
        if not self.method:
            raise InvalidArgument("must name a method, or '*' for all", field="fault.method")
        if not 0.0 <= self.error_rate <= 1.0:
            raise InvalidArgument(f"must be between 0 and 1, got {self.error_rate}", field="fault.error_rate")
        if self.status_code not in FAULTABLE_CODES:
            raise InvalidArgument(
                f"must be a gRPC status name other than OK, got {self.status_code!r}",
                field="fault.status_code",
            )
        if not 0.0 <= self.slow_rate <= 1.0:
            raise InvalidArgument(f"must be between 0 and 1, got {self.slow_rate}", field="fault.slow_rate")
        if not 0 <= self.latency_ms <= 60_000:
            raise InvalidArgument(
                f"must be between 0 and 60000, got {self.latency_ms}", field="fault.latency_ms"
            )
        if not 0 <= self.cpu_ms <= MAX_CPU_MS:
            raise InvalidArgument(
                f"must be between 0 and {MAX_CPU_MS}, got {self.cpu_ms}", field="fault.cpu_ms"
            )


class Decision(NamedTuple):
    """What the interceptor does to one call: sleep, burn CPU, then fail with ``code`` if set."""

    delay_s: float
    cpu_s: float
    code: grpc.StatusCode | None


def burn_cpu(seconds: float) -> int:
    """Keep this thread busy for ``seconds`` of its own CPU time: the injected hot spot.

    A pure-Python loop holds the GIL and runs on a CPU, so a sampling profiler finds this
    frame on top of the stack in nearly every sample taken during the call.
    """
    deadline = time.thread_time() + seconds
    rounds = 0
    while time.thread_time() < deadline:
        for i in range(4096):
            rounds += i * i  # the hot line: nearly every sample of a slowed call lands here
    return rounds


class FaultTable:
    """The active faults of one process, and its call counters. Thread-safe."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, Fault] = {}
        self._calls: Counter[str] = Counter()
        self._rng = rng or random.Random()

    def set(self, fault: Fault) -> list[Fault]:
        with self._lock:
            self._faults[fault.method] = fault
            return list(self._faults.values())

    def clear(self, method: str = "") -> list[Fault]:
        with self._lock:
            if method:
                self._faults.pop(method, None)
            else:
                self._faults.clear()
            return list(self._faults.values())

    def active(self) -> list[Fault]:
        with self._lock:
            return list(self._faults.values())

    def calls(self) -> dict[str, int]:
        with self._lock:
            return dict(self._calls)

    def decide(self, method: str) -> Decision:
        """Count a call to ``method``; return its delay, its CPU burn and the code to fail with, if any."""
        with self._lock:
            self._calls[method] += 1
            fault = self._faults.get(method) or self._faults.get(ANY_METHOD)
            if fault is None:
                return Decision(0.0, 0.0, None)
            slow = self._rng.random() < fault.slow_rate
            fails = self._rng.random() < fault.error_rate
        return Decision(
            fault.latency_ms / 1000 if slow else 0.0,
            fault.cpu_ms / 1000 if slow else 0.0,
            grpc.StatusCode[fault.status_code] if fails else None,
        )


class FaultInjectionInterceptor(grpc.ServerInterceptor):
    def __init__(self, table: FaultTable, sleep: Callable[[float], None] = time.sleep) -> None:
        self._table = table
        self._sleep = sleep

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        full_method: str = handler_call_details.method  # type: ignore[attr-defined]
        if handler is None or handler.unary_unary is None or full_method.startswith(EXEMPT_PREFIXES):
            return handler
        method = full_method.rsplit("/", 1)[-1]
        behaviour = handler.unary_unary
        table, sleep = self._table, self._sleep

        def faulty(request: Any, context: grpc.ServicerContext) -> Any:
            delay, cpu, code = table.decide(method)
            if delay:
                sleep(delay)
            if cpu:
                burn_cpu(cpu)
            if code is not None:
                context.abort(code, f"injected fault on {method}")
            return behaviour(request, context)

        return grpc.unary_unary_rpc_method_handler(
            faulty,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
