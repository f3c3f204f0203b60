"""A gRPC client interceptor that traces and measures every unary call this process makes.

**What it does per call.** It starts a CLIENT span, child of whatever span is current (an
HTTP request in the gateway, a saga step in the order service), and sends that span's
context along as the ``traceparent`` metadata entry, one line of W3C Trace Context::

    traceparent: 00-<32 hex trace id>-<16 hex span id of this client span>-<flags, 01 = sampled>

The server's interceptor (``grpc_server``) reads it and makes its SERVER span a child of
this one; that parent link is all it takes for two processes' spans to form one trace. The
span ends when the call does, with ``rpc.grpc.status_code`` and, for any code but OK, an
error status (a client cannot tell a refusal from a failure: it reports both). The same
call feeds ``grpc_client_handled_total`` and ``grpc_client_handling_seconds``.

**Where it sits.** ``bookstore.platform.channels.open_channel`` puts it on every channel it
opens, *inside* the circuit breaker's interceptor: a call the breaker refuses never leaves
the process, so it gets no client span; the refusal is an event on the caller's span
instead (``bookstore.resilience.breaker``).

**Blocking and future calls alike.** A blocking call is finished when the continuation
returns, so ``add_done_callback`` ends the span at once, before the stub returns; a
``.future()`` call ends its span from gRPC's thread when it finishes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from bookstore.observability import metrics
from bookstore.observability.business import message_attributes
from bookstore.observability.grpc_server import EXEMPT_PREFIXES, split_method
from bookstore.rpc.calls import changed

_OK = grpc.StatusCode.OK


@dataclass
class _Plan:
    span_name: str
    attributes: dict[str, str]
    service: str
    method: str
    duration: Any = None
    handled: dict[grpc.StatusCode, Any] | None = None


def traceparent(span_context: trace.SpanContext) -> str:
    """The W3C ``traceparent`` value naming ``span_context`` as the parent."""
    return f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{span_context.trace_flags:02x}"


class TelemetryClientInterceptor(grpc.UnaryUnaryClientInterceptor):
    """Traces (with ``tracer``) and/or measures (``with_metrics``) the unary calls of a channel."""

    def __init__(self, tracer: trace.Tracer | None, *, with_metrics: bool = True) -> None:
        self._tracer = tracer
        self._with_metrics = with_metrics
        self._plans: dict[str, _Plan | None] = {}

    def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.ClientCallDetails, Any], Any],
        client_call_details: grpc.ClientCallDetails,
        request: Any,
    ) -> Any:
        full_method: str | bytes = client_call_details.method
        if isinstance(full_method, bytes):
            full_method = full_method.decode("ascii", errors="replace")
        try:
            plan = self._plans[full_method]
        except KeyError:
            plan = self._plans[full_method] = self._plan(full_method)
        if plan is None:
            return continuation(client_call_details, request)
        started = time.perf_counter()
        span = None
        if self._tracer is not None:
            span = self._tracer.start_span(plan.span_name, None, SpanKind.CLIENT, plan.attributes)
            business = message_attributes(request)
            if business:
                span.set_attributes(business)
            client_call_details = _with_trace_context(client_call_details, span.get_span_context())
        try:
            outcome = continuation(client_call_details, request)
        except BaseException as error:
            _finish(plan, span, started, grpc.StatusCode.UNKNOWN, error)
            raise

        def finished(call: Any) -> None:
            code, error = _outcome(call)
            _finish(plan, span, started, code, error)

        outcome.add_done_callback(finished)
        return outcome

    def _plan(self, full_method: str) -> _Plan | None:
        if full_method.startswith(EXEMPT_PREFIXES):
            return None
        service, method = split_method(full_method)
        plan = _Plan(
            span_name=f"{service}/{method}",
            attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": method},
            service=service,
            method=method,
        )
        if self._with_metrics:
            plan.duration = metrics.GRPC_CLIENT_DURATION.labels(service, method)
            plan.handled = {}
        return plan


def _with_trace_context(
    details: grpc.ClientCallDetails, span_context: trace.SpanContext
) -> grpc.ClientCallDetails:
    entries = [("traceparent", traceparent(span_context))]
    if span_context.trace_state:
        entries.append(("tracestate", span_context.trace_state.to_header()))
    metadata = (*details.metadata, *entries) if details.metadata else tuple(entries)
    return changed(details, metadata=metadata)


def _outcome(call: Any) -> tuple[grpc.StatusCode, BaseException | None]:
    if call.cancelled():
        return grpc.StatusCode.CANCELLED, None
    try:
        error = call.exception()
    except Exception as unreadable:  # a call object that cannot say how it ended
        return grpc.StatusCode.UNKNOWN, unreadable
    if error is None:
        return _OK, None
    code = error.code() if isinstance(error, grpc.Call) else None
    return (code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN), error


def _finish(
    plan: _Plan, span: trace.Span | None, started: float, code: grpc.StatusCode, error: BaseException | None
) -> None:
    seconds = time.perf_counter() - started
    if span is not None:
        span.set_attribute("rpc.grpc.status_code", code.value[0])
        if code is not _OK:
            details = error.details() if isinstance(error, grpc.Call) else f"{type(error).__name__}: {error}"
            span.set_status(Status(StatusCode.ERROR, f"{code.name}: {details}"))
            if error is not None and not isinstance(error, grpc.RpcError):
                span.record_exception(error)
        span.end()
    if plan.handled is not None:
        counter = plan.handled.get(code)
        if counter is None:
            counter = plan.handled[code] = metrics.GRPC_CLIENT_HANDLED.labels(
                plan.service, plan.method, code.name
            )
        counter.inc()
        plan.duration.observe(seconds)
