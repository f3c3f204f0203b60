"""Shared fixtures for servicer and store tests: a fake servicer context and a fresh SQLite engine."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from sqlalchemy import Engine

from bookstore.platform.database import make_engine


class AbortedCall(Exception):
    """Raised by FakeContext.abort, as grpc's real context raises to end the call."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class FakeContext:
    """Just enough of grpc.ServicerContext for servicers called directly in tests."""

    def __init__(self) -> None:
        self.trailing_metadata: tuple[tuple[str, str], ...] = ()

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise AbortedCall(code, details)

    def set_trailing_metadata(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self.trailing_metadata = tuple(metadata)

    def time_remaining(self) -> float:
        return 2.0

    def is_active(self) -> bool:
        return True


@pytest.fixture
def context() -> FakeContext:
    return FakeContext()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'service.db'}")
    yield engine  # type: ignore[misc]
    engine.dispose()
