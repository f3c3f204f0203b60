"""HTTP telemetry for the gateway: a span and the ``http_*`` metrics for every request.

**What.** ``TelemetryMiddleware`` is plain ASGI middleware, the outermost layer the app's
own code sees. For each request it

* continues the caller's trace if the request carries ``traceparent`` (a browser or another
  service that traces), otherwise starts a new one: a SERVER span named after the *route
  template*, ``POST /orders`` or ``GET /orders/{order_id}``, made current while the route
  runs, so the gRPC calls the route makes become its children;
* counts ``http_requests_in_progress`` up and down, and at the end ``http_requests_total``
  and ``http_request_duration_seconds`` labelled with method, route template and status.

**Why the route template.** ``/orders/3f2c...`` would make a time series (and a span name)
per order. The template is known only after routing, so the span is renamed and the
metrics labelled when the response has been sent; a path no route matches is labelled
``unmatched``.

**Why its own middleware.** ``opentelemetry-instrumentation-asgi`` is not among the
course's dependencies, and the whole job is forty lines; this one also feeds the metrics
from the same clock reading.

**When not to.** ``/metrics`` and ``/healthz`` are left out: Prometheus and the launcher
poll them every second, and their spans would drown the requests anyone cares about.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from bookstore.observability import metrics, tracing

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

EXCLUDED_PATHS = frozenset({"/metrics", "/healthz"})
UNMATCHED = "unmatched"
_W3C = TraceContextTextMapPropagator()


class TelemetryMiddleware:
    """Traces and measures every HTTP request of ``app`` but those to ``excluded_paths``.

    ``tracer`` None means "this process's tracer, if tracing is on", and ``with_metrics`` None
    "if this process's metrics are on" (``bookstore.observability.metrics.enable_metrics``);
    both are looked up per request, so they hold whether telemetry was set up before or after
    the app was built.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        tracer: trace.Tracer | None = None,
        with_metrics: bool | None = None,
        excluded_paths: Iterable[str] = EXCLUDED_PATHS,
    ) -> None:
        self.app = app
        self._tracer = tracer
        self._with_metrics = with_metrics
        self._excluded = frozenset(excluded_paths)
        self._in_progress: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._excluded:
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        started = time.perf_counter()
        in_progress = None
        if self._with_metrics or (self._with_metrics is None and metrics.metrics_enabled()):
            in_progress = self._in_progress.get(method)
            if in_progress is None:
                in_progress = self._in_progress[method] = metrics.HTTP_IN_PROGRESS.labels(method)
            in_progress.inc()
        tracer = self._tracer or tracing.tracer()
        span = token = None
        if tracer is not None:
            parent = _parent(scope)
            span = tracer.start_span(
                method,
                parent,
                SpanKind.SERVER,
                {
                    "http.request.method": method,
                    "url.path": scope["path"],
                    "url.scheme": scope.get("scheme", "http"),
                },
            )
            token = otel_context.attach(trace.set_span_in_context(span, parent))
        status = 500  # what the client gets if the app raises before answering

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        except BaseException as error:
            status = 500
            if span is not None:
                span.record_exception(error)
            raise
        finally:
            route = route_template(scope)
            if span is not None:
                span.update_name(f"{method} {route}")
                span.set_attributes({"http.route": route, "http.response.status_code": status})
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))
                span.end()
                otel_context.detach(token)  # type: ignore[arg-type]
            if in_progress is not None:
                in_progress.dec()
                metrics.HTTP_REQUESTS.labels(method, route, str(status)).inc()
                metrics.HTTP_DURATION.labels(method, route).observe(time.perf_counter() - started)


def route_template(scope: Scope) -> str:
    """The path template of the route that matched (``/orders/{order_id}``), else ``unmatched``."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


def _parent(scope: Scope) -> otel_context.Context | None:
    carrier = None
    for key, value in scope.get("headers") or ():
        if key == b"traceparent" or key == b"tracestate":
            if carrier is None:
                carrier = {}
            carrier[key.decode("latin-1")] = value.decode("latin-1")
    return _W3C.extract(carrier) if carrier else None
