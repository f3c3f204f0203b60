"""``python -m bookstore.monolith``: serve the whole bookstore from one process over HTTP.

The gateway's server (``bookstore.gateway.__main__``: uvicorn, the same slow-client
deadlines, the same graceful stop on SIGTERM or SIGINT, exit status 0) with the monolith's
app. Settings come from the environment like every process's: ``BOOKSTORE_HOST``,
``BOOKSTORE_PORT``, ``BOOKSTORE_WORK_DIR`` (where ``monolith.db`` lives), ``BOOKSTORE_DB_URL``
(a template: ``{service}`` becomes ``monolith``), ``BOOKSTORE_JWT_SECRET``, and
``BOOKSTORE_INITIAL_STOCK`` and ``BOOKSTORE_PAYMENT_LIMIT_CENTS`` as for the services.
No ``BOOKSTORE_<NAME>_TARGET``: there are no peers to find.
"""

from __future__ import annotations

from bookstore.gateway.__main__ import main as serve_http
from bookstore.monolith.app import create_app
from bookstore.monolith.modules import NAME

if __name__ == "__main__":
    serve_http(service_name=NAME, app_factory=create_app)
