"""Events: the facts the bookstore publishes, and how one travels as an AMQP message.

An event is a past-tense fact ("order.approved"), never a command: the publisher does not know
or care who listens. Its ``type`` is also its routing key on the topic exchange, so consumers
subscribe by pattern (``order.*``) without the publisher changing.

On the wire an event is a persistent AMQP message whose properties carry what a broker, a
consumer or a human debugging a queue needs without parsing the body:

* ``message_id``: unique per event; consumers remember it to apply each event once;
* ``correlation_id``: the business key (the order id), to follow one order across services;
* ``type``, ``timestamp`` (seconds), ``content_type`` (``application/json``), ``delivery_mode`` 2;

and whose body is JSON ``{"schema_version": 1, "type": ..., "occurred_at": ..., "data": {...}}``.
The schema version lets a consumer refuse (dead-letter) a body it does not understand instead of
misreading it. A message that cannot be read raises ``MalformedEvent`` naming what is wrong.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pika

SCHEMA_VERSION = 1
CONTENT_TYPE = "application/json"
PERSISTENT = 2  # AMQP delivery mode: written to disk by the broker

ORDER_CREATED = "order.created"
ORDER_APPROVED = "order.approved"
ORDER_REJECTED = "order.rejected"
ORDER_EVENTS = (ORDER_CREATED, ORDER_APPROVED, ORDER_REJECTED)


class MalformedEvent(ValueError):
    """A message that is not a readable event; the message names the property or field."""


@dataclass(frozen=True)
class Event:
    """One fact. ``type`` is the routing key; ``data`` must be JSON-serialisable."""

    type: str
    data: Mapping[str, Any]
    correlation_id: str = ""
    message_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    occurred_at: float = field(default_factory=time.time)
    schema_version: int = SCHEMA_VERSION

    def body(self) -> bytes:
        return json.dumps(
            {
                "schema_version": self.schema_version,
                "type": self.type,
                "occurred_at": self.occurred_at,
                "data": dict(self.data),
            },
            separators=(",", ":"),
        ).encode()

    def properties(self, headers: Mapping[str, Any] | None = None) -> pika.BasicProperties:
        return pika.BasicProperties(
            message_id=self.message_id,
            correlation_id=self.correlation_id or None,
            type=self.type,
            timestamp=int(self.occurred_at),
            content_type=CONTENT_TYPE,
            delivery_mode=PERSISTENT,
            headers=dict(headers or {}),
        )

    @classmethod
    def from_message(cls, properties: pika.BasicProperties, body: bytes) -> Event:
        """The event a delivered message carries; ``MalformedEvent`` names what is missing."""
        if not properties.message_id:
            raise MalformedEvent("message_id property is missing")
        if properties.content_type not in (None, CONTENT_TYPE):
            raise MalformedEvent(f"content_type is {properties.content_type!r}, expected {CONTENT_TYPE}")
        try:
            document = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise MalformedEvent(f"body is not JSON: {error}") from None
        if not isinstance(document, dict):
            raise MalformedEvent("body is not a JSON object")
        version = document.get("schema_version")
        if version != SCHEMA_VERSION:
            raise MalformedEvent(f"schema_version is {version!r}; this consumer reads {SCHEMA_VERSION}")
        event_type = document.get("type") or properties.type
        if not isinstance(event_type, str) or not event_type:
            raise MalformedEvent("type is missing")
        data = document.get("data")
        if not isinstance(data, dict):
            raise MalformedEvent("data is missing or not an object")
        occurred_at = document.get("occurred_at", properties.timestamp or 0)
        if not isinstance(occurred_at, int | float):
            raise MalformedEvent("occurred_at is not a number")
        return cls(
            type=event_type,
            data=data,
            correlation_id=properties.correlation_id or "",
            message_id=properties.message_id,
            occurred_at=float(occurred_at),
            schema_version=version,
        )
