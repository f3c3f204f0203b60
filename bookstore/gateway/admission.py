"""Admission: how many orders the gateway has in flight at once, and why the rest wait here.

**Why.** A CreateOrder carries a deadline (the saga's budget plus one ordinary deadline), and
its clock starts when the gateway sends it. Sent all at once, a burst of 100 orders queues in
the order service behind its 16 worker threads with every clock running, and on a loaded
machine the last ones spend their whole deadline in that queue: 504 for orders that nothing
was wrong with, and the gateway's order breaker counts them as failures. Measured on MariaDB,
100 buyers of one book on two cores with 20 runnable processes: 22 of 100 answered 504,
though every copy was sold and every other buyer correctly refused.

**What.** The gateway keeps a bounded number of CreateOrder calls in flight; the other
requests wait here, roughly in arrival order, for at most ``wait_s``
(``BOOKSTORE_ORDER_QUEUE_S``, default 30). The deadline starts when the call is sent, so it
measures the work, not the queue. A request that waited too long is answered 503 with
``Retry-After``: its order was never sent, so a retry is safe.

**The bound adapts (AIMD, as TCP does with its window).** A fixed bound of 8 is right on a
quiet machine and too many on a slow one: by Little's law, the time a call spends in flight
is the number in flight divided by the rate the order service completes them, so when the
machine slows, every call in flight slows with it, until the last ones miss the deadline. A
hot stock row makes it worse, as the calls queue on one row lock. So the bound moves between
1 and ``limit`` (``BOOKSTORE_ORDER_CONCURRENCY``, default 8) with what the calls take:

* a call that took longer than ``target_s`` (half the order deadline) **halves** the bound,
  once per round: calls that were already in flight when it was cut do not cut it again;
* a call within ``target_s`` **adds** ``1 / bound`` to it, about one more slot per round.

Fewer orders in flight make each one faster: the CPU and the hot row are shared by fewer
sagas. On a quiet machine no call comes near ``target_s`` and the bound stays at ``limit``.

**When not to.** A queue hides overload for as long as ``wait_s``; a client that cannot wait
that long should get its 503 sooner (lower the wait). Each gateway replica has its own
queue and its own bound, so the order service sees up to ``limit`` per replica. The bound
reacts to latency after the fact: a machine that stalls all at once still fails the calls
already in flight.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from fastapi.responses import JSONResponse

from bookstore.gateway.errors import headers_for

_QUEUE_FULL_DETAIL = "too many orders are being placed at once; retry after the Retry-After header's seconds"


class AdmissionTimeout(Exception):
    """A request waited ``wait_s`` for its turn; nothing was sent."""


class Admission:
    """Between 1 and ``limit`` calls in flight; the rest wait their turn for up to ``wait_s``.

    With ``target_s`` set the bound adapts to how long calls take (see the module docstring);
    without it, the bound stays at ``limit``. ``clock`` times the calls (a ``ManualClock`` in
    tests); waiting for a turn always uses real time.
    """

    def __init__(
        self,
        limit: int,
        wait_s: float,
        *,
        target_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1:
            raise ValueError(f"the admission limit must be at least 1, got {limit}")
        if target_s is not None and target_s <= 0:
            raise ValueError(f"the admission target must be positive, got {target_s}")
        self.limit = limit
        self.wait_s = wait_s
        self.target_s = target_s
        self._clock = clock
        self._bound = float(limit)
        self._in_flight = 0
        self._last_cut = float("-inf")
        self._cuts = 0
        self._turns = threading.Condition()

    @property
    def bound(self) -> int:
        """How many calls may be in flight now: ``limit`` unless slow calls cut it."""
        with self._turns:
            return self._allowed()

    @property
    def cuts(self) -> int:
        """How many times slow calls halved the bound since the gateway started."""
        with self._turns:
            return self._cuts

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one place in flight for the block; ``AdmissionTimeout`` if none frees in time."""
        with self._turns:
            if not self._turns.wait_for(lambda: self._in_flight < self._allowed(), timeout=self.wait_s):
                raise AdmissionTimeout(f"no slot freed within {self.wait_s:g} s")
            self._in_flight += 1
        started = self._clock()
        try:
            yield
        finally:
            self._finish(started)

    def _allowed(self) -> int:
        return max(1, int(self._bound))

    def _finish(self, started: float) -> None:
        ended = self._clock()
        with self._turns:
            self._in_flight -= 1
            if self.target_s is not None:
                if ended - started <= self.target_s:
                    self._bound = min(float(self.limit), self._bound + 1 / self._bound)
                elif started >= self._last_cut:  # one cut per round, not one per late call
                    self._bound = max(1.0, self._bound / 2)
                    self._last_cut = ended
                    self._cuts += 1
            self._turns.notify_all()


def admission_timeout_response() -> JSONResponse:
    """503 for a request that never got its turn: nothing was sent, retrying is safe."""
    return JSONResponse(status_code=503, content={"detail": _QUEUE_FULL_DETAIL}, headers=headers_for(503))
