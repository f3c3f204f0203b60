"""A gRPC server interceptor that traces and measures every unary call: one span, three metrics.

**What it does per call.** It reads the caller's trace context from the ``traceparent``
metadata entry (W3C Trace Context, put there by ``grpc_client``), starts a SERVER span as
that context's child, makes it current while the servicer runs (so spans the servicer
starts, and calls it makes, are its children), and ends it with the status code. The span
is named ``package.Service/Method`` and carries ``rpc.system``, ``rpc.service``,
``rpc.method`` and ``rpc.grpc.status_code`` (the OpenTelemetry semantic conventions), plus
``user.id`` / ``order.id`` when the request or response names them. The same call feeds
``grpc_server_handled_total`` and ``grpc_server_handling_seconds``.

**Why not the stock instrumentation.** ``opentelemetry-instrumentation-grpc`` makes the same
spans and more: it wraps the servicer context, records peer addresses, and needs its own
channel wrapper (``grpcext``) on the client side. This one fits in a file a learner can
read, puts the business ids (``user.id``, ``order.id``) on the spans, and feeds the metrics
from the same clock reading, so a process pays one interceptor, not two. It starts spans
with ``start_span`` (no context-manager machinery) and prepares attributes once per method.
Measured here (``benchmarks/bench_tracing.py``), the per-call CPU of the two is close: what
a span costs is mostly the SDK's span itself and its export, which batching and the lean
encoder (``otlp``) keep off the request path.

**Which status is an error.** By the conventions, a server span is an error only for codes
that mean the *server* failed (UNKNOWN, INTERNAL, UNAVAILABLE, DEADLINE_EXCEEDED,
UNIMPLEMENTED, DATA_LOSS); NOT_FOUND or INVALID_ARGUMENT are the server answering
correctly about a bad request. An exception the servicer did not turn into a status is
recorded on the span with its traceback.

**When not to.** Streaming calls pass through untraced (the course has none). Health
checks, reflection and the admin service are left out: they are the cluster's plumbing,
polled constantly, and would bury the traces anyone wants to read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from bookstore.observability import metrics
from bookstore.observability.business import MethodObserver, message_attributes, observer_for

EXEMPT_PREFIXES = ("/bookstore.rpc.v1.AdminService/", "/grpc.health.", "/grpc.reflection.")
SERVER_ERROR_CODES = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.DATA_LOSS,
    }
)
_W3C = TraceContextTextMapPropagator()
_OK = grpc.StatusCode.OK


@dataclass
class MethodPlan:
    """What is the same for every call of one method, worked out at its first call."""

    span_name: str
    attributes: dict[str, str]
    service: str
    method: str
    observer: MethodObserver | None
    duration: Any = None  # the histogram child of this method
    handled: dict[grpc.StatusCode, Any] | None = None  # counter children by code, made on first use


def split_method(full_method: str) -> tuple[str, str]:
    """``/bookstore.rpc.v1.OrderService/CreateOrder`` -> ``(bookstore.rpc.v1.OrderService, CreateOrder)``"""
    service, _, method = full_method.lstrip("/").rpartition("/")
    return service, method


def plan_for(full_method: str, *, with_metrics: bool) -> MethodPlan:
    service, method = split_method(full_method)
    plan = MethodPlan(
        span_name=f"{service}/{method}",
        attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": method},
        service=service,
        method=method,
        observer=observer_for(full_method),
    )
    if with_metrics:
        plan.duration = metrics.GRPC_SERVER_DURATION.labels(service, method)
        plan.handled = {}
    return plan


def parent_context(invocation_metadata: Any) -> otel_context.Context | None:
    """The caller's trace context from call metadata, or None when the caller sent none."""
    carrier = None
    for key, value in invocation_metadata or ():
        if key == "traceparent" or key == "tracestate":
            if carrier is None:
                carrier = {}
            carrier[key] = value
    return _W3C.extract(carrier) if carrier else None


class TelemetryServerInterceptor(grpc.ServerInterceptor):
    """Traces (with ``tracer``) and/or measures (``with_metrics``) the unary calls of a server."""

    def __init__(self, tracer: trace.Tracer | None, *, with_metrics: bool = True) -> None:
        self._tracer = tracer
        self._with_metrics = with_metrics
        self._plans: dict[str, MethodPlan | None] = {}

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        full_method: str = handler_call_details.method  # type: ignore[attr-defined]
        try:
            plan = self._plans[full_method]
        except KeyError:
            plan = (
                None
                if full_method.startswith(EXEMPT_PREFIXES)
                else plan_for(full_method, with_metrics=self._with_metrics)
            )
            self._plans[full_method] = plan
        if plan is None:
            return handler
        observed = self._observe(plan, handler.unary_unary, handler_call_details.invocation_metadata)  # type: ignore[attr-defined]
        return grpc.unary_unary_rpc_method_handler(
            observed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _observe(
        self, plan: MethodPlan, behaviour: Callable[[Any, Any], Any], metadata: Any
    ) -> Callable[[Any, Any], Any]:
        tracer = self._tracer

        def observed(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            observer = plan.observer
            if observer is not None:
                observer.begin()
            span = token = None
            if tracer is not None:
                parent = parent_context(metadata)
                span = tracer.start_span(plan.span_name, parent, SpanKind.SERVER, plan.attributes)
                business = message_attributes(request)
                if business:
                    span.set_attributes(business)
                token = otel_context.attach(trace.set_span_in_context(span, parent))
            response = None
            try:
                response = behaviour(request, context)
            except BaseException as error:
                code = _code(context)
                aborted = code is not _OK
                if not aborted:
                    code = grpc.StatusCode.UNKNOWN  # what gRPC answers for an exception it did not expect
                if span is not None:
                    _record_failure(span, code, aborted, context, error)
                raise
            else:
                code = _code(context)
                if span is not None:
                    if response is not None:
                        business = message_attributes(response)
                        if business:
                            span.set_attributes(business)
                    if code is not _OK and code in SERVER_ERROR_CODES:
                        span.set_status(Status(StatusCode.ERROR, f"{code.name}: {_details(context)}"))
                return response
            finally:
                seconds = time.perf_counter() - started
                if span is not None:
                    span.set_attribute("rpc.grpc.status_code", code.value[0])
                    span.end()
                    otel_context.detach(token)  # type: ignore[arg-type]
                if plan.handled is not None:
                    counter = plan.handled.get(code)
                    if counter is None:
                        counter = plan.handled[code] = metrics.GRPC_SERVER_HANDLED.labels(
                            plan.service, plan.method, code.name
                        )
                    counter.inc()
                    plan.duration.observe(seconds)
                if observer is not None:
                    observer.end(response, code, seconds)

        return observed


def _code(context: Any) -> grpc.StatusCode:
    """The status the call ends with: what the servicer set (or aborted with), else OK."""
    try:
        code = context.code()
    except AttributeError:  # a test double without code()
        return _OK
    if code is None:
        return _OK
    if isinstance(code, grpc.StatusCode):
        return code
    return grpc.StatusCode.UNKNOWN


def _details(context: Any) -> str:
    try:
        details = context.details()
    except AttributeError:
        return ""
    if isinstance(details, bytes):
        return details.decode("utf-8", errors="replace")
    return details or ""


def _record_failure(
    span: trace.Span, code: grpc.StatusCode, aborted: bool, context: Any, error: BaseException
) -> None:
    if not aborted:
        # Not an abort: the servicer raised and gRPC will answer UNKNOWN. That is a bug: keep its traceback.
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"UNKNOWN: {type(error).__name__}: {error}"))
        return
    # context.abort() raises a bare Exception after setting the status: the status is the story.
    description = f"{code.name}: {_details(context)}"
    if code in SERVER_ERROR_CODES:
        span.set_status(Status(StatusCode.ERROR, description))
    span.add_event("grpc.abort", {"rpc.grpc.status_code": code.value[0], "message": _details(context)})
