"""A bare gRPC server that serves only the standard health service: the floor of a unary call.

Run by ``benchmarks.bench_week06`` in its own process (through ``bookstore.platform.child``,
so it ends with its launcher). It has the same thread pool size as a bookstore service, but
no interceptor, no database and no reflection: whatever a bookstore hop costs above this
server's answer is the price of the service itself.

Its port comes from ``BENCH_HEALTH_PORT``; it serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import os
import signal
import threading
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

WORKERS = 16  # the bookstore services' default (BOOKSTORE_GRPC_WORKERS)


def main() -> None:
    port = int(os.environ["BENCH_HEALTH_PORT"])
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=WORKERS))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    if server.add_insecure_port(f"127.0.0.1:{port}") == 0:
        raise SystemExit(f"could not bind 127.0.0.1:{port}")
    server.start()
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    stopping.wait()
    server.stop(1).wait()


if __name__ == "__main__":
    main()
