"""``python -m bookstore.gateway``: serve the API gateway over HTTP with uvicorn.

Settings come from the environment (``BOOKSTORE_HOST``, ``BOOKSTORE_PORT``, the
``BOOKSTORE_<NAME>_TARGET`` of user, catalog and order, ``BOOKSTORE_JWT_SECRET``,
``BOOKSTORE_DEADLINE_S``, and the slow-client deadlines ``BOOKSTORE_HTTP_HEADER_TIMEOUT_S`` and
``BOOKSTORE_HTTP_BODY_TIMEOUT_S``). Log lines carry the same ``gateway[replica]`` prefix as the
services' lines, uvicorn's own included, so one merged log reads as one story.

Shutdown is uvicorn's: on SIGTERM or SIGINT it stops accepting connections, lets requests
in flight finish (up to ``SHUTDOWN_GRACE_S``), then runs the app's lifespan exit, which
closes the gRPC channels; then the spans still queued are sent (week 10: tracing is set up
before the app is built, see ``bookstore.observability``). The process then exits 0,
like the gRPC services after a
requested stop. If start-up fails (a backend target missing, the port taken) uvicorn logs
why and exits with status 3.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
from collections.abc import Callable
from types import FrameType

import uvicorn
from fastapi import FastAPI

from bookstore.gateway.app import create_app
from bookstore.gateway.protocol import HeadDeadlineProtocol
from bookstore.observability import setup_process_telemetry
from bookstore.platform.server import configure_logging
from bookstore.platform.settings import Settings

SERVICE_NAME = "gateway"
SHUTDOWN_GRACE_S = 5

log = logging.getLogger("bookstore.gateway")


def build_server(
    settings: Settings, app_factory: Callable[[Settings], FastAPI] = create_app
) -> uvicorn.Server:
    config = uvicorn.Config(
        app_factory(settings),
        host=settings.host,
        port=settings.port,
        # None: keep the logging configured by `configure_logging` instead of uvicorn's format.
        log_config=None,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
        # h11 with a deadline for each request head; the body's deadline is the app's (BodyGuard).
        http=HeadDeadlineProtocol.with_timeout(settings.http_header_timeout_s),
    )
    return uvicorn.Server(config)


def main(
    settings: Settings | None = None,
    *,
    service_name: str = SERVICE_NAME,
    app_factory: Callable[[Settings], FastAPI] = create_app,
) -> None:
    """Serve ``app_factory(settings)`` until SIGTERM or SIGINT: the gateway, or another HTTP app
    that wants the same edge (the monolith, ``bookstore.monolith``)."""
    settings = settings or Settings.from_env()
    if not settings.service:
        settings = dataclasses.replace(settings, service=service_name)
    configure_logging(settings)
    settings.warn_if_development_secret()
    # The app serves /metrics on its own HTTP port; tracing must be on before channels open.
    telemetry = setup_process_telemetry(service_name, settings.host, serve_metrics=False)
    server = build_server(settings, app_factory)

    def on_stop_signal(signum: int, _frame: FrameType | None) -> None:
        # uvicorn handles SIGTERM and SIGINT itself while it serves, and once shut down re-raises
        # the signal to the handler it found, this one. By then the stop is done: return, and
        # main() ends normally. A signal that arrives before uvicorn took over stops us at once.
        if not server.should_exit:
            raise SystemExit(128 + signum)

    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, on_stop_signal)
    log.info("starting the %s on %s:%d", service_name, settings.host, settings.port)
    try:
        server.run()
    finally:
        telemetry.shutdown()
    log.info("stopped")


if __name__ == "__main__":
    main()
