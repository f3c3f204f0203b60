"""``python -m bookstore.gateway``: serve the API gateway over HTTP with uvicorn.

Settings come from the environment (``BOOKSTORE_HOST``, ``BOOKSTORE_PORT``, the
``BOOKSTORE_<NAME>_TARGET`` of user, catalog and order, ``BOOKSTORE_JWT_SECRET``,
``BOOKSTORE_DEADLINE_S``). Log lines carry the same ``gateway[replica]`` prefix as the
services' lines, uvicorn's own included, so one merged log reads as one story.

Shutdown is uvicorn's: on SIGTERM or SIGINT it stops accepting connections, lets requests
in flight finish (up to ``SHUTDOWN_GRACE_S``), then runs the app's lifespan exit, which
closes the gRPC channels.
"""

from __future__ import annotations

import dataclasses
import logging

import uvicorn

from bookstore.gateway.app import create_app
from bookstore.platform.server import configure_logging
from bookstore.platform.settings import Settings

SERVICE_NAME = "gateway"
SHUTDOWN_GRACE_S = 5

log = logging.getLogger("bookstore.gateway")


def main(settings: Settings | None = None) -> None:
    settings = settings or Settings.from_env()
    if not settings.service:
        settings = dataclasses.replace(settings, service=SERVICE_NAME)
    configure_logging(settings)
    log.info("starting the API gateway on %s:%d", settings.host, settings.port)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        # None: keep the logging configured above instead of uvicorn's own format.
        log_config=None,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
    )
    log.info("stopped")


if __name__ == "__main__":
    main()
