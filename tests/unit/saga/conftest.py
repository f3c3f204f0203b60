"""Fixtures for the saga tests: a fake clock and sleep, fake participants, and databases.

The ``engine`` fixture runs a test twice, on an SQLite file and on a fresh MariaDB schema
(dropped afterwards); the MariaDB run skips, saying why, when no server answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from bookstore.platform.database import make_engine
from bookstore.resilience.timeline import ManualClock

from .fakes import FakeSleep


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'order.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1000.0)


@pytest.fixture
def sleep(clock: ManualClock) -> FakeSleep:
    return FakeSleep(clock)
