"""Test doubles shared across test folders."""

from __future__ import annotations

import grpc


class FakeRpcError(grpc.RpcError):
    """What a real stub raises when a call fails: an RpcError that knows its code and details."""

    def __init__(self, code: grpc.StatusCode, details: str = "") -> None:
        super().__init__(f"{code.name}: {details}")
        self._code = code
        self._details = details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details
