"""Sagas and circuit breakers in traces and metrics: spans for steps, events for breaker decisions."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode
from prometheus_client import REGISTRY
from sqlalchemy import Engine

from bookstore.platform.database import make_engine
from bookstore.resilience import (
    BreakerRegistry,
    BreakerSettings,
    CircuitBreaker,
    CircuitBreakerInterceptor,
    CircuitOpenError,
)
from bookstore.resilience.timeline import ManualClock
from bookstore.saga import Backoff, SagaDefinition, SagaLog, SagaOrchestrator, SagaState, Step, StepContext

from ...fakes import FakeRpcError
from ..resilience.grpc_fakes import FakeCall
from .conftest import Recorded


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'order.db'}")
    yield engine
    engine.dispose()


def ok(_context: StepContext) -> None:
    pass


def declined(_context: StepContext) -> None:
    raise FakeRpcError(grpc.StatusCode.FAILED_PRECONDITION, "card declined")


def orchestrator(engine: Engine, saga: str, pay: Step) -> SagaOrchestrator:
    definition = SagaDefinition(saga, [Step("reserve", ok, ok), pay], deadline_s=10.0)
    return SagaOrchestrator(
        SagaLog(engine, owner="test"), [definition], backoff=Backoff(initial_s=0, max_s=0)
    )


def executions(saga: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("saga_executions_total", {"saga": saga, "outcome": outcome}) or 0.0


def parent_of(span: ReadableSpan, spans: list[ReadableSpan]) -> ReadableSpan:
    assert span.parent is not None
    return next(s for s in spans if s.context.span_id == span.parent.span_id)


def test_a_saga_run_is_a_span_with_a_child_span_per_step(recorded: Recorded, engine: Engine) -> None:
    saga = f"happy_{uuid.uuid4().hex[:6]}"
    saga_id = str(uuid.uuid4())
    outcome = orchestrator(engine, saga, Step("pay", ok, ok)).run(saga, saga_id, {"total": 1})
    assert outcome.state is SagaState.SUCCEEDED
    spans = recorded.spans()
    run = recorded.named(f"saga {saga}")
    assert run.attributes is not None
    assert run.attributes["saga.id"] == saga_id and run.attributes["saga.outcome"] == "succeeded"
    steps = [s for s in spans if s.name.startswith("step ")]
    assert [s.name for s in steps] == ["step reserve", "step pay"]
    assert all(parent_of(s, spans) is run for s in steps)
    assert executions(saga, "succeeded") == 1
    assert REGISTRY.get_sample_value("saga_execution_duration_seconds_count", {"saga": saga}) == 1


def test_a_failed_step_and_its_compensations_show_as_failed_and_compensating_spans(
    recorded: Recorded, engine: Engine
) -> None:
    saga = f"declined_{uuid.uuid4().hex[:6]}"
    outcome = orchestrator(engine, saga, Step("pay", declined, ok)).run(saga, str(uuid.uuid4()), {})
    assert outcome.state is SagaState.COMPENSATED
    pay = recorded.named("step pay")
    assert pay.status.status_code is StatusCode.ERROR
    assert [event.name for event in pay.events] == ["exception"]
    compensation = recorded.named("compensate reserve")
    assert compensation.attributes is not None and compensation.attributes["saga.attempt"] == 1
    run = recorded.named(f"saga {saga}")
    assert run.status.status_code is StatusCode.ERROR
    assert run.attributes is not None and run.attributes["saga.failed_step"] == "pay"
    assert executions(saga, "compensated") == 1
    labels = {"saga": saga, "step": "reserve", "outcome": "succeeded"}
    assert REGISTRY.get_sample_value("saga_compensations_total", labels) == 1


def test_with_tracing_off_sagas_are_still_counted(engine: Engine) -> None:
    saga = f"untraced_{uuid.uuid4().hex[:6]}"
    orchestrator(engine, saga, Step("pay", ok, ok)).run(saga, str(uuid.uuid4()), {})
    assert executions(saga, "succeeded") == 1



def failing() -> None:
    raise FakeRpcError(grpc.StatusCode.UNAVAILABLE, "down")


def test_breaker_decisions_are_events_on_the_callers_span(recorded: Recorded) -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(
        "payment",
        BreakerSettings(consecutive_failures=1, open_timeout_s=5, half_open_max_calls=1),
        clock=clock,
    )
    with recorded.tracer.start_as_current_span("step pay"):
        with pytest.raises(FakeRpcError):
            breaker.call(failing)
        with pytest.raises(CircuitOpenError):
            breaker.call(failing)
        clock.advance(6.0)
        breaker.call(lambda: None)
    events = [(event.name, dict(event.attributes or {})) for event in recorded.named("step pay").events]
    names = [name for name, _ in events]
    assert names == [
        "circuit_breaker.state_change",
        "circuit_breaker.rejected",
        "circuit_breaker.state_change",
        "circuit_breaker.trial_admitted",
        "circuit_breaker.state_change",
    ]
    assert events[0][1] == {"breaker": "payment", "from": "CLOSED", "to": "OPEN", "generation": 1}
    assert events[1][1]["state"] == "OPEN" and events[1][1]["retry_after_s"] == pytest.approx(5.0)
    assert events[4][1]["to"] == "CLOSED"


def test_a_future_that_fails_on_grpcs_thread_puts_the_state_change_on_the_callers_span(
    recorded: Recorded,
) -> None:
    registry = BreakerRegistry(BreakerSettings(consecutive_failures=1))
    interceptor = CircuitBreakerInterceptor(registry, "payment")
    pending = FakeCall()
    details = grpc.ClientCallDetails()
    details.method, details.timeout = "/bookstore.rpc.v1.PaymentService/Pay", 2.0
    with recorded.tracer.start_as_current_span("step pay"):
        call = interceptor.intercept_unary_unary(lambda _details, _request: pending, details, "request")
        # gRPC finishes a ``.future()`` call on a thread of its own, where no span is current.
        finisher = threading.Thread(target=pending.fail, args=(grpc.StatusCode.UNAVAILABLE, "down"))
        finisher.start()
        finisher.join()
        assert call.exception() is not None
    events = [(event.name, dict(event.attributes or {})) for event in recorded.named("step pay").events]
    opened = {"breaker": "payment", "from": "CLOSED", "to": "OPEN", "generation": 1}
    assert events == [("circuit_breaker.state_change", opened)]


def test_a_breaker_without_a_current_span_decides_exactly_as_before() -> None:
    breaker = CircuitBreaker("catalog", BreakerSettings(consecutive_failures=1))
    with pytest.raises(FakeRpcError):
        breaker.call(failing)
    with pytest.raises(CircuitOpenError):
        breaker.call(failing)
