"""The AdminService every process serves: set and clear faults, read call counters and breakers.

A process that keeps circuit breakers in front of its peers (the order service) hands the
servicer a ``BreakerSnapshots`` function, and ``GetStats`` reports each breaker's state with
the call counters: one RPC tells a notebook both what reached a service and what its callers
refused to send. The function is called on every ``GetStats``, so the answer is current.

The runtime stands below the circuit breakers (``bookstore.resilience``), so it does not name
their class: ``BreakerSnapshot`` here is the shape it reads (a Protocol), and
``bookstore.resilience.breaker.BreakerSnapshot`` has that shape.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Protocol

import grpc

from bookstore.platform.faults import Fault, FaultTable
from bookstore.platform.status import translate_errors
from bookstore.rpc.v1 import admin_pb2, admin_pb2_grpc


class _Named(Protocol):
    @property
    def name(self) -> str: ...


class _WindowCounts(Protocol):
    @property
    def calls(self) -> int: ...

    @property
    def failures(self) -> int: ...


class _Totals(Protocol):
    @property
    def rejected(self) -> int: ...


class BreakerSnapshot(Protocol):
    """What ``GetStats`` reads of one breaker's snapshot."""

    @property
    def name(self) -> str: ...

    @property
    def state(self) -> _Named: ...

    @property
    def generation(self) -> int: ...

    @property
    def window(self) -> _WindowCounts: ...

    @property
    def totals(self) -> _Totals: ...


BreakerSnapshots = Callable[[], Iterable[BreakerSnapshot]]
"""Returns a snapshot of every circuit breaker of the process, e.g. ``BreakerRegistry.snapshots``."""


def fault_to_pb(fault: Fault) -> admin_pb2.Fault:
    return admin_pb2.Fault(
        method=fault.method,
        error_rate=fault.error_rate,
        status_code=fault.status_code,
        latency_ms=fault.latency_ms,
        slow_rate=fault.slow_rate,
        cpu_ms=fault.cpu_ms,
    )


def breaker_to_pb(snapshot: BreakerSnapshot) -> admin_pb2.BreakerState:
    return admin_pb2.BreakerState(
        name=snapshot.name,
        state=snapshot.state.name,
        generation=snapshot.generation,
        window_calls=snapshot.window.calls,
        window_failures=snapshot.window.failures,
        rejected=snapshot.totals.rejected,
    )


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    def __init__(
        self, service: str, replica: int, table: FaultTable, breakers: BreakerSnapshots | None = None
    ) -> None:
        self._service = service
        self._replica = replica
        self._table = table
        self._breakers = breakers

    @translate_errors
    def InjectFault(
        self, request: admin_pb2.InjectFaultRequest, context: grpc.ServicerContext
    ) -> admin_pb2.InjectFaultResponse:
        f = request.fault
        fault = Fault(
            method=f.method,
            error_rate=f.error_rate,
            status_code=f.status_code or "UNAVAILABLE",
            latency_ms=f.latency_ms,
            # Unset means every call is slow: what a fault meant before slow_rate existed.
            slow_rate=f.slow_rate if f.HasField("slow_rate") else 1.0,
            cpu_ms=f.cpu_ms,
        )
        return admin_pb2.InjectFaultResponse(faults=[fault_to_pb(x) for x in self._table.set(fault)])

    @translate_errors
    def ClearFaults(
        self, request: admin_pb2.ClearFaultsRequest, context: grpc.ServicerContext
    ) -> admin_pb2.ClearFaultsResponse:
        return admin_pb2.ClearFaultsResponse(
            faults=[fault_to_pb(x) for x in self._table.clear(request.method)]
        )

    @translate_errors
    def GetStats(
        self, request: admin_pb2.GetStatsRequest, context: grpc.ServicerContext
    ) -> admin_pb2.GetStatsResponse:
        return admin_pb2.GetStatsResponse(
            service=self._service,
            replica=self._replica,
            pid=os.getpid(),
            calls_by_method=self._table.calls(),
            faults=[fault_to_pb(x) for x in self._table.active()],
            breakers=[breaker_to_pb(x) for x in self._breakers()] if self._breakers is not None else [],
        )
