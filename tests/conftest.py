"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from .databases import BACKENDS, engine_on


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """Runs a test twice: on an SQLite file and on a fresh MariaDB schema (skipped if none answers)."""
    with engine_on(request.param, tmp_path) as engine:
        yield engine
