"""Where a cluster's telemetry goes: the resolution order of the trace store and of Prometheus."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bookstore.observability import stack
from bookstore.observability.jaeger import JaegerClient
from bookstore.observability.prometheus import PrometheusUnavailable


@pytest.fixture
def no_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stack.containers, "docker_available", lambda: False)


def test_a_configured_otlp_endpoint_wins_and_traces_are_read_from_jaeger_on_its_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stack.containers, "docker_available", lambda: pytest.fail("Docker was not needed"))
    backend = stack.start_trace_backend(tmp_path, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger.local:4317"})
    assert (backend.kind, backend.otlp_endpoint) == ("configured", "http://jaeger.local:4317")
    assert isinstance(backend.reader, JaegerClient) and backend.reader.url == "http://jaeger.local:16686"
    assert backend.process is None  # nothing was started, so nothing to stop


def test_the_traces_endpoint_and_an_explicit_query_url_take_precedence(tmp_path: Path) -> None:
    backend = stack.start_trace_backend(
        tmp_path,
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://general:4317",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:4317",
            "BOOKSTORE_JAEGER_QUERY_URL": "http://ui.example:9999",
        },
    )
    assert backend.otlp_endpoint == "http://traces:4317"
    assert isinstance(backend.reader, JaegerClient) and backend.reader.url == "http://ui.example:9999"


def test_without_an_endpoint_a_docker_engine_means_a_jaeger_container(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stack.containers, "docker_available", lambda: True)
    monkeypatch.setattr(stack.containers, "otlp_endpoint", lambda: "http://127.0.0.1:14317")
    monkeypatch.setattr(stack.containers, "jaeger_query_url", lambda: "http://127.0.0.1:16687")
    backend = stack.start_trace_backend(tmp_path, {})
    assert (backend.kind, backend.otlp_endpoint) == ("jaeger container", "http://127.0.0.1:14317")


def test_a_configured_prometheus_is_used_as_it_is(tmp_path: Path, no_docker: None) -> None:
    backend = stack.start_metrics_backend(
        {"order": ["127.0.0.1:1"]}, tmp_path, {"BOOKSTORE_PROMETHEUS_URL": "http://p:9090/"}
    )
    assert (backend.kind, backend.url, backend.server) == ("configured", "http://p:9090", None)


def test_a_prometheus_binary_is_started_with_the_clusters_targets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_docker: None
) -> None:
    started: dict[str, Any] = {}

    class Server:
        url = "http://127.0.0.1:19090"

        def stop(self) -> None:
            started["stopped"] = True

    def start(targets: Any, work_dir: Path) -> Server:
        started.update(targets=targets, work_dir=work_dir)
        return Server()

    monkeypatch.setattr(stack, "prometheus_binary", lambda: "/usr/bin/prometheus")
    monkeypatch.setattr(stack, "start_prometheus", start)
    backend = stack.start_metrics_backend({"order": ["127.0.0.1:1"]}, tmp_path, {})
    assert (backend.kind, backend.url) == ("binary", "http://127.0.0.1:19090")
    assert started["targets"] == {"order": ["127.0.0.1:1"]}
    backend.stop()
    assert started["stopped"] is True


def test_with_docker_but_no_binary_a_container_scrapes_a_written_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stack, "prometheus_binary", lambda: None)
    monkeypatch.setattr(stack.containers, "docker_available", lambda: True)
    configs: list[Path] = []
    monkeypatch.setattr(
        stack.containers, "prometheus_url", lambda path: configs.append(path) or "http://c:9090"
    )
    backend = stack.start_metrics_backend({"order": ["127.0.0.1:7"]}, tmp_path, {})
    assert (backend.kind, backend.url) == ("container", "http://c:9090")
    assert "127.0.0.1:7" in configs[0].read_text()


def test_with_no_prometheus_at_all_queries_say_the_three_ways_to_get_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_docker: None
) -> None:
    monkeypatch.setattr(stack, "prometheus_binary", lambda: None)
    backend = stack.start_metrics_backend({}, tmp_path, {})
    assert (backend.kind, backend.url) == ("none", None)
    with pytest.raises(PrometheusUnavailable, match=r"BOOKSTORE_PROMETHEUS_URL.*prometheus.*Docker"):
        backend.query("up")
