"""BOOKSTORE_CRASH_AT: parsed strictly, and the kill fires at exactly one point of one step."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from bookstore.resilience.timeline import ManualClock
from bookstore.saga import SagaEvent, Step, StepContext, StepEventKind
from bookstore.services.order.crash import MOMENTS, CrashPoint
from bookstore.services.order.store import OrderStore

from .order_fakes import Downstream, order_saga


def event(step: str, kind: StepEventKind) -> SagaEvent:
    return SagaEvent(saga_id="s-1", step=step, kind=kind, at=0.0)


def context(step: str) -> StepContext:
    return StepContext(
        saga_id="s-1",
        step=step,
        payload={},
        idempotency_key=f"s-1:{step}",
        deadline_at=1.0,
        clock=lambda: 0.0,
    )


def test_a_crash_point_reads_moment_and_step_and_nothing_means_no_crash() -> None:
    assert CrashPoint.parse("after:reserve") == CrashPoint("after", "reserve")
    assert str(CrashPoint.parse(" returned:pay ")) == "returned:pay"
    assert CrashPoint.parse("") is None


@pytest.mark.parametrize("spec", ["after", "after:", "later:pay", ":pay", "pay"])
def test_a_malformed_crash_point_is_refused_naming_the_moments(spec: str) -> None:
    with pytest.raises(ValueError, match="BOOKSTORE_CRASH_AT") as raised:
        CrashPoint.parse(spec)
    assert all(moment in str(raised.value) for moment in MOMENTS)


@pytest.mark.parametrize(
    ("moment", "kind"),
    [
        ("before", StepEventKind.STARTED),
        ("after", StepEventKind.SUCCEEDED),
        ("failed", StepEventKind.FAILED),
        ("compensating", StepEventKind.COMPENSATING),
        ("compensated", StepEventKind.COMPENSATED),
    ],
)
def test_the_hook_kills_at_its_logged_moment_of_its_step_only(moment: str, kind: StepEventKind) -> None:
    kills: list[str] = []
    hook = CrashPoint(moment, "pay").hook(kill=lambda: kills.append("dead"))
    for other in StepEventKind:
        if other is not kind:
            hook(event("pay", other))
    hook(event("reserve", kind))
    assert kills == []
    hook(event("pay", kind))
    assert kills == ["dead"]


def test_returned_kills_after_the_action_ran_and_leaves_other_steps_alone() -> None:
    done: list[str] = []
    point = CrashPoint("returned", "pay")
    pay = point.wrap(Step("pay", lambda ctx: done.append("charged")), kill=lambda: done.append("dead"))
    reserve = Step("reserve", lambda ctx: done.append("reserved"))
    assert point.wrap(reserve) is reserve
    pay.action(context("pay"))
    assert done == ["charged", "dead"]
    # No log event marks this moment, so the hook never fires for it.
    point.hook(kill=lambda: done.append("hook"))(event("pay", StepEventKind.SUCCEEDED))
    assert done == ["charged", "dead"]


def test_the_order_saga_refuses_a_crash_point_naming_a_step_it_does_not_have(sqlite_engine: Engine) -> None:
    with pytest.raises(ValueError, match="'ship'"):
        order_saga(
            Downstream.create(),
            OrderStore(sqlite_engine),
            sqlite_engine,
            ManualClock(1000.0),
            crash_at="after:ship",
        )
