"""What a process observes, read once from its environment.

Tracing and metrics are switched and pointed by environment variables, like every other
setting of the course: the launcher (or a container) decides where spans go and which port
serves ``/metrics``; the code never guesses. The standard ``OTEL_*`` variables are honoured
where a standard one exists, so a learner's knowledge carries over to any OpenTelemetry app.

| variable | default | meaning |
|---|---|---|
| BOOKSTORE_TRACING | 1 | ``0``: no spans at all (the interceptors are not even installed) |
| OTEL_EXPORTER_OTLP_TRACES_ENDPOINT | (none) | OTLP gRPC endpoint of traces; wins over the next one |
| OTEL_EXPORTER_OTLP_ENDPOINT | (none) | OTLP gRPC endpoint (``http://127.0.0.1:4317``); none: no tracing |
| OTEL_SERVICE_NAME | BOOKSTORE_SERVICE | the ``service.name`` of this process's spans |
| OTEL_TRACES_SAMPLER_ARG | 1.0 | share of new traces recorded (a parent's decision is always followed) |
| BOOKSTORE_TRACE_SAMPLE_RATIO | 1.0 | the same, when OTEL_TRACES_SAMPLER_ARG is not set |
| BOOKSTORE_METRICS | 1 | ``0``: count no per-request metrics (the benchmarks' baseline) |
| BOOKSTORE_METRICS_PORT | 0 | port of this process's ``/metrics`` (gRPC services); ``0``: none |
| BOOKSTORE_TRACING_INTERCEPTORS | lean | gRPC spans by the course's ``lean`` interceptors or ``stock`` ones |

``stock`` selects ``opentelemetry-instrumentation-grpc``'s interceptors, for comparison
(``benchmarks/bench_tracing.py``); the metrics still come from the course's interceptors.

The gateway serves ``/metrics`` on its own HTTP port, whatever BOOKSTORE_METRICS_PORT says.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

FALSE_WORDS = frozenset({"0", "false", "no", "off"})
INTERCEPTOR_KINDS = ("lean", "stock")


@dataclass(frozen=True)
class ObservabilityConfig:
    tracing: bool = True
    otlp_endpoint: str = ""
    service_name: str = ""
    sample_ratio: float = 1.0
    metrics: bool = True
    metrics_port: int = 0
    interceptors: str = "lean"

    def __post_init__(self) -> None:
        if self.interceptors not in INTERCEPTOR_KINDS:
            raise ValueError(
                f"BOOKSTORE_TRACING_INTERCEPTORS must be one of {', '.join(INTERCEPTOR_KINDS)}, "
                f"got {self.interceptors!r}"
            )
        if not 0.0 <= self.sample_ratio <= 1.0:
            raise ValueError(f"the trace sample ratio must be between 0 and 1, got {self.sample_ratio}")
        if not 0 <= self.metrics_port <= 65535:
            raise ValueError(f"BOOKSTORE_METRICS_PORT must be a port number, got {self.metrics_port}")

    @property
    def tracing_enabled(self) -> bool:
        """Tracing is on and has somewhere to send spans."""
        return self.tracing and bool(self.otlp_endpoint)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ObservabilityConfig:
        env = os.environ if environ is None else environ
        ratio = (
            env.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
            or env.get("BOOKSTORE_TRACE_SAMPLE_RATIO", "").strip()
        )
        return cls(
            tracing=env.get("BOOKSTORE_TRACING", "1").strip().lower() not in FALSE_WORDS,
            otlp_endpoint=(
                env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
                or env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
            ),
            service_name=env.get("OTEL_SERVICE_NAME", "").strip() or env.get("BOOKSTORE_SERVICE", "").strip(),
            sample_ratio=float(ratio) if ratio else 1.0,
            metrics=env.get("BOOKSTORE_METRICS", "1").strip().lower() not in FALSE_WORDS,
            metrics_port=int(env.get("BOOKSTORE_METRICS_PORT", "0").strip() or "0"),
            interceptors=env.get("BOOKSTORE_TRACING_INTERCEPTORS", "").strip().lower() or "lean",
        )
