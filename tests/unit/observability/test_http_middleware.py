"""The gateway's HTTP telemetry: a span per request named by its route template, and http_* metrics."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import REGISTRY

from bookstore.gateway.app import create_app
from bookstore.observability.http import TelemetryMiddleware
from bookstore.platform.settings import Settings

from ..gateway.fakes import bearer, fake_clients
from .conftest import Recorded

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def build_app(recorded: Recorded) -> FastAPI:
    app = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False})

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, int]:
        if item_id == 0:
            raise HTTPException(status_code=503, detail="down")
        return {"item_id": item_id}

    @app.get("/crash")
    def crash() -> None:
        raise RuntimeError("a bug")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.add_middleware(TelemetryMiddleware, tracer=recorded.tracer, with_metrics=True)
    return app


@pytest.fixture
def client(recorded: Recorded) -> Iterator[TestClient]:
    with TestClient(build_app(recorded), raise_server_exceptions=False) as test_client:
        yield test_client


def requests_total(method: str, route: str, status: str) -> float:
    return (
        REGISTRY.get_sample_value("http_requests_total", {"method": method, "route": route, "status": status})
        or 0.0
    )


def test_a_request_gets_a_server_span_named_after_its_route_template(
    recorded: Recorded, client: TestClient
) -> None:
    assert client.get("/items/7").status_code == 200
    span = recorded.named("GET /items/{item_id}")
    assert span.kind is SpanKind.SERVER
    assert span.attributes is not None
    assert span.attributes["http.route"] == "/items/{item_id}"
    assert span.attributes["url.path"] == "/items/7"
    assert span.attributes["http.response.status_code"] == 200
    assert span.status.status_code is StatusCode.UNSET


def test_a_request_carrying_a_traceparent_continues_the_callers_trace(
    recorded: Recorded, client: TestClient
) -> None:
    client.get("/items/7", headers={"traceparent": PARENT})
    span = recorded.named("GET /items/{item_id}")
    assert f"{span.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert span.parent is not None and f"{span.parent.span_id:016x}" == "b7ad6b7169203331"


def test_a_5xx_answer_marks_the_span_failed(recorded: Recorded, client: TestClient) -> None:
    assert client.get("/items/0").status_code == 503
    assert recorded.named("GET /items/{item_id}").status.status_code is StatusCode.ERROR


def test_an_exception_in_a_route_is_recorded_and_counted_as_a_500(
    recorded: Recorded, client: TestClient
) -> None:
    before = requests_total("GET", "/crash", "500")
    assert client.get("/crash").status_code == 500
    span = recorded.named("GET /crash")
    assert span.status.status_code is StatusCode.ERROR
    assert "exception" in [event.name for event in span.events]
    assert requests_total("GET", "/crash", "500") == before + 1


def test_a_path_no_route_matches_is_labelled_unmatched_not_by_its_path(
    recorded: Recorded, client: TestClient
) -> None:
    before = requests_total("GET", "unmatched", "404")
    assert client.get(f"/nowhere/{uuid.uuid4()}").status_code == 404
    assert recorded.named("GET unmatched").attributes is not None
    assert requests_total("GET", "unmatched", "404") == before + 1


def test_requests_are_counted_timed_and_none_is_left_in_progress(client: TestClient) -> None:
    before = requests_total("GET", "/items/{item_id}", "200")
    for item_id in (1, 2, 3):
        client.get(f"/items/{item_id}")
    assert requests_total("GET", "/items/{item_id}", "200") == before + 3
    labels = {"method": "GET", "route": "/items/{item_id}"}
    assert (REGISTRY.get_sample_value("http_request_duration_seconds_count", labels) or 0) >= 3
    assert REGISTRY.get_sample_value("http_requests_in_progress", {"method": "GET"}) == 0


def test_health_probes_make_no_span(recorded: Recorded, client: TestClient) -> None:
    client.get("/healthz")
    assert recorded.spans() == []


# ----------------------------------------------------------------------------- the gateway itself


@pytest.fixture
def settings() -> Settings:
    return Settings(service="gateway", jwt_secret="unit-test-secret-" + "x" * 48, deadline_s=1.5)


def test_the_gateway_serves_its_metrics_on_slash_metrics_outside_its_api_description(
    settings: Settings,
) -> None:
    with TestClient(create_app(settings, fake_clients(settings))) as client:
        client.get("/books")
        answer = client.get("/metrics")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain")
        assert "# TYPE http_requests_total counter" in answer.text
        assert "/metrics" not in client.get("/openapi.json").json()["paths"]


def test_the_gateways_order_routes_put_the_user_and_order_ids_on_the_request_span(
    recorded: Recorded, settings: Settings
) -> None:
    user_id = str(uuid.uuid4())
    with TestClient(create_app(settings, fake_clients(settings))) as client:
        answer = client.post(
            "/orders", json={"items": [{"book_id": 1, "quantity": 1}]}, headers=bearer(user_id, settings)
        )
    assert answer.status_code == 201, answer.text
    span = recorded.named("POST /orders")
    assert span.attributes is not None
    assert span.attributes["user.id"] == user_id
    assert span.attributes["order.id"] == answer.json()["order_id"]
