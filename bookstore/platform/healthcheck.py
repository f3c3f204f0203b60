"""``python -m bookstore.platform.healthcheck``: is the process in this container healthy? Exit 0 if so.

A container engine learns whether a container is healthy by running a command inside it
and reading its exit status: 0 healthy, anything else not. Kubernetes can ask a gRPC
service itself (a ``grpc:`` probe calls the standard ``grpc.health.v1.Health/Check``), but
Docker Compose only runs commands, and the slim image has no ``grpc_health_probe``. This
module is that command, built from what the image already has:

    python -m bookstore.platform.healthcheck                  # gRPC health on 127.0.0.1:$BOOKSTORE_PORT
    python -m bookstore.platform.healthcheck --http /healthz  # HTTP 200 on the same port (the gateway)
    python -m bookstore.platform.healthcheck --address catalog:50051 --service bookstore.rpc.v1.CatalogService

It asks the same question the cluster launcher asks before it calls a process ready, so a
container is "healthy" in compose exactly when a ``Cluster`` would call it SERVING. A
check is liveness of this one process only: it never calls the process's peers, so one
service being down does not mark every caller unhealthy (and get them restarted).
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bookstore.platform.settings import Settings

DEFAULT_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Verdict:
    healthy: bool
    detail: str


def check_grpc(address: str, service: str = "", timeout_s: float = DEFAULT_TIMEOUT_S) -> Verdict:
    """Ask the standard gRPC health service at ``address`` about ``service`` ("" is the whole server)."""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            answer = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        except grpc.RpcError as error:
            code = error.code() if isinstance(error, grpc.Call) else None
            name = code.name if code is not None else "ERROR"
            return Verdict(False, f"{address}: health check failed: {name}")
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    return Verdict(answer.status == health_pb2.HealthCheckResponse.SERVING, f"{address}: {status}")


def check_http(url: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Verdict:
    """GET ``url``; healthy on a 2xx answer."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            status = int(response.status)
    except urllib.error.HTTPError as error:
        status = error.code
    except (urllib.error.URLError, OSError) as error:
        return Verdict(False, f"{url}: {error}")
    return Verdict(200 <= status < 300, f"{url}: HTTP {status}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bookstore.platform.healthcheck",
        description="Exit 0 when the bookstore process at ADDRESS is healthy, 1 otherwise.",
    )
    parser.add_argument(
        "--address", help="HOST:PORT to ask (default: 127.0.0.1 and the port in BOOKSTORE_PORT)"
    )
    parser.add_argument("--http", metavar="PATH", help="check HTTP GET PATH (e.g. /healthz) instead of gRPC")
    parser.add_argument("--service", default="", help="gRPC service name to ask about (default: the server)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds to wait")
    return parser.parse_args(argv)


def default_address(settings: Settings) -> str:
    if settings.port == 0:
        raise SystemExit("no address to check: pass --address or set BOOKSTORE_PORT")
    return f"127.0.0.1:{settings.port}"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    address = args.address or default_address(Settings.from_env())
    if args.http:
        path = args.http if args.http.startswith("/") else f"/{args.http}"
        verdict = check_http(f"http://{address}{path}", args.timeout)
    else:
        verdict = check_grpc(address, args.service, args.timeout)
    print(verdict.detail, file=sys.stdout if verdict.healthy else sys.stderr)
    return 0 if verdict.healthy else 1


if __name__ == "__main__":
    sys.exit(main())
