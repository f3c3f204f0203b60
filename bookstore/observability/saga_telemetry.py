"""Telemetry of sagas: a span per saga run and per step, and the ``saga_*`` metrics.

The orchestrator (``bookstore.saga.orchestrator``) calls these at the moments that matter;
they never change what it does. In a trace the saga reads as a tree::

    order: OrderService/CreateOrder
      saga place_order                      saga.id, saga.outcome
        step reserve
          InventoryService/ReserveStock     (client span, then inventory's server span)
        step pay                            error: FAILED_PRECONDITION ...
        compensate reserve                  attempt 1
          InventoryService/ReleaseStock

A step that fails has its error on the span (its status and an ``exception`` event); a
compensation attempt is a span of its own, so retries show as a row of them. With tracing
off only the metrics are counted (a few microseconds per saga).
"""

from __future__ import annotations

import time
from types import TracebackType

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from bookstore.observability import metrics, tracing


class SagaRun:
    """One run of a saga (new or resumed): ``with SagaRun(...) as run: ...; run.finish(state)``.

    ``finish`` names the outcome (the saga's state: ``succeeded``, ``compensated``,
    ``compensating``); a run left by an exception counts as ``error``.
    """

    __slots__ = ("_outcome", "_span", "_started", "_token", "saga", "saga_id")

    def __init__(self, saga: str, saga_id: str, *, resumed: bool = False) -> None:
        self.saga = saga
        self.saga_id = saga_id
        self._outcome = "error"
        self._started = time.perf_counter()
        self._span: trace.Span | None = None
        self._token: object | None = None
        tracer = tracing.tracer()
        if tracer is not None:
            self._span = tracer.start_span(
                f"saga {saga}",
                kind=SpanKind.INTERNAL,
                attributes={"saga.name": saga, "saga.id": saga_id, "saga.resumed": resumed},
            )

    def __enter__(self) -> SagaRun:
        if self._span is not None:
            self._token = otel_context.attach(trace.set_span_in_context(self._span))
        return self

    def finish(self, outcome: str, *, failed_step: str | None = None, error: str = "") -> None:
        outcome = outcome.lower()  # a saga state's value (SUCCEEDED) as a label value (succeeded)
        self._outcome = outcome
        span = self._span
        if span is not None:
            span.set_attribute("saga.outcome", outcome)
            if failed_step:
                span.set_attributes({"saga.failed_step": failed_step, "saga.error": error})
                span.set_status(Status(StatusCode.ERROR, f"step {failed_step} failed: {error}"))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is not None:
            self._outcome = "error"
        metrics.SAGA_EXECUTIONS.labels(self.saga, self._outcome).inc()
        metrics.SAGA_DURATION.labels(self.saga).observe(time.perf_counter() - self._started)
        span = self._span
        if span is not None:
            if exc is not None:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            span.end()
            if self._token is not None:
                otel_context.detach(self._token)  # type: ignore[arg-type]


class StepSpan:
    """One attempt of a step or of its compensation; ``end(error)`` closes it."""

    __slots__ = ("_compensating", "_span", "_token", "saga", "step")

    def __init__(self, saga: str, step: str, *, attempt: int = 1, compensating: bool = False) -> None:
        self.saga = saga
        self.step = step
        self._compensating = compensating
        self._span: trace.Span | None = None
        self._token: object | None = None
        tracer = tracing.tracer()
        if tracer is not None:
            self._span = tracer.start_span(
                f"{'compensate' if compensating else 'step'} {step}",
                kind=SpanKind.INTERNAL,
                attributes={"saga.name": saga, "saga.step": step, "saga.attempt": attempt},
            )
            self._token = otel_context.attach(trace.set_span_in_context(self._span))

    def end(self, error: BaseException | None = None) -> None:
        if self._compensating:
            metrics.SAGA_COMPENSATIONS.labels(self.saga, self.step, "failed" if error else "succeeded").inc()
        span = self._span
        if span is None:
            return
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        span.end()
        otel_context.detach(self._token)  # type: ignore[arg-type]
        self._span = None
