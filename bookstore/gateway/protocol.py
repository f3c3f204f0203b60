"""HTTP/1.1 for the gateway: uvicorn's h11 protocol, plus a deadline for each request's head.

A slow client is a cheap attack. Slowloris opens many connections and sends each request's
head a few bytes at a time, never finishing it; a server that waits politely runs out of
sockets (or file descriptors) while doing no work at all. uvicorn has a keep-alive timeout,
but it only runs between requests and is cancelled by the first byte of the next one: a head
that never ends is waited for forever.

``HeadDeadlineProtocol`` gives the client ``head_timeout_s`` to send a complete request head
(request line and headers), counted from the moment it connects, or from the end of the
previous response on a kept-alive connection. Bytes that trickle in do not restart the clock.
Past it the server answers ``408 Request Timeout`` if part of a head had arrived, and closes
the connection either way. The body has its own deadline, enforced inside the app
(``bookstore.gateway.body``), where a 408 can be sent the usual way.

Use it through uvicorn's ``http`` setting: ``uvicorn.Config(app, http=HeadDeadlineProtocol.
with_timeout(10.0))``.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

REQUEST_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\n"
    b"content-length: 41\r\n"
    b"\r\n"
    b"the request head did not arrive in time\r\n"
)


class HeadDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol that closes a connection whose request head is late."""

    head_timeout_s: ClassVar[float] = 10.0

    @classmethod
    def with_timeout(cls, head_timeout_s: float) -> type[HeadDeadlineProtocol]:
        """This protocol with its deadline set (uvicorn builds the instances itself)."""
        return type(cls.__name__, (cls,), {"head_timeout_s": head_timeout_s})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_clock()

    def handle_events(self) -> None:
        super().handle_events()
        # h11 leaves IDLE once it has parsed a whole request head.
        if self.conn.their_state is not h11.IDLE:
            self._stop_head_clock()

    def on_response_complete(self) -> None:
        self._start_head_clock()  # before super(): it may parse a pipelined request at once
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_clock()
        super().connection_lost(exc)

    def _start_head_clock(self) -> None:
        self._stop_head_clock()
        self._head_deadline = self.loop.call_later(self.head_timeout_s, self._on_head_deadline)

    def _stop_head_clock(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _on_head_deadline(self) -> None:
        self._head_deadline = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        partial_head, _closed = self.conn.trailing_data
        if partial_head:
            self.transport.write(REQUEST_TIMEOUT_RESPONSE)
        self.transport.close()
