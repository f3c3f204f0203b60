"""Admission: how many orders the gateway has in flight at once, and why the rest wait here.

**Why.** A CreateOrder carries a deadline (the saga's budget plus one ordinary deadline), and
its clock starts when the gateway sends it. Sent all at once, a burst of 100 orders queues in
the order service behind its 16 worker threads with every clock running, and on a loaded
machine the last ones spend their whole deadline in that queue: 504 for orders that nothing
was wrong with, and the gateway's order breaker counts them as failures. Measured on MariaDB,
100 buyers of one book on two cores with 20 runnable processes: 22 of 100 answered 504,
though every copy was sold and every other buyer correctly refused.

**What.** The gateway keeps at most ``limit`` CreateOrder calls in flight
(``BOOKSTORE_ORDER_CONCURRENCY``, default 8); the other requests wait here, roughly in
arrival order, for at most ``wait_s`` (``BOOKSTORE_ORDER_QUEUE_S``, default 30). The deadline
starts when the call is sent, so it measures the work, not the queue. A request that waited
too long is answered 503 with ``Retry-After``: its order was never sent, so a retry is safe.
Fewer orders in flight also make each one faster: the CPU is shared by fewer sagas, so each
saga's calls to inventory and payment stay within their own deadlines.

**When not to.** A queue hides overload for as long as ``wait_s``; a client that cannot wait
that long should get its 503 sooner (lower the wait). Each gateway replica has its own
queue, so the order service sees up to ``limit`` per replica.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.responses import JSONResponse

from bookstore.gateway.errors import headers_for

DEFAULT_CONCURRENCY = 8
DEFAULT_WAIT_S = 30.0
_QUEUE_FULL_DETAIL = "too many orders are being placed at once; retry after the Retry-After header's seconds"


class AdmissionTimeout(Exception):
    """A request waited ``wait_s`` for its turn; nothing was sent."""


class Admission:
    """At most ``limit`` calls in flight; the rest wait their turn for up to ``wait_s`` seconds."""

    def __init__(self, limit: int = DEFAULT_CONCURRENCY, wait_s: float = DEFAULT_WAIT_S) -> None:
        if limit < 1:
            raise ValueError(f"the admission limit must be at least 1, got {limit}")
        self.limit = limit
        self.wait_s = wait_s
        self._slots = threading.BoundedSemaphore(limit)

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the slots for the block; ``AdmissionTimeout`` if none frees in time."""
        if not self._slots.acquire(timeout=self.wait_s):
            raise AdmissionTimeout(f"no slot freed within {self.wait_s:g} s")
        try:
            yield
        finally:
            self._slots.release()


def admission_timeout_response() -> JSONResponse:
    """503 for a request that never got its turn: nothing was sent, retrying is safe."""
    return JSONResponse(status_code=503, content={"detail": _QUEUE_FULL_DETAIL}, headers=headers_for(503))
