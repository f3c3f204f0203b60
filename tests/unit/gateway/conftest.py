"""Shared fixtures: settings with a test secret, fake services, the app and a client for it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from bookstore.gateway.app import create_app
from bookstore.gateway.clients import GatewayClients
from bookstore.platform.settings import Settings

from .fakes import bearer, fake_clients


@pytest.fixture
def settings() -> Settings:
    return Settings(service="gateway", jwt_secret="unit-test-secret-" + "x" * 48, deadline_s=1.5)


@pytest.fixture
def clients(settings: Settings) -> GatewayClients:
    return fake_clients(settings)


@pytest.fixture
def client(settings: Settings, clients: GatewayClients) -> Iterator[TestClient]:
    with TestClient(create_app(settings, clients)) as test_client:
        yield test_client


@pytest.fixture
def alice(settings: Settings) -> dict[str, str]:
    return bearer(str(uuid.uuid4()), settings, username="alice")


@pytest.fixture
def bob(settings: Settings) -> dict[str, str]:
    return bearer(str(uuid.uuid4()), settings, username="bob")
