"""``python -m bookstore.platform.healthcheck``, the containers' health check: its verdicts and exit codes.

The gRPC stub and urllib are replaced by fakes, so nothing listens and nothing connects.
"""

from __future__ import annotations

import io
import urllib.error
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2

from bookstore.platform import healthcheck

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class FakeRpcError(grpc.RpcError, grpc.Call):  # type: ignore[misc]
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code


class FakeHealthStub:
    answer: Any = health_pb2.HealthCheckResponse(status=SERVING)
    asked: list[tuple[str, float]] = []

    def __init__(self, channel: grpc.Channel) -> None:
        pass

    def Check(self, request: health_pb2.HealthCheckRequest, timeout: float) -> Any:
        FakeHealthStub.asked.append((request.service, timeout))
        if isinstance(FakeHealthStub.answer, Exception):
            raise FakeHealthStub.answer
        return FakeHealthStub.answer


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> type[FakeHealthStub]:
    FakeHealthStub.answer = health_pb2.HealthCheckResponse(status=SERVING)
    FakeHealthStub.asked = []
    monkeypatch.setattr(healthcheck.health_pb2_grpc, "HealthStub", FakeHealthStub)
    return FakeHealthStub


def test_a_serving_server_is_healthy_and_the_check_exits_0(
    stub: type[FakeHealthStub], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOOKSTORE_PORT", "50051")
    assert healthcheck.check_grpc("127.0.0.1:50051") == healthcheck.Verdict(True, "127.0.0.1:50051: SERVING")
    assert healthcheck.main([]) == 0
    assert stub.asked[-1] == ("", healthcheck.DEFAULT_TIMEOUT_S)  # "" asks about the whole server


def test_a_server_shutting_down_is_unhealthy(stub: type[FakeHealthStub]) -> None:
    stub.answer = health_pb2.HealthCheckResponse(status=NOT_SERVING)
    verdict = healthcheck.check_grpc("127.0.0.1:1")
    assert verdict == healthcheck.Verdict(False, "127.0.0.1:1: NOT_SERVING")
    assert healthcheck.main(["--address", "127.0.0.1:1"]) == 1


def test_a_server_that_does_not_answer_is_unhealthy_and_the_code_is_named(stub: type[FakeHealthStub]) -> None:
    stub.answer = FakeRpcError(grpc.StatusCode.UNAVAILABLE)
    verdict = healthcheck.check_grpc("127.0.0.1:1", timeout_s=0.5)
    assert verdict == healthcheck.Verdict(False, "127.0.0.1:1: health check failed: UNAVAILABLE")
    assert stub.asked[-1] == ("", 0.5)


def test_a_named_grpc_service_can_be_asked_about(stub: type[FakeHealthStub]) -> None:
    assert healthcheck.main(["--address", "h:1", "--service", "bookstore.rpc.v1.OrderService"]) == 0
    assert stub.asked[-1][0] == "bookstore.rpc.v1.OrderService"


def test_without_an_address_or_port_the_check_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BOOKSTORE_PORT", raising=False)
    with pytest.raises(SystemExit, match="BOOKSTORE_PORT"):
        healthcheck.main([])


class FakeResponse(io.BytesIO):
    def __init__(self, status: int) -> None:
        super().__init__(b"{}")
        self.status = status


def test_http_mode_asks_the_path_on_the_processes_port(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    def urlopen(url: str, timeout: float) -> FakeResponse:
        asked.append(url)
        return FakeResponse(200)

    monkeypatch.setattr(healthcheck.urllib.request, "urlopen", urlopen)
    monkeypatch.setenv("BOOKSTORE_PORT", "8000")
    assert healthcheck.main(["--http", "healthz"]) == 0
    assert asked == ["http://127.0.0.1:8000/healthz"]


def test_http_errors_and_refusals_are_unhealthy(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(url: str, timeout: float) -> FakeResponse:
        raise urllib.error.HTTPError(url, 503, "Service Unavailable", None, None)  # type: ignore[arg-type]

    monkeypatch.setattr(healthcheck.urllib.request, "urlopen", failing)
    assert healthcheck.check_http("http://h/healthz") == healthcheck.Verdict(
        False, "http://h/healthz: HTTP 503"
    )

    def refused(url: str, timeout: float) -> FakeResponse:
        raise urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))

    monkeypatch.setattr(healthcheck.urllib.request, "urlopen", refused)
    verdict = healthcheck.check_http("http://h/healthz")
    assert not verdict.healthy and "refused" in verdict.detail
