"""Request bodies, read before any route sees them: within a deadline, and JSON in UTF-8.

A body that stops arriving would otherwise hold a connection, and the task serving it, for
as long as the client cares to wait: a stalled upload, or a slow-client attack that sends a
complete head and then the body a byte a minute. ``BodyGuard`` gives the whole body
``read_timeout_s`` from the moment the app is called (the head has arrived by then; its own
deadline is ``bookstore.gateway.protocol``'s). Past it the answer is ``408 Request Timeout``
with ``Connection: close``: the rest of the body, if it ever comes, is not read.

RFC 8259 (section 8.1) says JSON exchanged between systems that are not part of a closed
ecosystem MUST be encoded as UTF-8. Python's ``json.loads`` is more forgiving than that: given
bytes, it guesses UTF-16 or UTF-32 from the first four bytes, so a UTF-16 body with a byte
order mark would be read, validated and turned into an order. Being liberal here buys nothing
and costs something: every component that handles the body after the gateway (a log, a proxy,
a replayed request) must then guess the same way. So a JSON body that is not valid UTF-8 is
refused with 400, and the answer says so. (A UTF-8 byte order mark is valid UTF-8, and the RFC
lets a parser ignore it; it is accepted.)

``BodyGuard`` is plain ASGI middleware. It reads the whole body before the app runs, which
costs no extra memory for the gateway's small bodies, and hands the app the same bytes. Past
``max_bytes`` it stops reading and lets the app's own size limit answer 413, so an oversized
body is never buffered here.
"""

from __future__ import annotations

import asyncio
import json
import logging

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

UTF8_ENCODINGS = ("utf-8", "utf-8-sig")
BODY_TIMEOUT_RESPONSE = JSONResponse(
    {"detail": "the request body did not arrive in time"}, status_code=408, headers={"Connection": "close"}
)
NOT_UTF8_DETAIL = "the request body is not UTF-8: JSON must be sent as UTF-8 (RFC 8259, section 8.1)"


def is_json_media_type(content_type: str | None) -> bool:
    """``application/json`` or any ``application/...+json``, whatever its parameters."""
    media_type = (content_type or "").partition(";")[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def is_utf8_json(data: bytes) -> bool:
    """True if ``data`` is UTF-8, and Python's JSON parser would read it as UTF-8.

    Both checks are needed: ASCII text in UTF-16-LE without a byte order mark (``{\x00"\x00``)
    is valid UTF-8, its zero bytes being U+0000, yet ``json.loads`` reads it as UTF-16.
    """
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return json.detect_encoding(data) in UTF8_ENCODINGS


class BodyGuard:
    """ASGI middleware: read a request's body first, within ``read_timeout_s``, and refuse a
    JSON body that is not UTF-8."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, read_timeout_s: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.read_timeout_s = read_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more_body = True
        deadline = asyncio.get_running_loop().time() + self.read_timeout_s
        while more_body and size <= self.max_bytes:
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                log.info("%s %s: the body did not arrive in time", scope["method"], scope["path"])
                await BODY_TIMEOUT_RESPONSE(scope, receive, send)
                return
            if message["type"] == "http.disconnect":
                return  # the client is gone: nobody to answer
            chunk: bytes = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more_body = message.get("more_body", False)
        body = b"".join(chunks)
        json_body = is_json_media_type(Headers(scope=scope).get("content-type"))
        if json_body and body and not more_body and not is_utf8_json(body):
            await JSONResponse({"detail": NOT_UTF8_DETAIL}, status_code=400)(scope, receive, send)
            return
        await self.app(scope, replay(body, more_body, receive), send)


def replay(body: bytes, more_body: bool, receive: Receive) -> Receive:
    """A ``receive`` that first gives ``body`` as one message, then whatever ``receive`` gives."""
    first: list[Message] = [{"type": "http.request", "body": body, "more_body": more_body}]

    async def receive_again() -> Message:
        return first.pop() if first else await receive()

    return receive_again
