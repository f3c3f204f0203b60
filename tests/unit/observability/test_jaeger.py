"""Jaeger's query JSON read into the same span records as the embedded collector's."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from bookstore.observability.jaeger import JaegerClient, spans_of

TRACE = {
    "traceID": "0af7651916cd43dd8448eb211c80319c",
    "spans": [
        {
            "traceID": "0af7651916cd43dd8448eb211c80319c",
            "spanID": "00f067aa0ba902b7",
            "operationName": "bookstore.rpc.v1.PaymentService/Pay",
            "references": [
                {
                    "refType": "CHILD_OF",
                    "traceID": "0af7651916cd43dd8448eb211c80319c",
                    "spanID": "b7ad6b7169203331",
                }
            ],
            "startTime": 1_700_000_000_000_500,
            "duration": 1500,
            "tags": [
                {"key": "span.kind", "type": "string", "value": "server"},
                {"key": "rpc.method", "type": "string", "value": "Pay"},
                {"key": "otel.status_code", "type": "string", "value": "ERROR"},
                {"key": "otel.status_description", "type": "string", "value": "UNAVAILABLE: down"},
                {"key": "error", "type": "bool", "value": True},
            ],
            "logs": [
                {
                    "timestamp": 1_700_000_000_001_000,
                    "fields": [
                        {"key": "event", "type": "string", "value": "grpc.abort"},
                        {"key": "rpc.grpc.status_code", "type": "int64", "value": 14},
                    ],
                }
            ],
            "processID": "p2",
        },
        {
            "traceID": "0af7651916cd43dd8448eb211c80319c",
            "spanID": "b7ad6b7169203331",
            "operationName": "POST /orders",
            "references": [],
            "startTime": 1_700_000_000_000_000,
            "duration": 4000,
            "tags": [{"key": "span.kind", "type": "string", "value": "server"}],
            "logs": [],
            "processID": "p1",
        },
    ],
    "processes": {"p1": {"serviceName": "gateway", "tags": []}, "p2": {"serviceName": "payment", "tags": []}},
}


def test_a_jaeger_trace_becomes_span_records_earliest_first() -> None:
    root, pay = spans_of(TRACE)
    assert (root.name, root.service, root.parent_id, root.kind) == ("POST /orders", "gateway", None, "SERVER")
    assert pay.parent_id == root.span_id == "b7ad6b7169203331"
    assert pay.service == "payment"
    assert pay.start_ns == 1_700_000_000_000_500_000 and pay.duration_s == pytest.approx(0.0015)
    assert pay.status == "ERROR" and pay.status_message == "UNAVAILABLE: down"
    assert pay.attributes == {"rpc.method": "Pay"}
    (event,) = pay.events
    assert (event.name, event.attributes) == ("grpc.abort", {"rpc.grpc.status_code": 14})


class _Jaeger(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/api/traces/0af7"):
            body: Any = {"data": [TRACE]}
        elif self.path.startswith("/api/traces?"):
            body = {"data": [TRACE]}
        elif self.path == "/api/services":
            body = {"data": ["payment", "gateway"]}
        else:
            self.send_response(404)
            self.end_headers()
            return
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def jaeger() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Jaeger)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_jaeger_client_answers_like_the_collector_client(jaeger: str) -> None:
    client = JaegerClient(jaeger)
    assert [s.name for s in client.trace(TRACE["traceID"])] == [
        "POST /orders",
        "bookstore.rpc.v1.PaymentService/Pay",
    ]
    assert client.trace("f" * 32) == []
    (summary,) = client.traces("gateway")
    assert (summary.root_name, summary.services, summary.error) == (
        "POST /orders",
        ("gateway", "payment"),
        True,
    )
    assert client.services() == ["gateway", "payment"]
    assert len(client.wait_for_trace(TRACE["traceID"], services=["payment"], timeout_s=1)) == 2
