"""A fallback for catalog reads: the last answer that worked, while the catalog does not.

**Why.** When the catalog service is down, or its circuit breaker is open, a shopper browsing
the store would get 503 on every page. Yet most of what they ask for was answered a minute
ago, and book titles do not change by the minute. Serving that last known good answer,
clearly marked as such, turns an outage into a degraded service: browsing goes on, and only
what nobody has looked at yet fails.

**How.** Every successful ``GetBook``, ``ListBooks`` and ``SearchBooks`` answer is kept in a
bounded LRU, keyed by the method and the request (so ``/books?page_size=5`` and
``/books?page_size=10`` are different entries). When a later call fails with UNAVAILABLE
(which is also what a refusal by an open breaker looks like) or DEADLINE_EXCEEDED, the
kept answer is returned instead, with its age. Any other failure, NOT_FOUND say, is an
answer from a working catalog and passes through; so does a failure with nothing kept.

**Marking it.** The gateway answers 200 with ``X-Bookstore-Fallback: cache`` and ``Age`` (the
seconds since the catalog gave that answer, RFC 9111 section 5.1). A client that must not
act on stale data can check for either. (The ``Warning: 110`` header once meant for this is
obsolete since RFC 9111.)

**When not to.** Never for writes: an order "placed from cache" was not placed. Nor for data
whose staleness misleads: stock levels, balances, permissions. Prices are a borderline case
handled elsewhere: the order service prices every order from the catalog itself, so a stale
price on a page never becomes a wrong charge.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

import grpc
from google.protobuf.message import Message

from bookstore.gateway.errors import status_code_of

log = logging.getLogger(__name__)

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)

FALLBACK_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
"""Failures that say "the catalog cannot answer now", as opposed to answers about the request."""
FALLBACK_HEADER = "X-Bookstore-Fallback"
DEFAULT_MAX_ENTRIES = 1024
"""About 1,000 answers of at most 100 books each: some ten megabytes at worst."""


@dataclass(frozen=True)
class Served(Generic[Resp]):
    """An answer, and how old it is if it came from the cache (``None``: fresh from the service)."""

    answer: Resp
    age_s: float | None = None

    @property
    def from_cache(self) -> bool:
        return self.age_s is not None

    def headers(self) -> dict[str, str]:
        """The response headers that tell a client this answer is a stale copy; none if fresh."""
        if self.age_s is None:
            return {}
        return {FALLBACK_HEADER: "cache", "Age": str(int(self.age_s))}


class LastKnownGood:
    """The latest successful answer per (method, request), at most ``max_entries`` of them. Thread-safe."""

    def __init__(
        self, max_entries: int = DEFAULT_MAX_ENTRIES, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, bytes], tuple[Message, float]] = OrderedDict()

    def call(self, method: str, fn: Callable[..., Resp], request: Req, *, timeout: float) -> Served[Resp]:
        """``fn(request, timeout=timeout)``, remembered; on a failure in ``FALLBACK_CODES``, the
        last answer remembered for the same request, or the failure if there is none."""
        key = (method, request.SerializeToString(deterministic=True))
        try:
            answer = fn(request, timeout=timeout)
        except grpc.RpcError as error:
            if status_code_of(error) not in FALLBACK_CODES:
                raise
            kept = self._get(key)
            if kept is None:
                raise
            cached_answer, fetched_at = kept
            log.debug("%s failed with %s; serving the last known good answer", method, status_code_of(error))
            # The key holds the method, so what was kept under it is that method's response type.
            return Served(cast(Resp, cached_answer), age_s=max(0.0, self._clock() - fetched_at))
        self._put(key, answer)
        return Served(answer)

    def __len__(self) -> int:
        return len(self._entries)

    def _get(self, key: tuple[str, bytes]) -> tuple[Message, float] | None:
        with self._lock:
            kept = self._entries.get(key)
            if kept is not None:
                self._entries.move_to_end(key)  # recently served counts as recently used
            return kept

    def _put(self, key: tuple[str, bytes], answer: Message) -> None:
        with self._lock:
            self._entries[key] = (answer, self._clock())
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
