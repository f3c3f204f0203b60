"""Fakes for the saga tests: a clock that moves only when told, and participants that keep books.

A ``Participant`` stands for a service such as inventory or payment. Like the real ones it
is idempotent per key: the work of one key is applied at most once, undone at most once,
and undoing a key that was never done succeeds and bars it for later. Its ledger lets a test
check the end state: what is still in effect, and how often anything was applied.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import grpc

from bookstore.resilience.timeline import ManualClock
from bookstore.saga import StepContext

from ...fakes import FakeRpcError


class FakeSleep:
    """Records each requested sleep and moves the fake clock by it; never waits."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.clock.advance(seconds)


class FakeWallClock:
    """Nanoseconds since the epoch for the log's leases; moves only when told."""

    def __init__(self) -> None:
        self.now_ns = 1_700_000_000 * 1_000_000_000

    def __call__(self) -> int:
        return self.now_ns

    def advance(self, seconds: float) -> None:
        self.now_ns += int(seconds * 1e9)


@dataclass(frozen=True)
class Call:
    participant: str
    kind: str  # "act" or "undo"
    key: str
    timeout_s: float
    attempt: int


@dataclass
class Fault:
    """One planned failure: raise ``error``, after doing the work if ``after_work``."""

    error: BaseException
    after_work: bool = False


@dataclass
class Participant:
    name: str
    journal: list[Call]
    clock: ManualClock
    duration_s: float = 0.0
    action_faults: list[Fault] = field(default_factory=list)
    compensation_faults: list[Fault] = field(default_factory=list)
    in_effect: set[str] = field(default_factory=set)
    barred: set[str] = field(default_factory=set)
    applied: Counter[str] = field(default_factory=Counter)
    undone: Counter[str] = field(default_factory=Counter)

    def act(self, ctx: StepContext) -> None:
        self.journal.append(Call(self.name, "act", ctx.idempotency_key, ctx.timeout_s, ctx.attempt))
        self.clock.advance(self.duration_s)
        fault = self.action_faults.pop(0) if self.action_faults else None
        if fault is not None and not fault.after_work:
            raise fault.error
        if ctx.idempotency_key in self.barred:
            raise FakeRpcError(grpc.StatusCode.FAILED_PRECONDITION, f"{ctx.idempotency_key} was cancelled")
        if ctx.idempotency_key not in self.in_effect and self.applied[ctx.idempotency_key] == 0:
            self.in_effect.add(ctx.idempotency_key)
            self.applied[ctx.idempotency_key] += 1
        if fault is not None:
            raise fault.error

    def undo(self, ctx: StepContext) -> None:
        self.journal.append(Call(self.name, "undo", ctx.idempotency_key, ctx.timeout_s, ctx.attempt))
        fault = self.compensation_faults.pop(0) if self.compensation_faults else None
        if fault is not None and not fault.after_work:
            raise fault.error
        if ctx.idempotency_key in self.in_effect:
            self.in_effect.discard(ctx.idempotency_key)
            self.undone[ctx.idempotency_key] += 1
        self.barred.add(ctx.idempotency_key)
        if fault is not None:
            raise fault.error
