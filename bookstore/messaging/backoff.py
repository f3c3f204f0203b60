"""Reconnect backoff: how long a client waits before it knocks on the broker's door again.

What. ``Backoff(first_s, cap_s)`` hands out delays that double from ``first_s`` up to ``cap_s``,
each shortened by a random fraction of up to a half (jitter); ``reset()`` starts again from
``first_s``. A client calls ``next_delay()`` after each failed attempt and ``reset()`` after
each success, so a broker that went away for a moment is retried at once, while one that stays
away is not hammered.

Why the cap is small (``RECONNECT_CAP_S``, a quarter of a second). The cap is also the longest a client
may stay away *after* the broker is back: with the old cap of 5 s, a 5 s outage left publishers
and consumers idle for up to 3.5 s after the broker returned, because their next attempt was
that far away. Against a broker that is down, an attempt is a refused TCP connection: nearly
free for both sides, so four a second per process costs nothing worth saving. Why the jitter:
a hundred consumers that lost the broker at the same instant would otherwise knock at the same
instants, all together, for as long as it is away.

When not to use this: retries of a *request* (an RPC that failed) belong to
``bookstore.resilience``, with a deadline and a circuit breaker; this is only for re-opening a
connection that a long-lived client needs.
"""

from __future__ import annotations

import random

FIRST_S = 0.05
RECONNECT_CAP_S = 0.25


class Backoff:
    """Doubling delays from ``first_s`` to ``cap_s``, with jitter; ``reset()`` after a success."""

    def __init__(
        self, first_s: float = FIRST_S, cap_s: float = RECONNECT_CAP_S, *, jitter: float = 0.5
    ) -> None:
        if not 0 < first_s <= cap_s or not 0 <= jitter < 1:
            raise ValueError("need 0 < first_s <= cap_s and 0 <= jitter < 1")
        self.first_s = first_s
        self.cap_s = cap_s
        self.jitter = jitter
        self._next = first_s

    def next_delay(self) -> float:
        """The delay before the next attempt; the one after it is twice as long, up to the cap."""
        delay = self._next
        self._next = min(self._next * 2, self.cap_s)
        return delay * (1 - self.jitter * random.random())

    def reset(self) -> None:
        """A success: the next failure is retried after ``first_s`` again, not after the cap."""
        self._next = self.first_s
