"""Changing a call on its way out: the details a client interceptor passes to the next one.

A gRPC client interceptor sees each call's ``ClientCallDetails`` (method, timeout, metadata,
credentials...) and may hand a changed copy down the chain: the tracing interceptor adds the
trace context to the metadata, the breaker's interceptor fills in a missing timeout. grpc
declares ``ClientCallDetails`` as an abstract class with no constructor, so every interceptor
needs a concrete one; this module is that one, for all of them.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import grpc


class _Fields(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any
    credentials: grpc.CallCredentials | None
    wait_for_ready: bool | None
    compression: grpc.Compression | None


class CallDetails(_Fields, grpc.ClientCallDetails):
    """Concrete, immutable call details."""


def changed(details: grpc.ClientCallDetails, **changes: Any) -> CallDetails:
    """A copy of ``details`` with ``changes`` (e.g. ``timeout=2.0``, ``metadata=[...]``) applied.

    Older grpc releases leave out ``wait_for_ready`` and ``compression``; they read as ``None``.
    """
    copy = CallDetails(
        details.method,
        details.timeout,
        details.metadata,
        details.credentials,
        getattr(details, "wait_for_ready", None),
        getattr(details, "compression", None),
    )
    return copy._replace(**changes)
