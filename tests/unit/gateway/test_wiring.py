"""How the gateway is put together: clients from settings, the app's lifespan, the entry point."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from bookstore.gateway.__main__ import build_server
from bookstore.gateway.app import create_app
from bookstore.gateway.clients import GatewayClients
from bookstore.platform.settings import Settings

# Loopback ports nothing listens on. Opening a gRPC channel does not connect, and these
# tests make no call through them.
TARGETS = {"user": "127.0.0.1:1", "catalog": "127.0.0.1:2", "order": "127.0.0.1:3"}


def test_clients_are_built_from_the_targets_and_deadline_in_settings() -> None:
    clients = GatewayClients.from_settings(Settings(targets=TARGETS, deadline_s=0.75, saga_deadline_s=3.0))
    try:
        assert clients.deadline_s == 0.75
        assert clients.order_deadline_s == 3.75
        assert len(clients.channels) == 3
        assert callable(clients.user.Login)
        assert callable(clients.catalog.GetBook)
        assert callable(clients.order.CreateOrder)
    finally:
        clients.close()
    assert clients.channels == ()


def test_a_missing_target_names_the_variable_to_set() -> None:
    with pytest.raises(RuntimeError, match="BOOKSTORE_CATALOG_TARGET"):
        GatewayClients.from_settings(Settings(targets={"user": "127.0.0.1:1"}))


def test_closing_twice_is_harmless() -> None:
    clients = GatewayClients.from_settings(Settings(targets=TARGETS))

    clients.close()
    clients.close()


def test_without_clients_the_app_opens_channels_at_start_and_closes_them_at_stop() -> None:
    app = create_app(Settings(targets=TARGETS))

    with TestClient(app) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        clients = app.state.clients
        assert isinstance(clients, GatewayClients)
        assert len(clients.channels) == 3

    assert clients.channels == ()


def test_clients_handed_in_are_used_and_left_open_for_their_owner() -> None:
    given = GatewayClients.from_settings(Settings(targets=TARGETS))
    app = create_app(Settings(), clients=given)
    try:
        with TestClient(app):
            assert app.state.clients is given
        assert len(given.channels) == 3
    finally:
        given.close()


def test_the_entry_point_serves_on_the_configured_host_and_port_with_our_logging() -> None:
    server = build_server(Settings(host="127.0.0.1", port=8123, targets=TARGETS))

    assert (server.config.host, server.config.port) == ("127.0.0.1", 8123)
    assert server.config.log_config is None
    assert server.config.timeout_graceful_shutdown is not None


def test_each_backend_channel_gets_a_circuit_breaker_listed_before_any_call() -> None:
    clients = GatewayClients.from_settings(Settings(targets=TARGETS, breaker_open_timeout_s=0.5))
    try:
        assert clients.breakers is not None
        # The order service's reads and writes each have their own: failing creates cannot cut off reads.
        names = [s.name for s in clients.breakers.snapshots()]
        assert names == ["catalog", "order/reads", "order/writes", "user"]
        reads = clients.breakers.breaker("order", "GetOrder")
        assert reads is clients.breakers.breaker("order", "ListOrders")
        assert clients.breakers.breaker("catalog").settings.open_timeout_s == 0.5
    finally:
        clients.close()


def test_with_breakers_turned_off_the_channels_are_plain() -> None:
    clients = GatewayClients.from_settings(Settings(targets=TARGETS, breaker_enabled=False))
    try:
        assert clients.breakers is None
        assert len(clients.channels) == 3
    finally:
        clients.close()
