"""Breaker decisions as events on the current span, so that traces (week 10) show them.

A refused call, a half-open trial admitted and every change of state become events on the
span of the code that offered the call (``circuit_breaker.rejected``,
``circuit_breaker.trial_admitted``, ``circuit_breaker.state_change``): a trace of a failed
order shows, inside ``step pay``, that payment was never called because its breaker was open.

The breaker's state machine (``bookstore.resilience.breaker``) knows nothing of OpenTelemetry;
it reports its decisions to process-wide decision listeners, and ``bookstore.resilience``
adds ``record_on_current_span`` as one of them when it is imported. Without a recording span
(tracing off, or no span current) the event is dropped at once.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import trace


def record_on_current_span(event: str, attributes: Mapping[str, str | int | float]) -> None:
    """A ``DecisionListener``: ``event`` with ``attributes`` on the current span, if it records."""
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event(event, dict(attributes))
