"""An embedded OTLP collector: receives every process's spans and answers queries about them.

**What.** A tracing backend does two jobs: it *receives* spans (OTLP, the OpenTelemetry
protocol, here over gRPC: ``TraceService/Export``) and it *answers questions* (this trace
by id; recent traces through a service or operation). Jaeger does both, in a container.
Where no container runs, this module does both in one small process (or thread): spans are
kept in memory, newest traces first, at most ``max_spans`` of them (the oldest traces go
first), and served as JSON over HTTP::

    GET /traces/<trace id>                           every span of one trace
    GET /traces?service=order&operation=...&limit=20 the latest traces through them (summaries)
    GET /spans?service=...&operation=...&limit=100   the latest matching spans
    GET /services                                    services that sent spans
    GET /stats                                       spans and traces held, spans dropped
    DELETE /traces                                   forget everything

``CollectorClient`` reads that API into ``SpanRecord`` dataclasses; notebooks plot them with
``bookstore.observability.plots.plot_waterfall``.

**Why keep spans raw.** Export calls arrive from every process, thousands of spans a
second under load. The collector files each span under its trace id as the protobuf it
received and converts it only when someone asks, so receiving stays cheap.

**When not to.** It forgets everything when it stops, holds only what fits in memory, and
has no sampling, search by attribute or retention policy: a teaching tool, and the reason
production systems run Jaeger, Tempo or an OpenTelemetry Collector.

Run it as ``python -m bookstore.observability.collector``: OTLP gRPC on ``BOOKSTORE_PORT``
(which also serves gRPC health), queries on ``BOOKSTORE_QUERY_PORT``, both on
``BOOKSTORE_HOST``; ``BOOKSTORE_COLLECTOR_MAX_SPANS`` bounds the memory (default 200000).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from concurrent import futures
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanProto
from opentelemetry.proto.trace.v1.trace_pb2 import Status as StatusProto

log = logging.getLogger(__name__)

DEFAULT_MAX_SPANS = 200_000
MAX_OTLP_MESSAGE_BYTES = 64 * 1024 * 1024
_KINDS = {
    SpanProto.SPAN_KIND_UNSPECIFIED: "UNSPECIFIED",
    SpanProto.SPAN_KIND_INTERNAL: "INTERNAL",
    SpanProto.SPAN_KIND_SERVER: "SERVER",
    SpanProto.SPAN_KIND_CLIENT: "CLIENT",
    SpanProto.SPAN_KIND_PRODUCER: "PRODUCER",
    SpanProto.SPAN_KIND_CONSUMER: "CONSUMER",
}
_STATUSES = {
    StatusProto.STATUS_CODE_UNSET: "UNSET",
    StatusProto.STATUS_CODE_OK: "OK",
    StatusProto.STATUS_CODE_ERROR: "ERROR",
}


# ----------------------------------------------------------------------------- the records


@dataclass(frozen=True)
class SpanEventRecord:
    name: str
    time_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SpanRecord:
    """One span as a tracing backend shows it. Ids are lowercase hex; ``parent_id`` None for a root."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    service: str
    kind: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)
    status: str = "UNSET"
    status_message: str = ""
    events: tuple[SpanEventRecord, ...] = ()

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9

    @property
    def is_error(self) -> bool:
        return self.status == "ERROR"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SpanRecord:
        events = tuple(SpanEventRecord(**event) for event in data.get("events", ()))
        return cls(**{**data, "events": events})


@dataclass(frozen=True)
class TraceSummary:
    """One trace in a listing: its root (or earliest) span, who took part, and whether anything failed."""

    trace_id: str
    root_name: str
    root_service: str
    services: tuple[str, ...]
    span_count: int
    start_ns: int
    end_ns: int
    error: bool

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TraceSummary:
        return cls(**{**data, "services": tuple(data["services"])})


def any_value(value: AnyValue) -> Any:
    """An OTLP attribute value as plain Python."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_of(value.kvlist_value.values)
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind)


def attributes_of(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    return {pair.key: any_value(pair.value) for pair in pairs}


def span_record(span: SpanProto, service: str) -> SpanRecord:
    return SpanRecord(
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_id=span.parent_span_id.hex() or None,
        name=span.name,
        service=service,
        kind=_KINDS.get(span.kind, "UNSPECIFIED"),
        start_ns=span.start_time_unix_nano,
        end_ns=span.end_time_unix_nano,
        attributes=attributes_of(span.attributes),
        status=_STATUSES.get(span.status.code, "UNSET"),
        status_message=span.status.message,
        events=tuple(
            SpanEventRecord(event.name, event.time_unix_nano, attributes_of(event.attributes))
            for event in span.events
        ),
    )


# ----------------------------------------------------------------------------- the store


class SpanStore:
    """Spans by trace, in arrival order of their traces; at most ``max_spans``. Thread-safe."""

    def __init__(self, max_spans: int = DEFAULT_MAX_SPANS) -> None:
        if max_spans < 1:
            raise ValueError(f"max_spans must be at least 1, got {max_spans}")
        self.max_spans = max_spans
        self._lock = threading.Lock()
        # trace id (bytes) -> [(service, span protobuf)], oldest trace first.
        self._traces: OrderedDict[bytes, list[tuple[str, SpanProto]]] = OrderedDict()
        self._count = 0
        self.dropped = 0
        self.received = 0

    def add(self, request: trace_service_pb2.ExportTraceServiceRequest) -> int:
        """File every span of an export request; returns how many."""
        added = 0
        with self._lock:
            for resource_spans in request.resource_spans:
                service = _service_of(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        spans = self._traces.get(span.trace_id)
                        if spans is None:
                            spans = self._traces[span.trace_id] = []
                        spans.append((service, span))
                        added += 1
            self._count += added
            self.received += added
            while self._count > self.max_spans and len(self._traces) > 1:
                _, evicted = self._traces.popitem(last=False)
                self._count -= len(evicted)
                self.dropped += len(evicted)
        return added

    def trace(self, trace_id: str) -> list[SpanRecord]:
        """The spans of one trace, earliest start first; [] if unknown."""
        try:
            key = bytes.fromhex(trace_id)
        except ValueError:
            return []
        with self._lock:
            spans = list(self._traces.get(key, ()))
        return sorted((span_record(span, service) for service, span in spans), key=lambda s: s.start_ns)

    def traces(self, service: str = "", operation: str = "", limit: int = 20) -> list[TraceSummary]:
        """Summaries of the latest traces with a span of ``service`` (and named ``operation``)."""
        found = []
        for trace_id, spans in self._newest_first():
            if any(_matches(s, span, service, operation) for s, span in spans):
                found.append(_summary(trace_id, spans))
                if len(found) >= limit:
                    break
        return found

    def spans(self, service: str = "", operation: str = "", limit: int = 100) -> list[SpanRecord]:
        """The latest spans of ``service`` named ``operation`` (either may be empty: any)."""
        found: list[SpanRecord] = []
        for _trace_id, spans in self._newest_first():
            for s, span in reversed(spans):
                if _matches(s, span, service, operation):
                    found.append(span_record(span, s))
                    if len(found) >= limit:
                        return found
        return found

    def services(self) -> list[str]:
        with self._lock:
            return sorted({service for spans in self._traces.values() for service, _ in spans})

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "spans": self._count,
                "traces": len(self._traces),
                "received": self.received,
                "dropped": self.dropped,
            }

    def clear(self) -> None:
        with self._lock:
            self._traces.clear()
            self._count = 0

    def _newest_first(self) -> list[tuple[bytes, list[tuple[str, SpanProto]]]]:
        with self._lock:
            return [(trace_id, list(spans)) for trace_id, spans in reversed(self._traces.items())]


def _service_of(attributes: Iterable[KeyValue]) -> str:
    for pair in attributes:
        if pair.key == "service.name":
            return str(any_value(pair.value))
    return "unknown_service"


def _matches(service: str, span: SpanProto, wanted_service: str, operation: str) -> bool:
    return (not wanted_service or service == wanted_service) and (not operation or span.name == operation)


def _summary(trace_id: bytes, spans: list[tuple[str, SpanProto]]) -> TraceSummary:
    ids = {span.span_id for _, span in spans}
    roots = [(s, span) for s, span in spans if not span.parent_span_id or span.parent_span_id not in ids]
    root_service, root = min(roots or spans, key=lambda pair: pair[1].start_time_unix_nano)
    return TraceSummary(
        trace_id=trace_id.hex(),
        root_name=root.name,
        root_service=root_service,
        services=tuple(sorted({s for s, _ in spans})),
        span_count=len(spans),
        start_ns=min(span.start_time_unix_nano for _, span in spans),
        end_ns=max(span.end_time_unix_nano for _, span in spans),
        error=any(span.status.code == StatusProto.STATUS_CODE_ERROR for _, span in spans),
    )


# ----------------------------------------------------------------------------- receiving: OTLP gRPC


class TraceServiceServicer(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, store: SpanStore) -> None:
        self.store = store

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self.store.add(request)
        return trace_service_pb2.ExportTraceServiceResponse()


# ----------------------------------------------------------------------------- answering: HTTP JSON


class _QueryHandler(BaseHTTPRequestHandler):
    store: SpanStore  # set on the subclass each server makes

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = {key: values[-1] for key, values in urllib.parse.parse_qs(url.query).items()}
        parts = [part for part in url.path.split("/") if part]
        try:
            limit = int(query.get("limit", "0") or 0)
        except ValueError:
            self._send(HTTPStatus.BAD_REQUEST, {"detail": "limit must be an integer"})
            return
        service, operation = query.get("service", ""), query.get("operation", "")
        if parts == ["healthz"]:
            self._send(HTTPStatus.OK, {"status": "ok"})
        elif parts == ["traces"]:
            summaries = self.store.traces(service, operation, limit or 20)
            self._send(HTTPStatus.OK, {"traces": [asdict(s) for s in summaries]})
        elif len(parts) == 2 and parts[0] == "traces":
            spans = self.store.trace(parts[1])
            if not spans:
                self._send(HTTPStatus.NOT_FOUND, {"detail": f"no trace {parts[1]}"})
            else:
                self._send(HTTPStatus.OK, {"trace_id": parts[1], "spans": [s.to_json() for s in spans]})
        elif parts == ["spans"]:
            spans = self.store.spans(service, operation, limit or 100)
            self._send(HTTPStatus.OK, {"spans": [s.to_json() for s in spans]})
        elif parts == ["services"]:
            self._send(HTTPStatus.OK, {"services": self.store.services()})
        elif parts == ["stats"]:
            self._send(HTTPStatus.OK, self.store.stats())
        else:
            self._send(HTTPStatus.NOT_FOUND, {"detail": f"no such resource: {url.path}"})

    def do_DELETE(self) -> None:
        if urllib.parse.urlsplit(self.path).path.rstrip("/") == "/traces":
            self.store.clear()
            self._send(HTTPStatus.OK, {"status": "cleared"})
        else:
            self._send(HTTPStatus.NOT_FOUND, {"detail": "only DELETE /traces"})

    def _send(self, status: HTTPStatus, body: Any) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("query: " + format, *args)


# ----------------------------------------------------------------------------- the whole collector


class EmbeddedCollector:
    """Receives OTLP on ``otlp_port`` and answers queries on ``query_port`` (0: free ports), in threads.

    ``with EmbeddedCollector() as collector:`` point ``OTEL_EXPORTER_OTLP_ENDPOINT`` at
    ``collector.otlp_endpoint`` and read with ``CollectorClient(collector.query_url)``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        otlp_port: int = 0,
        query_port: int = 0,
        *,
        max_spans: int = DEFAULT_MAX_SPANS,
    ) -> None:
        self.host = host
        self.store = SpanStore(max_spans)
        self._requested = (otlp_port, query_port)
        self._grpc: grpc.Server | None = None
        self._http: ThreadingHTTPServer | None = None
        self.health = health.HealthServicer()
        self.otlp_port = 0
        self.query_port = 0

    @property
    def otlp_endpoint(self) -> str:
        return f"http://{self.host}:{self.otlp_port}"

    @property
    def query_url(self) -> str:
        return f"http://{self.host}:{self.query_port}"

    def start(self) -> EmbeddedCollector:
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="otlp"),
            options=[("grpc.max_receive_message_length", MAX_OTLP_MESSAGE_BYTES)],
        )
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceServiceServicer(self.store), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        self.otlp_port = server.add_insecure_port(f"{self.host}:{self._requested[0]}")
        if self.otlp_port == 0:
            raise RuntimeError(f"could not bind {self.host}:{self._requested[0]} for OTLP")
        handler = type("QueryHandler", (_QueryHandler,), {"store": self.store})
        self._http = ThreadingHTTPServer((self.host, self._requested[1]), handler)
        self._http.daemon_threads = True
        self.query_port = int(self._http.server_address[1])
        # A short poll interval: stop() waits for the serving loop to notice, up to one interval.
        threading.Thread(
            target=self._http.serve_forever, args=(0.05,), name="collector-query", daemon=True
        ).start()
        server.start()
        self._grpc = server
        self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        return self

    def stop(self, grace_s: float = 1.0) -> None:
        if self._grpc is not None:
            self.health.enter_graceful_shutdown()
            self._grpc.stop(grace_s).wait()
            self._grpc = None
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    def __enter__(self) -> EmbeddedCollector:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ----------------------------------------------------------------------------- the client


class TraceQueryClient:
    """What every trace store's client shares: JSON over HTTP, and waiting for a trace to fill in.

    A subclass says how to read one trace (``trace``) and search for traces (``traces``); this
    waits until a trace is complete enough.
    """

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def trace(self, trace_id: str) -> list[SpanRecord]:
        raise NotImplementedError

    def traces(self, service: str, operation: str = "", limit: int = 20) -> list[TraceSummary]:
        raise NotImplementedError

    def wait_for_trace(
        self,
        trace_id: str,
        *,
        min_spans: int = 1,
        services: Iterable[str] = (),
        span_names: Iterable[tuple[str, str]] = (),
        timeout_s: float = 15.0,
        poll_s: float = 0.1,
    ) -> list[SpanRecord]:
        """Poll until the trace has ``min_spans`` spans from every one of ``services``, and a
        span for each ``(service, span name)`` in ``span_names``; its spans.

        Spans arrive in batches from each process, so a trace fills in over a second or so, and
        not in the order they started: a parent ends after its children, so it is often
        exported in a later batch. Counting spans is not enough to know a trace is whole: name
        the spans you are going to read. Raises ``TimeoutError`` saying what had arrived, and
        what was missing, by the deadline.
        """
        wanted = set(services)
        named = set(span_names)
        deadline = time.monotonic() + timeout_s
        while True:
            spans = self.trace(trace_id)
            missing = named - {(s.service, s.name) for s in spans}
            if len(spans) >= min_spans and wanted <= {s.service for s in spans} and not missing:
                return spans
            if time.monotonic() > deadline:
                seen = sorted({s.service for s in spans})
                raise TimeoutError(
                    f"trace {trace_id}: {len(spans)} spans from {seen} after {timeout_s:g} s; "
                    f"wanted {min_spans} spans from {sorted(wanted)}"
                    + (f", still missing {sorted(missing)}" if missing else "")
                )
            time.sleep(poll_s)

    def _get(self, path: str, *, missing_ok: bool = False, **params: Any) -> dict[str, Any]:
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v not in ("", None)})
        url = f"{self.url}{path}" + (f"?{query}" if query else "")
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as response:
                body: dict[str, Any] = json.loads(response.read())
                return body
        except urllib.error.HTTPError as error:
            if missing_ok and error.code == HTTPStatus.NOT_FOUND:
                return {}
            raise


class CollectorClient(TraceQueryClient):
    """Reads the embedded collector's query API: traces by id, by service and operation."""

    def trace(self, trace_id: str) -> list[SpanRecord]:
        """Every span of a trace received so far (earliest first); [] when none arrived yet."""
        body = self._get(f"/traces/{trace_id}", missing_ok=True)
        return [SpanRecord.from_json(s) for s in body.get("spans", ())] if body else []

    def traces(self, service: str = "", operation: str = "", limit: int = 20) -> list[TraceSummary]:
        body = self._get("/traces", service=service, operation=operation, limit=limit)
        return [TraceSummary.from_json(t) for t in body["traces"]]

    def spans(self, service: str = "", operation: str = "", limit: int = 100) -> list[SpanRecord]:
        body = self._get("/spans", service=service, operation=operation, limit=limit)
        return [SpanRecord.from_json(s) for s in body["spans"]]

    def services(self) -> list[str]:
        return list(self._get("/services")["services"])

    def stats(self) -> dict[str, int]:
        return dict(self._get("/stats"))

    def clear(self) -> None:
        request = urllib.request.Request(f"{self.url}/traces", method="DELETE")
        with urllib.request.urlopen(request, timeout=self.timeout_s):
            pass


# ----------------------------------------------------------------------------- as a child process


class CollectorProcess:
    """The collector run as ``python -m bookstore.observability.collector`` in a child process.

    What a launcher does: pick both ports, start it, wait until its OTLP port answers gRPC
    health and its query port answers ``/healthz``, hand ``otlp_endpoint`` to every service
    (``OTEL_EXPORTER_OTLP_ENDPOINT``) and ``query_url`` to whoever reads traces.
    """

    def __init__(
        self, log_path: Path, host: str = "127.0.0.1", *, max_spans: int = DEFAULT_MAX_SPANS
    ) -> None:
        from bookstore.platform.processes import free_port

        self.host = host
        self.otlp_port = free_port(host)
        self.query_port = free_port(host)
        self.log_path = log_path
        self.max_spans = max_spans
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def otlp_endpoint(self) -> str:
        return f"http://{self.host}:{self.otlp_port}"

    @property
    def query_url(self) -> str:
        return f"http://{self.host}:{self.query_port}"

    def start(self, timeout_s: float = 15.0) -> CollectorProcess:
        from bookstore.platform.processes import spawn

        env = {k: v for k, v in os.environ.items() if not k.startswith(("BOOKSTORE_", "OTEL_"))}
        env.update(
            PYTHONUNBUFFERED="1",
            BOOKSTORE_HOST=self.host,
            BOOKSTORE_PORT=str(self.otlp_port),
            BOOKSTORE_QUERY_PORT=str(self.query_port),
            BOOKSTORE_COLLECTOR_MAX_SPANS=str(self.max_spans),
        )
        self.process = spawn("bookstore.observability.collector", env, self.log_path)
        try:
            wait_until_ready(self.otlp_endpoint, self.query_url, timeout_s, process=self.process)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        from bookstore.platform.processes import terminate

        if self.process is not None:
            terminate([self.process.pid], reap={self.process.pid: self.process})
            self.process = None

    def client(self) -> CollectorClient:
        return CollectorClient(self.query_url)

    def __enter__(self) -> CollectorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_until_ready(
    otlp_endpoint: str,
    query_url: str,
    timeout_s: float = 15.0,
    *,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    """Poll until the collector's OTLP port is SERVING and its query API answers; raise if it is not."""
    deadline = time.monotonic() + timeout_s
    target = otlp_endpoint.removeprefix("http://")
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"the collector exited with status {process.returncode} during start-up")
            try:
                answer = stub.Check(health_pb2.HealthCheckRequest(), timeout=0.5)
                with urllib.request.urlopen(f"{query_url}/healthz", timeout=0.5):
                    pass
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except (grpc.RpcError, urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the collector at {otlp_endpoint} was not ready after {timeout_s:g} s")
            time.sleep(0.05)


# ----------------------------------------------------------------------------- the process


def main(environ: Mapping[str, str] | None = None) -> None:
    env = os.environ if environ is None else environ
    logging.basicConfig(
        level=env.get("BOOKSTORE_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s collector %(levelname)s %(name)s: %(message)s",
    )
    collector = EmbeddedCollector(
        env.get("BOOKSTORE_HOST", "127.0.0.1"),
        int(env.get("BOOKSTORE_PORT", "4317")),
        int(env.get("BOOKSTORE_QUERY_PORT", "0")),
        max_spans=int(env.get("BOOKSTORE_COLLECTOR_MAX_SPANS", str(DEFAULT_MAX_SPANS))),
    ).start()
    log.info("OTLP gRPC on %s, queries on %s", collector.otlp_endpoint, collector.query_url)
    from bookstore.platform.processes import wait_for_stop_signal

    wait_for_stop_signal(log)
    collector.stop()
    log.info("stopped")


if __name__ == "__main__":
    main()
